"""MnQ is a cluster: pub.py and sub.py against three real nats-server nodes (JWT, TLS, JetStream), while a node
is killed, or each is restarted in turn, as Scaleway's maintenance does."""

import asyncio
import re
import signal
import ssl
import threading
import time
from collections import Counter

import nats
from helpers import ONE_AT_A_TIME, js_call

pytestmark = ONE_AT_A_TIME


def until_it_answers(action, seconds=60):
    """action(js) again and again while the cluster elects leaders."""

    async def retry(js):
        deadline = time.monotonic() + seconds
        while True:
            try:
                return await action(js)
            except (nats.errors.Error, asyncio.TimeoutError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    return retry


def make_stream(cluster, name="S", replicas=3, consumer=None):
    async def create(js):
        await js.add_stream(name=name, subjects=["s.>"], storage="file", num_replicas=replicas)
        if consumer:  # unacknowledged messages come back after 3 s rather than 30: the test need not wait
            await js.add_consumer(name, durable_name=consumer, ack_wait=3, filter_subject="s.x")

    js_call(cluster, until_it_answers(create))


def stream_info(cluster, name="S"):
    return js_call(cluster, until_it_answers(lambda js: js.stream_info(name)))


def consumer_leader(cluster, stream, consumer):
    info = js_call(cluster, until_it_answers(lambda js: js.consumer_info(stream, consumer)))
    return info.cluster.leader


def store_numbered(cluster, numbers, subject="s.x"):
    """Store each number once, through elections: plain nats-py with message IDs, retried until acknowledged."""

    async def publish(js):
        for n in numbers:
            await until_it_answers(
                lambda js, n=n: js.publish(subject, str(n).encode(), headers={"Nats-Msg-Id": f"test-{n}"})
            )(js)

    js_call(cluster, publish)


def wait_until_current(cluster, name="S"):
    """Wait until every replica of the stream caught up (a restarted node replays what it missed)."""
    deadline = time.monotonic() + 60
    while True:
        info = stream_info(cluster, name)
        replicas = info.cluster.replicas or []
        if (
            info.cluster.leader
            and len(replicas) == info.config.num_replicas - 1
            and all(r.current and not r.offline for r in replicas)
        ):
            return
        assert time.monotonic() < deadline, info.cluster
        time.sleep(0.2)


RECEIVED = re.compile(r"Received a message on '[^']*': (.*)")
NOT_ANSWERING = r"(pub|sub)\.py: warning: (stream S|consumer D of stream S) is not answering \(.+\); trying again .+"
ANSWERING = r"(pub|sub)\.py: warning: (stream S|consumer D of stream S) is answering again after \d+\.\d s"


def payloads(process):
    process.collect(timeout=0.2)
    return [m.group(1) for m in map(RECEIVED.fullmatch, process.lines) if m]


def wait_for_payloads(process, wanted, timeout=60):
    """Wait until the process printed every payload in wanted (some maybe twice); return them all."""
    deadline = time.monotonic() + timeout
    while not wanted <= set(payloads(process)):
        missing = wanted - set(payloads(process))
        assert time.monotonic() < deadline, f"{len(missing)} never printed, e.g. {sorted(missing)[:5]}"
    return payloads(process)


def assert_only_outage_warnings(stderr, ended=False):
    """Warnings that a stream or consumer did not answer for a while, and that it is back: nothing else. ended: each
    outage told has ended, and was told once."""
    lines = stderr.splitlines()
    assert all(re.fullmatch(f"{NOT_ANSWERING}|{ANSWERING}", line) for line in lines), stderr
    if ended:
        assert all(re.fullmatch(ANSWERING if i % 2 else NOT_ANSWERING, line) for i, line in enumerate(lines)), stderr
        assert len(lines) % 2 == 0, stderr


def test_pub_stores_every_message_exactly_once_while_the_stream_leader_is_killed(cluster, start):
    make_stream(cluster)
    leader = stream_info(cluster).cluster.leader
    pub = start("pub.py", "--stream", "S", "--subject", "s.x", "--count", "300000", "m", env=cluster.env())
    while stream_info(cluster).state.messages == 0:  # until pub.py is storing messages
        pass

    cluster.kill(leader)
    time.sleep(3)  # the node is down for a few seconds, as a crashed node is, then comes back
    cluster.start(leader)

    assert pub.wait(120) == 0, pub.stderr
    assert pub.lines[-1] == "Published 300000 messages to 's.x' (stream S)"
    assert stream_info(cluster).state.messages == 300000, "each message stored once, none lost"
    assert_only_outage_warnings(pub.stderr, ended=True)


def test_a_durable_consumer_prints_every_message_while_its_leader_is_killed(cluster, start):
    make_stream(cluster, consumer="D")
    store_numbered(cluster, range(20000))
    leader = consumer_leader(cluster, "S", "D")
    sub = start("sub.py", "--stream", "S", "--subject", "s.x", "--durable", "D", env=cluster.env())
    sub.wait_for_line("Received a message")

    cluster.kill(leader)
    store_numbered(cluster, range(20000, 21000))  # published while that node is down
    printed = wait_for_payloads(sub, {str(n) for n in range(21000)})
    cluster.start(leader)
    sub.signal(signal.SIGTERM)

    assert sub.wait() == 0
    assert sub.lines[-2:] == ["Disconnecting...", "Disconnection OK"]
    assert len(printed) - 21000 <= 2 * 256, "only messages whose acknowledgement was lost come twice"
    assert_only_outage_warnings(sub.stderr)


def test_a_rolling_restart_loses_nothing_and_stores_nothing_twice(cluster, start, run):
    first = run("pub.py", "--stream", "S", "--subject", "s.x", "run-0", env=cluster.env())
    assert first.returncode == 0, first.stderr
    assert stream_info(cluster).config.num_replicas == 3, "a cluster's streams get 3 replicas by default"
    make_stream_consumer = until_it_answers(
        lambda js: js.add_consumer("S", durable_name="D", ack_wait=3, filter_subject="s.x")
    )
    js_call(cluster, make_stream_consumer)
    sub = start("sub.py", "--stream", "S", "--subject", "s.x", "--durable", "D", env=cluster.env())
    sub.wait_for_line("Subscription OK")
    runs, restarted = [first], threading.Event()

    def publish_back_to_back():
        while not restarted.is_set():
            runs.append(
                run(
                    "pub.py",
                    "--stream",
                    "S",
                    "--subject",
                    "s.x",
                    "--count",
                    "3000",
                    f"run-{len(runs)}",
                    env=cluster.env(),
                    timeout=90,
                )
            )

    publisher = threading.Thread(target=publish_back_to_back)
    publisher.start()
    try:
        for name in list(cluster.nodes):
            cluster.stop(name)  # SIGTERM: the node hands its leaderships over, then exits
            cluster.start(name)
            wait_until_current(cluster)
    finally:
        restarted.set()
        publisher.join()

    for result in runs:
        assert result.returncode == 0, result.stderr
        assert_only_outage_warnings(result.stderr)
    claimed = 1 + 3000 * (len(runs) - 1)
    assert [r.stdout.splitlines()[-1] for r in runs[1:]] == ["Published 3000 messages to 's.x' (stream S)"] * (
        len(runs) - 1
    )
    assert stream_info(cluster).state.messages == claimed, "the stream holds exactly what pub.py claimed"
    wanted = Counter({"run-0": 1, **{f"run-{k}": 3000 for k in range(1, len(runs))}})
    deadline = time.monotonic() + 60
    while wanted - Counter(payloads(sub)):  # what sub.py has not printed yet (it may print some twice)
        assert time.monotonic() < deadline, f"sub.py missed messages: {wanted - Counter(payloads(sub))}"
    sub.signal(signal.SIGTERM)
    assert sub.wait() == 0
    assert_only_outage_warnings(sub.stderr)


def test_core_sub_given_one_url_moves_to_another_node_when_that_node_dies(cluster, start, run):
    sub = start("sub.py", "-s", cluster.urls["node-1"], env=cluster.env())
    sub.wait_for_line("Subscription OK")
    assert run("pub.py", "-s", cluster.urls["node-2"], "before", env=cluster.env()).returncode == 0
    sub.wait_for_line("Received a message on 'my-subject': before")

    cluster.kill("node-1")

    sub.wait_for_line("Disconnected from NATS, reconnecting...")
    address = sub.wait_for_line("Reconnected to NATS at ").split(" at ")[1]
    assert address in {f"127.0.0.1:{cluster.ports[name]}" for name in ("node-2", "node-3")}
    assert run("pub.py", "-s", f"nats://{address}", "after", env=cluster.env()).returncode == 0
    sub.wait_for_line("Received a message on 'my-subject': after")
    sub.signal(signal.SIGINT)
    assert sub.wait() == 0


def test_replicas_sets_the_copies_of_a_new_stream_and_an_existing_stream_is_used_as_it_is(cluster, run):
    assert run("pub.py", "--stream", "S", "--subject", "s.x", "--replicas", "1", "x", env=cluster.env()).returncode == 0
    assert stream_info(cluster).config.num_replicas == 1

    again = run("sub.py", "--stream", "S", "--subject", "s.x", "--replicas", "3", "--count", "1", env=cluster.env())

    assert again.returncode == 0, again.stderr
    assert stream_info(cluster).config.num_replicas == 1


def test_an_idle_consumer_sends_at_most_one_pull_request_every_10_s_yet_prints_a_new_message_at_once(cluster, start):
    make_stream(cluster, consumer="D")
    pulls = PullRequests(cluster, "S")
    try:
        sub = start("sub.py", "--stream", "S", "--subject", "s.x", "--durable", "D", env=cluster.env())
        sub.wait_for_line("Subscription OK")
        time.sleep(21)  # the idle time whose cost this measures
        assert pulls.count <= 3, f"{pulls.count} pull requests in 21 s"

        store_numbered(cluster, [1])
        sub.wait_for_line("Received a message on 's.x': 1", timeout=5)  # not at the end of a 20 s poll
        sub.signal(signal.SIGINT)
        assert sub.wait(timeout=5) == 0, "stopped at once, not at the end of a 20 s poll"
        assert sub.lines[-2:] == ["Disconnecting...", "Disconnection OK"]
        assert sub.stderr == ""
    finally:
        pulls.close()


class PullRequests:
    """Counts the pull requests sent to a stream's consumers, as MnQ counts them: from the wire, with a second
    connection of the same account subscribed to $JS.API.CONSUMER.MSG.NEXT.<stream>.>."""

    def __init__(self, cluster, stream):
        self.count = 0
        self._ready, self._done = threading.Event(), None
        self._thread = threading.Thread(target=asyncio.run, args=(self._listen(cluster, stream),), daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    async def _listen(self, cluster, stream):
        async def counted(msg):
            self.count += 1

        nc = await nats.connect(
            cluster.url.split(","), user_credentials=cluster.creds, tls=ssl.create_default_context(cafile=cluster.ca)
        )
        await nc.subscribe(f"$JS.API.CONSUMER.MSG.NEXT.{stream}.>", cb=counted)
        await nc.flush()
        self._loop, self._done = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self._done.wait()
        await nc.close()

    def close(self):
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(10)


WATCHDOG = "could not stop cleanly"  # what the scripts say when stopping took GRACE s: Ctrl+C was not obeyed


def test_ctrl_c_while_sub_waits_for_a_stream_that_lost_its_quorum_ends_at_once(cluster, start):
    make_stream(cluster)
    cluster.kill("node-2")
    cluster.kill("node-3")  # one node of three: no leader can be elected, nothing answers for the stream
    sub = start("sub.py", "-s", cluster.urls["node-1"], "--stream", "S", "--subject", "s.x", env=cluster.env())
    sub.wait_for_line("Subscribing")

    sub.signal(signal.SIGINT)

    assert sub.wait(timeout=10) == 130
    assert WATCHDOG not in sub.stderr
    assert sub.stderr.splitlines()[-1] == "sub.py: error: interrupted waiting for stream S"


def test_ctrl_c_while_pub_streams_to_a_stream_that_lost_its_quorum_says_what_was_confirmed(cluster, start):
    make_stream(cluster)
    pub = start(
        "pub.py", "-s", cluster.urls["node-1"], "--stream", "S", "--subject", "s.x", "--count", "100000000", "m",
        env=cluster.env(),
    )  # fmt: skip
    while stream_info(cluster).state.messages == 0:  # until pub.py is storing messages
        pass
    cluster.kill("node-2")
    cluster.kill("node-3")

    pub.signal(signal.SIGINT)

    assert pub.wait(timeout=10) == 130
    assert WATCHDOG not in pub.stderr
    assert re.fullmatch(
        r"pub\.py: error: interrupted: \d+ of 100000000 messages published to 's\.x' \(stream S\) and confirmed by "
        r"the server; the others were not confirmed",
        pub.stderr.splitlines()[-1],
    ), pub.stderr


def test_a_consumer_without_durable_goes_on_reading_when_its_node_dies(cluster, start):
    make_stream(cluster)
    store_numbered(cluster, range(20000))
    sub = start("sub.py", "--stream", "S", "--subject", "s.x", env=cluster.env())
    sub.wait_for_line("Received a message")
    (consumer,) = js_call(cluster, until_it_answers(lambda js: js.consumers_info("S")))

    cluster.kill(consumer.cluster.leader)
    store_numbered(cluster, range(20000, 21000))  # published while that node is down
    printed = wait_for_payloads(sub, {str(n) for n in range(21000)})
    sub.signal(signal.SIGTERM)

    assert sub.wait() == 0
    assert sub.lines[-2:] == ["Disconnecting...", "Disconnection OK"]
    assert len(printed) - 21000 <= 2 * 256, "only messages whose acknowledgement was lost come twice"
    assert_only_outage_warnings(sub.stderr)


def test_pub_waits_out_messages_the_stream_holds_in_process_and_stores_each_once(cluster, start):
    make_stream(cluster)
    leader = stream_info(cluster).cluster.leader
    pub = start(
        "pub.py", "-s", cluster.urls[leader], "--stream", "S", "--subject", "s.x", "--count", "100000", "m",
        env=cluster.env(),
    )  # fmt: skip
    while stream_info(cluster).state.messages == 0:  # until pub.py is storing messages
        pass
    followers = [cluster.nodes[name] for name in cluster.nodes if name != leader]
    for node in followers:
        node.signal(signal.SIGSTOP)  # frozen: the leader can store nothing more, and holds what it got "in process"
    time.sleep(8)  # longer than pub.py's ACK_WAIT: it sends those again, and is told 10158 (in process)
    for node in followers:
        node.signal(signal.SIGCONT)

    assert pub.wait(120) == 0, pub.stderr
    assert pub.lines[-1] == "Published 100000 messages to 's.x' (stream S)"
    assert stream_info(cluster).state.messages == 100000, "each message stored once, none lost"
    assert_only_outage_warnings(pub.stderr, ended=True)
