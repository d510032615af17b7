"""What pub.py and sub.py cost against the plainest nats-py programs doing the same, side by side.

Run it with scripts/bench.sh (--quick: smaller counts, about a minute; --reps N; --json PATH: every figure and
every repetition). It starts a local broker (TLS and .creds, like MnQ) on 127.0.0.1, and a local 3-node cluster
for one row, and measures whole processes (start, connect, work, exit: what a user waits for), alternating the
contenders, as the median of the repetitions:
  publish     pub.py --count N MESSAGE    vs  connect, publish N times, drain.
  subscribe   sub.py --count N > file     vs  a callback subscriber printing the same two lines per message, from
                                              the start of a plain publisher sending at full speed to the
                                              subscriber's exit, every line counted afterwards. sub.py flushes
                                              after every message (`| tee` stays live); the plain one never does.
                                              For the record, one reading `async for msg in sub.messages`: about
                                              half as fast, which is why sub.py subscribes with cb=.
  one-shot    python3 pub.py              vs  python3 -c "import, connect, publish, drain"; and the peak RSS of
                                              each (median of 5), read by a small parent process (wait4): a child
                                              forked straight from this large process would inherit its high-water
                                              mark on Linux, and every program would read the same.
  latency     a paced publisher -> sub.py vs  the same publisher -> the plain subscriber: 1,000 messages a second,
                                              each carrying its send time (time.time_ns()), against the moment
                                              this process reads its printed line; p50 and p99.
  JetStream   pub.py --stream S           vs  a plain pipeline, the comparator: nc.publish with a reply subject
  publish                                     and a Nats-Msg-Id per message, one subscription receiving the
                                              acknowledgements, at most 4000 awaiting theirs (as the NATS CLI and
                                              nats.go publish). For the record: js.publish_async (4000 in flight;
                                              nats-py 2.16 never completes the future of a message the stream
                                              refuses, so pub.py cannot count refusals with it), and windows of
                                              256 js.publish awaited together; all with a Nats-Msg-Id per message.
                                              Each run makes the stream anew (its creation is timed too). On one
                                              server (1 replica), and on the cluster (3 replicas, median of 5: which
                                              node leads and which one each program reaches change from run to run).
  JetStream   the peak RSS of pub.py --stream with 1,000,000 messages against 100,000 (--quick: 100,000 against
  memory      10,000): flat, as what is in flight is bounded.
  JetStream   sub.py --stream --durable   vs  a pull consumer fetching 256 at a time and acknowledging each
  consume                                     message after printing it; both read the same stored messages
                                              through a new durable consumer.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import local_broker

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable

# The plainest nats-py programs: the floor pub.py and sub.py are measured against.
CONNECT = """
import asyncio, json, os, ssl, sys, time
import nats

def connect():
    tls = ssl.create_default_context(cafile=os.environ["NATS_CA"])
    return nats.connect(os.environ["NATS_URL"].split(","), user_credentials=os.environ["NATS_CREDS"], tls=tls)
"""

PLAIN_PUB = (
    CONNECT
    + """
async def main(count, data):
    nc = await connect()
    for _ in range(count):
        await nc.publish("my-subject", data)
    await nc.drain()

asyncio.run(main(int(sys.argv[1]), sys.argv[2].encode()))
"""
)

PLAIN_SUB = (
    CONNECT
    + """
async def main(count):
    nc = await connect()
    done, received = asyncio.Event(), 0

    async def on_message(msg):
        nonlocal received
        print(f"Received a message on '{msg.subject}': {msg.data.decode()}")
        print(f"Headers maybe: {msg.headers}", flush=FLUSH)
        received += 1
        if received == count:
            done.set()

    await nc.subscribe("my-subject", cb=on_message)
    await nc.flush()
    print("Subscription OK", flush=True)
    await done.wait()
    await nc.drain()

FLUSH = sys.argv[2] == "flush"
asyncio.run(main(int(sys.argv[1])))
"""
)

# The same with `async for msg in sub.messages` instead of a callback, to compare the two styles.
PLAIN_SUB_ITERATOR = (
    CONNECT
    + """
async def main(count):
    nc = await connect()
    sub = await nc.subscribe("my-subject")
    await nc.flush()
    print("Subscription OK", flush=True)
    received = 0
    async for msg in sub.messages:
        print(f"Received a message on '{msg.subject}': {msg.data.decode()}")
        print(f"Headers maybe: {msg.headers}")
        received += 1
        if received == count:
            break
    await nc.drain()

asyncio.run(main(int(sys.argv[1])))
"""
)

PLAIN_ONE_SHOT = (
    CONNECT
    + """
async def main():
    nc = await connect()
    await nc.publish("my-subject", b"This is a simple message with some datas")
    await nc.publish("my-subject", b"This is still a simple message but with some headers inside",
                     headers={"Example": "True", "RandomHeaders": "True"})
    await nc.drain()

asyncio.run(main())
"""
)

# JetStream: publish into a stream, each message with a Nats-Msg-Id header (what pub.py sends, so that a message
# sent again is stored once). "pipeline" is the comparator: as the NATS CLI and nats.go publish asynchronously, a
# reply subject per message, one subscription receiving the acknowledgements, at most 4000 awaiting theirs. For the
# record: nats-py's js.publish_async (4000 in flight too), and windows of 256 js.publish awaited together.
PLAIN_JS_PUB = (
    CONNECT
    + """
async def main(mode, stream, count, data, replicas):
    nc = await connect()
    js = nc.jetstream()
    await js.add_stream(name=stream, subjects=[f"{stream}.messages"], storage="file", num_replicas=replicas)
    run = os.urandom(8).hex()
    if mode == "pipeline":
        inbox, room, done, acked = nc.new_inbox(), asyncio.Semaphore(4000), asyncio.Event(), 0

        async def on_ack(msg):
            nonlocal acked
            if "error" in json.loads(msg.data):
                print(f"refused: {msg.data}", file=sys.stderr)
                os._exit(1)
            acked += 1
            room.release()
            if acked == count:
                done.set()

        await nc.subscribe(inbox + ".*", cb=on_ack)
        for n in range(count):
            await room.acquire()
            await nc.publish(f"{stream}.messages", data, reply=f"{inbox}.{n}", headers={"Nats-Msg-Id": f"{run}-{n}"})
        await done.wait()
    elif mode == "async":
        for n in range(count):
            await js.publish_async(f"{stream}.messages", data, headers={"Nats-Msg-Id": f"{run}-{n}"})
        await js.publish_async_completed()
    else:
        for start in range(0, count, 256):
            await asyncio.gather(*(js.publish(f"{stream}.messages", data, headers={"Nats-Msg-Id": f"{run}-{n}"})
                                   for n in range(start, min(start + 256, count))))
    await nc.drain()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4].encode(), int(sys.argv[5])))
"""
)

# JetStream: a durable pull consumer, fetching batches and acknowledging each message once printed.
PLAIN_JS_SUB = (
    CONNECT
    + """
async def main(stream, durable, count):
    nc = await connect()
    consumer = await nc.jetstream().pull_subscribe(f"{stream}.messages", durable=durable, stream=stream)
    received = 0
    while received < count:
        try:
            messages = await consumer.fetch(min(256, count - received), timeout=1)
        except asyncio.TimeoutError:
            continue
        for msg in messages:
            print(f"Received a message on '{msg.subject}': {msg.data.decode()}")
            print(f"Headers maybe: {msg.headers}")
            await msg.ack()
            received += 1
    await consumer.unsubscribe()
    await nc.drain()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""
)

DELETE_STREAMS = (
    CONNECT
    + """
async def main():
    nc = await connect()
    js = nc.jetstream()
    for info in await js.streams_info():
        await js.delete_stream(info.config.name)
    await nc.close()

asyncio.run(main())
"""
)

# A forked child starts with the high-water RSS of the process it was forked from, and keeps it across
# exec (Linux): measured from this large process, every program would read the same. So a fresh, small
# interpreter starts the program, and reports its child's peak.
PEAK_RSS = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss // 1024 if sys.platform == "darwin" else usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss_mib(command, env=None):
    """The peak resident memory of command, run to its end, in MiB."""
    with tempfile.TemporaryDirectory() as work:
        report = os.path.join(work, "peak-kib")
        result = subprocess.run(
            [PYTHON, "-c", PEAK_RSS, report, *command],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        if result.returncode != 0:
            raise SystemExit(f"bench: error: {command} failed: {result.stderr}")
        with open(report) as f:
            return int(f.read()) / 1024


# Publishes time.time_ns() as the body, RATE a second for SECONDS.
PACED_PUB = (
    CONNECT
    + """
async def main(rate, seconds):
    nc = await connect()
    start = time.monotonic()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await nc.publish("my-subject", str(time.time_ns()).encode())
    await nc.drain()

asyncio.run(main(float(sys.argv[1]), float(sys.argv[2])))
"""
)


class Bench:
    def __init__(self, work, env):
        self.work = work
        self.env = env

    def script(self, name, text):
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def run(self, command, stdout=subprocess.DEVNULL):
        """Run a whole process; return its wall time in seconds."""
        started = time.perf_counter()
        result = subprocess.run(command, env=self.env, stdout=stdout, stderr=subprocess.PIPE)
        seconds = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"bench: error: {command} failed: {result.stderr.decode()}")
        return seconds

    def start_subscriber(self, command, out_path, timeout=30):
        """Start a subscriber writing to out_path; return it once it has subscribed."""
        out = open(out_path, "w")
        proc = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.PIPE)
        out.close()
        deadline = time.monotonic() + timeout
        while "Subscription OK" not in open(out_path).read(4096):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"bench: error: {command} did not subscribe: {proc.stderr.read().decode()}")
            time.sleep(0.01)
        return proc


class Cluster:
    """A local three-node cluster (TLS, .creds, JetStream), like MnQ; `with` gives the environment to reach it."""

    def __init__(self, state, size=3):
        local_broker.mint(state, tls=True)
        local_broker.cluster_confs(state, [local_broker.free_port() for _ in range(size)])
        self.state, self.ports, self.nodes = state, [local_broker.free_port() for _ in range(size)], []

    def __enter__(self):
        for index, port in enumerate(self.ports, 1):
            log = open(os.path.join(self.state, f"node-{index}.log"), "w")
            self.nodes.append(
                subprocess.Popen(local_broker.node_command(self.state, index, port), stdout=log, stderr=log)
            )
            log.close()
        urls = [f"nats://127.0.0.1:{port}" for port in self.ports]
        creds, ca = os.path.join(self.state, "user.creds"), os.path.join(self.state, "ca.pem")
        try:
            local_broker.wait_for_jetstream(urls, creds, ca)
        except BaseException:
            self.__exit__()
            raise
        env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
        env.update(NATS_URL=",".join(urls), NATS_CREDS=creds, NATS_CA=ca)
        return env

    def __exit__(self, *exc):
        for node in self.nodes:
            node.terminate()
        for node in self.nodes:
            node.wait()


def median_of(reps, contenders, measure):
    """Alternate the contenders rep after rep; return {name: [results]}."""
    results = {name: [] for name in contenders}
    for _ in range(reps):
        for name, contender in contenders.items():
            results[name].append(measure(name, contender))
    return results


def publish_throughput(bench, count, size, reps):
    body = "x" * size
    plain = bench.script("plain_pub.py", PLAIN_PUB)
    contenders = {
        "pub.py": [PYTHON, os.path.join(ROOT, "pub.py"), "--count", str(count), body],
        "plain": [PYTHON, plain, str(count), body],
    }
    times = median_of(reps, contenders, lambda name, command: bench.run(command))
    rates = {name: count / statistics.median(t) for name, t in times.items()}
    return {
        "count": count,
        "body_bytes": size,
        "msgs_per_s": rates,
        "ratio": rates["pub.py"] / rates["plain"],
        "target": 0.90,
        "seconds": times,
    }


def subscribe_throughput(bench, count, reps):
    plain_sub = bench.script("plain_sub.py", PLAIN_SUB)
    plain_pub = bench.script("plain_pub.py", PLAIN_PUB)
    contenders = {
        "sub.py": [PYTHON, os.path.join(ROOT, "sub.py"), "--count", str(count)],
        "plain": [PYTHON, plain_sub, str(count), "no-flush"],
        "plain async for": [PYTHON, bench.script("plain_sub_iterator.py", PLAIN_SUB_ITERATOR), str(count)],
    }
    lost = {name: 0 for name in contenders}

    def measure(name, command):
        out_path = os.path.join(bench.work, "sub.out")
        sub = bench.start_subscriber(command, out_path)
        started = time.perf_counter()
        bench.run([PYTHON, plain_pub, str(count), "x" * 16])
        try:
            sub.wait(timeout=120)
        except subprocess.TimeoutExpired:
            sub.kill()
            sub.wait()
        seconds = time.perf_counter() - started
        sub.stderr.close()
        with open(out_path) as f:
            received = sum(line.startswith("Received a message") for line in f)
        lost[name] += count - received
        return seconds

    times = median_of(reps, contenders, measure)
    rates = {name: count / statistics.median(t) for name, t in times.items()}
    return {
        "count": count,
        "body_bytes": 16,
        "msgs_per_s": rates,
        "ratio": rates["sub.py"] / rates["plain"],
        "target": 0.80,
        "lost": lost,
        "seconds": times,
    }


def one_shot(bench, reps):
    contenders = {
        "pub.py": [PYTHON, os.path.join(ROOT, "pub.py")],
        "plain": [PYTHON, "-c", PLAIN_ONE_SHOT],
    }
    runs = median_of(reps, contenders, lambda name, command: (bench.run(command), peak_rss_mib(command, bench.env)))
    seconds = {name: statistics.median(r[0] for r in runs[name]) for name in runs}
    rss = {name: statistics.median(r[1] for r in runs[name]) for name in runs}
    return {
        "seconds": seconds,
        "peak_rss_mib": rss,
        "time_ratio": seconds["pub.py"] / seconds["plain"],
        "rss_ratio": rss["pub.py"] / rss["plain"],
        "target": 1.15,
    }


PLAIN_JS_PUBLISHERS = {  # the first is the comparator
    "plain pipeline": ("pipeline", "a pipeline: a reply subject per message, at most 4000 in flight"),
    "plain publish_async": ("async", "`js.publish_async`, 4000 in flight"),
    "plain windows": ("window", "windows of 256 concurrent `js.publish`"),
}


def jetstream_publish(bench, count, reps, replicas=1):
    """pub.py --stream against each of PLAIN_JS_PUBLISHERS; replicas: of the plain ones' stream (pub.py picks its
    own default: 3 on a cluster, 1 on a single server)."""
    script = bench.script("plain_js_pub.py", PLAIN_JS_PUB)
    delete = bench.script("delete_streams.py", DELETE_STREAMS)
    body = "x" * 16
    contenders = {"pub.py": [PYTHON, os.path.join(ROOT, "pub.py"), "--stream", "bench", "--count", str(count), body]}
    for name in PLAIN_JS_PUBLISHERS:
        contenders[name] = [PYTHON, script, PLAIN_JS_PUBLISHERS[name][0], "bench", str(count), body, str(replicas)]

    def measure(name, command):
        seconds = bench.run(command)
        bench.run([PYTHON, delete])  # each run creates the stream anew
        return seconds

    times = median_of(reps, contenders, measure)
    rates = {name: count / statistics.median(t) for name, t in times.items()}
    return {
        "count": count,
        "body_bytes": 16,
        "replicas": replicas,
        "msgs_per_s": rates,
        "ratio": rates["pub.py"] / rates["plain pipeline"],
        "target": 0.90,
        "ratio_to_publish_async": rates["pub.py"] / rates["plain publish_async"],
        "target_to_publish_async": 1.5,
        "seconds": times,
    }


def jetstream_memory(bench, counts):
    """The peak RSS of pub.py --stream publishing each of counts: flat when what is in flight is bounded."""
    delete = bench.script("delete_streams.py", DELETE_STREAMS)
    rss = {}
    for count in counts:
        rss[count] = peak_rss_mib(
            [PYTHON, os.path.join(ROOT, "pub.py"), "--stream", "bench", "--count", str(count), "x" * 16], bench.env
        )
        bench.run([PYTHON, delete])
    return {"peak_rss_mib": rss, "ratio": rss[max(counts)] / rss[min(counts)], "target": 1.10}


def jetstream_consume(bench, count, reps):
    plain = bench.script("plain_js_sub.py", PLAIN_JS_SUB)
    bench.run([PYTHON, bench.script("plain_js_pub.py", PLAIN_JS_PUB), "pipeline", "bench", str(count), "x" * 16, "1"])
    contenders = {
        "sub.py": lambda durable: [
            PYTHON,
            os.path.join(ROOT, "sub.py"),
            "--stream",
            "bench",
            "--durable",
            durable,
            "--count",
            str(count),
        ],
        "plain": lambda durable: [PYTHON, plain, "bench", durable, str(count)],
    }
    lost, runs = {name: 0 for name in contenders}, []

    def measure(name, command):
        runs.append(name)
        out_path = os.path.join(bench.work, "js.out")
        with open(out_path, "w") as out:  # a new durable consumer reads the whole stream
            seconds = bench.run(command(f"reader{len(runs)}"), stdout=out)
        with open(out_path) as f:
            lost[name] += count - sum(line.startswith("Received a message") for line in f)
        return seconds

    times = median_of(reps, contenders, measure)
    bench.run([PYTHON, bench.script("delete_streams.py", DELETE_STREAMS)])
    rates = {name: count / statistics.median(t) for name, t in times.items()}
    return {
        "count": count,
        "body_bytes": 16,
        "msgs_per_s": rates,
        "ratio": rates["sub.py"] / rates["plain"],
        "target": 0.80,
        "lost": lost,
        "seconds": times,
    }


def latency(bench, rate, seconds, reps):
    paced = bench.script("paced_pub.py", PACED_PUB)
    plain_sub = bench.script("plain_sub.py", PLAIN_SUB)
    count = int(rate * seconds)
    contenders = {
        "sub.py": [PYTHON, os.path.join(ROOT, "sub.py"), "--count", str(count)],
        "plain": [PYTHON, plain_sub, str(count), "flush"],
    }

    def measure(name, command):
        # The subscriber prints each message's send time; this process reads the line the moment it is written.
        proc = subprocess.Popen(
            command, env=bench.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
        )
        watchdog = threading.Timer(seconds + 60, proc.kill)  # a lost message would leave it waiting
        watchdog.start()
        for line in proc.stdout:
            if line.startswith("Subscription OK"):
                break
        delays = []
        publisher = threading.Thread(target=bench.run, args=([PYTHON, paced, str(rate), str(seconds)],))
        publisher.start()
        for line in proc.stdout:
            now = time.time_ns()
            if line.startswith("Received a message"):
                delays.append((now - int(line.rsplit(": ", 1)[1])) / 1e6)
        publisher.join()
        proc.wait()
        watchdog.cancel()
        return delays

    runs = median_of(reps, contenders, measure)
    result = {"rate_per_s": rate, "seconds": seconds, "lost": {}, "p50_ms": {}, "p99_ms": {}}
    for name, per_rep in runs.items():
        result["lost"][name] = sum(count - len(delays) for delays in per_rep)
        result["p50_ms"][name] = statistics.median(statistics.median(d) for d in per_rep)
        result["p99_ms"][name] = statistics.median(statistics.quantiles(d, n=100)[98] for d in per_rep)
    return result


def table(results):
    rows = ["| measure | pub.py / sub.py | plain nats-py | ratio | target |", "|---|---|---|---|---|"]
    for key in ("publish_16", "publish_1024"):
        r = results[key]
        rows.append(
            f"| publish {r['count']:,} x {r['body_bytes']} B (msg/s) | {r['msgs_per_s']['pub.py']:,.0f} "
            f"| {r['msgs_per_s']['plain']:,.0f} | {r['ratio']:.2f} | >= {r['target']:.2f} |"
        )
    r = results["subscribe"]
    rows.append(
        f"| subscribe {r['count']:,} x 16 B (msg/s; lost {r['lost']['sub.py']} / {r['lost']['plain']}) "
        f"| {r['msgs_per_s']['sub.py']:,.0f} | {r['msgs_per_s']['plain']:,.0f} | {r['ratio']:.2f} "
        f"| >= {r['target']:.2f} |"
    )
    iterator = r["msgs_per_s"]["plain async for"]
    rows.append(
        f"| subscribe, plain `async for msg in sub.messages` (msg/s; lost {r['lost']['plain async for']}) "
        f"| | {iterator:,.0f} | {r['msgs_per_s']['sub.py'] / iterator:.2f} | |"
    )
    r = results["one_shot"]
    rows.append(
        f"| one-shot `python3 pub.py` (s) | {r['seconds']['pub.py']:.3f} | {r['seconds']['plain']:.3f} "
        f"| {r['time_ratio']:.2f} | <= {r['target']:.2f} |"
    )
    rows.append(
        f"| one-shot peak RSS (MiB) | {r['peak_rss_mib']['pub.py']:.1f} | {r['peak_rss_mib']['plain']:.1f} "
        f"| {r['rss_ratio']:.2f} | <= {r['target']:.2f} |"
    )
    for key, where in (("jetstream_publish", ""), ("jetstream_publish_cluster", ", 3-node cluster, R3 stream")):
        r = results[key]
        rows.append(
            f"| JetStream publish {r['count']:,} x 16 B{where}, a message ID each (msg/s; plain: a pipeline) "
            f"| {r['msgs_per_s']['pub.py']:,.0f} | {r['msgs_per_s']['plain pipeline']:,.0f} | {r['ratio']:.2f} "
            f"| >= {r['target']:.2f} |"
        )
        for name, rate in r["msgs_per_s"].items():
            if name not in ("pub.py", "plain pipeline"):
                target = f">= {r['target_to_publish_async']:.2f}" if name == "plain publish_async" else ""
                rows.append(
                    f"| JetStream publish{where}, plain, {PLAIN_JS_PUBLISHERS[name][1]} (msg/s) | | "
                    f"{rate:,.0f} | {r['msgs_per_s']['pub.py'] / rate:.2f} | {target} |"
                )
    r = results["jetstream_memory"]
    small, large = sorted(r["peak_rss_mib"], key=int)
    rows.append(
        f"| JetStream publish peak RSS, {int(large):,} messages (MiB; plain: pub.py with {int(small):,}) "
        f"| {r['peak_rss_mib'][large]:.1f} | {r['peak_rss_mib'][small]:.1f} | {r['ratio']:.2f} | <= {r['target']:.2f} |"
    )
    r = results["jetstream_consume"]
    rows.append(
        f"| JetStream consume {r['count']:,} x 16 B, durable (msg/s; lost {r['lost']['sub.py']} / "
        f"{r['lost']['plain']}) | {r['msgs_per_s']['sub.py']:,.0f} | {r['msgs_per_s']['plain']:,.0f} "
        f"| {r['ratio']:.2f} | >= {r['target']:.2f} |"
    )
    r = results["latency"]
    for p in ("p50", "p99"):
        rows.append(
            f"| latency {p} at {r['rate_per_s']:.0f} msg/s (ms) | {r[p + '_ms']['sub.py']:.2f} "
            f"| {r[p + '_ms']['plain']:.2f} | {r[p + '_ms']['sub.py'] / r[p + '_ms']['plain']:.2f} | |"
        )
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(prog="bench.sh", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts: under a minute")
    parser.add_argument("--json", metavar="PATH", help="also write every figure to PATH as JSON")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each measure (default 3)")
    args = parser.parse_args()
    count = 20_000 if args.quick else 200_000
    latency_seconds = 2 if args.quick else 10

    with tempfile.TemporaryDirectory() as work:
        state = os.path.join(work, "broker")
        local_broker.mint(state, tls=True)
        port = local_broker.free_port()
        log = open(os.path.join(work, "broker.log"), "w")
        server = subprocess.Popen(local_broker.server_command(state, port), stderr=log, stdout=log)
        try:
            while "Server is ready" not in open(log.name).read():
                if server.poll() is not None:
                    raise SystemExit(f"bench: error: nats-server did not start: {open(log.name).read()}")
                time.sleep(0.01)
            env = {k: v for k, v in os.environ.items() if not k.startswith("NATS_")}
            env.update(
                NATS_URL=f"nats://127.0.0.1:{port}",
                NATS_CREDS=os.path.join(state, "user.creds"),
                NATS_CA=os.path.join(state, "ca.pem"),
            )
            bench = Bench(work, env)
            results = {
                "machine": {
                    "cpus": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "processor": platform.machine(),
                },
                "quick": args.quick,
                "reps": args.reps,
            }
            for size in (16, 1024):
                results[f"publish_{size}"] = publish_throughput(bench, count, size, args.reps)
            results["subscribe"] = subscribe_throughput(bench, count, args.reps)
            results["one_shot"] = one_shot(bench, max(args.reps, 5))
            results["latency"] = latency(bench, 1000, latency_seconds, args.reps)
            results["jetstream_publish"] = jetstream_publish(bench, count // 4, args.reps)
            results["jetstream_memory"] = jetstream_memory(
                bench, (10_000, 100_000) if args.quick else (100_000, 1_000_000)
            )
            results["jetstream_consume"] = jetstream_consume(bench, count // 4, args.reps)
        finally:
            server.terminate()
            server.wait()
            log.close()
        with Cluster(os.path.join(work, "cluster")) as env:
            results["jetstream_publish_cluster"] = jetstream_publish(  # more repetitions: its noise is larger
                Bench(work, env), count // 4, max(args.reps, 5), replicas=3
            )

    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
