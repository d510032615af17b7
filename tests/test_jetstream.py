"""Keeping messages while sub.py is down: pub.py --stream and sub.py --stream [--durable], against a real
nats-server with JetStream (file storage only, as on Scaleway) and .creds authentication."""

import os
import re
import signal
import subprocess
import time
from collections import Counter

import nats
import pytest
from helpers import (
    BOTH,
    PYTHON,
    ROOT,
    TUTORIAL_MESSAGES,
    assert_error,
    assert_usage_error,
    js_call,
    readme_blocks,
    run_as_written,
)

RECEIVED = "Received a message on 'orders.messages': "


def publish_numbered(broker, count, stream="orders", start=0):
    """Store start, ..., start+count-1 in the stream, so that every message can be told apart."""

    async def publish(js):
        await js.add_stream(name=stream, subjects=[f"{stream}.messages"], storage="file")
        for i in range(start, start + count):
            await js.publish(f"{stream}.messages", str(i).encode())

    js_call(broker, publish)


def numbers(lines):
    return [int(line[len(RECEIVED) :]) for line in lines if line.startswith(RECEIVED)]


def consume(start, broker, *args):
    sub = start("sub.py", "--stream", "orders", *args, env=broker.env())
    sub.wait_for_line("Subscription OK")
    return sub


def wait_for_messages(subs, total, timeout=30):
    """Wait until the running subscribers printed total messages between them (in their .lines)."""
    deadline = time.monotonic() + timeout
    while sum(len(numbers(sub.lines)) for sub in subs) < total:
        assert time.monotonic() < deadline, f"{sum(len(numbers(sub.lines)) for sub in subs)} of {total} arrived"
        for sub in subs:
            sub.collect(timeout=0.1)


def test_messages_published_while_nobody_listens_are_all_read_later(broker, run, start):
    published = run("pub.py", "--stream", "orders", "--count", "1000", "stored", env=broker.env())

    assert published.returncode == 0, published.stderr
    assert published.stdout.splitlines()[-1] == "Published 1000 messages to 'orders.messages' (stream orders)"
    sub = start("sub.py", "--stream", "orders", "--durable", "reader", "--count", "1000", env=broker.env())
    assert sub.wait() == 0
    assert sub.lines.count(f"{RECEIVED}stored") == 1000
    assert sub.lines[-2:] == ["Disconnecting...", "Disconnection OK"]


def without_message_ids(lines):
    """The lines with each Nats-Msg-Id header taken out of "Headers maybe:" (the IDs are random)."""
    lines = [re.sub(r"'Nats-Msg-Id': '[0-9a-f]{16}-\d+'", "", line) for line in lines]
    return [line.replace(", }", "}").replace("{}", "None") for line in lines]


def test_the_tutorial_messages_look_the_same_through_a_stream_with_a_message_id_each(broker, run, start):
    assert run("pub.py", "--stream", "orders", env=broker.env()).returncode == 0

    sub = start("sub.py", "--stream", "orders", "--count", "2", env=broker.env())

    assert sub.wait() == 0
    through_the_stream = [line.replace("'my-subject'", "'orders.messages'") for line in TUTORIAL_MESSAGES]
    assert without_message_ids(sub.lines[4:]) == [*through_the_stream, "Disconnecting...", "Disconnection OK"]
    ids = re.findall(r"'Nats-Msg-Id': '([0-9a-f]{16})-(\d+)'", "\n".join(sub.lines))
    assert [n for _, n in ids] == ["0", "1"] and ids[0][0] == ids[1][0], "one ID per message of a run"


def test_a_stream_on_a_single_server_has_one_replica(broker, run):
    assert run("pub.py", "--stream", "orders", env=broker.env()).returncode == 0

    async def replicas(js):
        return (await js.stream_info("orders")).config.num_replicas

    assert js_call(broker, replicas) == 1


def test_a_stream_without_subject_captures_a_subject_of_its_own_never_the_tutorials(broker, run, start):
    published = run("pub.py", "--stream", "orders", "order 5", env=broker.env())
    assert run("pub.py", env=broker.env()).returncode == 0  # step 3's two messages, on my-subject

    assert published.stdout.splitlines()[-1] == "Published 1 message to 'orders.messages' (stream orders)"

    async def stream(js):
        info = await js.stream_info("orders")
        return info.config.subjects, info.state.messages

    assert js_call(broker, stream) == (["orders.messages"], 1)
    sub = start("sub.py", "--stream", "orders", "--count", "1", env=broker.env())
    assert sub.wait() == 0
    assert f"{RECEIVED}order 5" in sub.lines


def test_a_durable_consumer_resumes_after_the_last_acknowledged_message(broker, start):
    publish_numbered(broker, 100)

    first = consume(start, broker, "--durable", "shipping", "--count", "40")
    assert first.wait() == 0
    second = consume(start, broker, "--durable", "shipping")
    wait_for_messages([second], 60)
    second.signal(signal.SIGINT)

    assert second.wait() == 0
    assert numbers(first.lines) == list(range(40))
    assert numbers(second.lines) == list(range(40, 100)), "nothing twice once acknowledged"


def test_without_durable_the_stream_is_replayed_from_its_start(broker, start):
    publish_numbered(broker, 10)
    for _ in range(2):
        sub = consume(start, broker, "--count", "10")
        assert sub.wait() == 0
        assert numbers(sub.lines) == list(range(10))


def test_ctrl_c_while_messages_flow_acknowledges_what_was_printed_and_loses_nothing(broker, start):
    publish_numbered(broker, 20000)
    for durable in ("shipping", "packing", "billing"):  # Ctrl+C lands at another moment of a fetch each time
        first = consume(start, broker, "--durable", durable)
        first.wait_for_line(RECEIVED)

        first.signal(signal.SIGINT)

        assert first.wait() == 0
        assert first.lines[-2:] == ["Disconnecting...", "Disconnection OK"]
        printed = numbers(first.lines)
        assert 0 < len(printed) < 20000
        second = consume(start, broker, "--durable", durable)
        # Well within the ack wait (30 s): what the first one had fetched but not printed was handed back at once.
        wait_for_messages([second], 20000 - len(printed), timeout=15)
        second.signal(signal.SIGINT)
        assert second.wait() == 0
        assert sorted(printed + numbers(second.lines)) == list(range(20000)), "none lost, none twice"


def test_ctrl_c_with_nothing_to_read_disconnects_cleanly(broker, start):
    sub = consume(start, broker, "--durable", "idle")
    started = time.monotonic()

    sub.signal(signal.SIGINT)

    assert sub.wait() == 0
    assert time.monotonic() - started < 3
    assert sub.lines == [
        "Connection",
        f"Connected to NATS at 127.0.0.1:{broker.port}...",
        "Subscribing",
        "Subscription OK",
        "Disconnecting...",
        "Disconnection OK",
    ]
    assert sub.stderr == ""


def test_a_killed_consumer_gets_every_message_after_a_restart(broker, start):
    publish_numbered(broker, 5000)

    async def short_ack_wait(js):  # unacknowledged messages come back after 2 s rather than 30
        await js.add_consumer("orders", durable_name="shipping", ack_wait=2, filter_subject="orders.messages")

    js_call(broker, short_ack_wait)
    first = consume(start, broker, "--durable", "shipping")
    first.wait_for_line(f"{RECEIVED}1000")

    first.proc.kill()  # kill -9: no drain, no last acknowledgements
    first.wait()
    printed = numbers(first.lines)
    second = consume(start, broker, "--durable", "shipping")
    wait_for_messages([second], len(set(range(5000)) - set(printed)))
    second.collect(timeout=1)  # a late redelivery would show now
    second.signal(signal.SIGINT)
    assert second.wait() == 0

    again = numbers(second.lines)
    assert set(printed) | set(again) == set(range(5000)), "every message arrives"
    twice = set(printed) & set(again)
    assert len(twice) <= 2 * 256, "only what was in flight, unacknowledged, comes back"
    assert not twice or min(twice) > max(printed) - 2 * 256, "only the last ones printed before the kill"
    assert max(Counter(again).values()) == 1


def test_stored_messages_survive_a_broker_restart(broker, run, start):
    assert run("pub.py", "--stream", "orders", "--count", "3", "kept", env=broker.env()).returncode == 0

    broker.stop()
    broker.start()

    sub = start("sub.py", "--stream", "orders", "--durable", "after", "--count", "3", env=broker.env())
    assert sub.wait() == 0
    assert sub.lines.count(f"{RECEIVED}kept") == 3


def test_a_consumer_carries_on_after_a_broker_restart_and_misses_nothing(broker, start, run):
    sub = consume(start, broker, "--durable", "shipping")
    assert run("pub.py", "--stream", "orders", "before", env=broker.env()).returncode == 0
    sub.wait_for_line(f"{RECEIVED}before")

    broker.stop()
    sub.wait_for_line("Disconnected from NATS, reconnecting...")
    broker.start()
    sub.wait_for_line(f"Reconnected to NATS at 127.0.0.1:{broker.port}")
    assert run("pub.py", "--stream", "orders", "after", env=broker.env()).returncode == 0
    sub.wait_for_line(f"{RECEIVED}after")
    sub.signal(signal.SIGINT)

    assert sub.wait() == 0
    assert [line for line in sub.lines if line.startswith(RECEIVED)] == [f"{RECEIVED}before", f"{RECEIVED}after"]
    assert sub.stderr == "", "nothing is lost: no warning that something was"


def test_two_workers_on_one_durable_share_the_messages_each_to_exactly_one(broker, start):
    workers = [consume(start, broker, "--durable", "workers") for _ in range(2)]

    publish_numbered(broker, 2000)
    # A batch that stops filling (the other worker took the rest) is handed over when its pull expires (20 s).
    wait_for_messages(workers, 2000, timeout=60)
    for worker in workers:
        worker.collect(timeout=0.5)  # a message given twice would show now
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0

    each = [numbers(worker.lines) for worker in workers]
    assert sorted(each[0] + each[1]) == list(range(2000)), "none lost, none twice"
    assert each[0] and each[1], "one worker got nothing"


# Bad input: one line, a non-zero exit, no traceback, no hang


@BOTH
@pytest.mark.parametrize("without", ["account", "server"])
def test_an_account_without_jetstream_is_named(script, without, make_broker, run):
    # The account's JWT grants no JetStream (the server answers 10039), or the server has none (no responders).
    broker = make_broker(jetstream=None) if without == "account" else make_broker(config=["jetstream: disabled"])

    result = run(script, "--stream", "orders", env=broker.env())

    assert_error(
        result,
        f"{script}: error: JetStream is not enabled for this account at {broker.url}; "
        "publish and subscribe without --stream",
    )
    assert result.seconds < 10


@BOTH
def test_a_stream_that_does_not_capture_the_subject_names_its_subjects(script, broker, run):
    assert run("pub.py", "--stream", "orders", "--subject", "orders.new", "x", env=broker.env()).returncode == 0

    result = run(script, "--stream", "orders", "--subject", "invoices", env=broker.env())

    assert_error(
        result,
        f"{script}: error: stream orders does not capture 'invoices': its subjects are "
        "'orders.new'; use one of them with --subject, or another --stream",
        code=2,
    )
    assert result.seconds < 10


@pytest.mark.parametrize(
    "script, args, message",
    [
        (
            "pub.py",
            ["--stream", "my.orders"],
            "argument --stream: not a valid name: 'my.orders' (no spaces, no . * > / or \\)",
        ),
        (
            "sub.py",
            ["--stream", "orders", "--durable", "a b"],
            "argument --durable: not a valid name: 'a b' (no spaces, no . * > / or \\)",
        ),
        (
            "sub.py",
            ["--stream", "or*ders"],
            "argument --stream: not a valid name: 'or*ders' (no spaces, no . * > / or \\)",
        ),
        ("sub.py", ["--durable", "shipping"], "--durable needs --stream: a durable consumer reads a JetStream stream"),
        ("pub.py", ["--replicas", "3"], "--replicas needs --stream: it is the number of copies of a new stream"),
        (
            "sub.py",
            ["--stream", "orders", "--replicas", "6"],
            "argument --replicas: invalid choice: 6 (choose from 1, 2, 3, 4, 5)",
        ),
        (
            "sub.py",
            ["--stream", "orders", "--queue", "workers"],
            "--queue is for core NATS; with --stream, share the messages by giving several sub.py the same --durable",
        ),
    ],
)
def test_bad_stream_flags_are_a_usage_error(script, args, message, run):
    result = run(script, *args, env={})

    assert_usage_error(result, script, message)


def test_messages_the_stream_refuses_mid_run_are_a_failure_with_exact_counts(broker, run):
    async def small_stream(js):  # at most 5000 messages, and new ones are refused rather than old ones dropped
        await js.add_stream(name="orders", subjects=["orders.messages"], max_msgs=5000, discard="new")

    js_call(broker, small_stream)

    result = run("pub.py", "--stream", "orders", "--count", "12000", "x", env=broker.env())

    assert_error(
        result,
        "pub.py: error: stream orders: the server refused: maximum messages exceeded; 5000 of 12000 messages were "
        "confirmed stored and 7000 were not",
    )
    assert "Published" not in result.stdout

    async def stored(js):
        return (await js.stream_info("orders")).state.messages

    assert js_call(broker, stored) == 5000


def test_the_local_broker_refuses_memory_streams_as_scaleway_does(broker):
    async def memory_stream(js):
        await js.add_stream(name="fast", subjects=["fast"], storage="memory")

    with pytest.raises(nats.js.errors.ServerError, match="insufficient memory resources available"):
        js_call(broker, memory_stream)


# The README's step 5, as written


def test_the_readme_step_keep_messages_while_sub_is_down_works_as_written(tls_broker):
    broker = tls_broker  # like MnQ: TLS, where asyncio's noise about closed TLS connections would show on stderr
    env = broker.env(PATH=f"{os.path.dirname(PYTHON)}:{os.environ['PATH']}")  # python3 is the venv's, as activated
    blocks = readme_blocks("### 5. Keep messages while sub.py is down", "### 6. When a server goes down")
    commands = [body for kind, body in blocks if kind == "bash"]
    outputs = [body for kind, body in blocks if kind == "text"]
    assert len(commands) == len(outputs) >= 3

    for command, expected in zip(commands[:-1], outputs[:-1]):
        # Message IDs are random: any 16 hex digits where the README shows some.
        pattern = re.sub(r"'[0-9a-f]{16}\\-", lambda _: "'[0-9a-f]{16}-", re.escape(expected))
        assert re.fullmatch(pattern, run_as_written(command, env)), command

    # What the step says on the way: step 3's messages are stored by no stream; a new durable starts at the first.
    assert run_as_written("python3 pub.py", env).endswith("Published 2 messages to 'my-subject'\n")

    async def stored(js):
        return [(info.config.name, info.state.messages) for info in await js.streams_info()]

    assert js_call(broker, stored) == [("orders", 4)]
    packing = run_as_written("python3 sub.py --stream orders --subject orders.new --durable packing --count 4", env)
    assert re.findall(r": (order \d)", packing) == ["order 1", "order 2", "order 3", "order 4"]

    assert run_as_written(commands[-1], env) == outputs[-1]
    assert js_call(broker, stored) == [], "the step ends by deleting its stream"
    assert run_as_written(commands[-1], env) == "There is no stream orders: nothing to delete\n"


# When the stream does not answer, or is gone


def test_a_broker_stopped_with_sigterm_while_sub_reads_a_backlog_is_waited_for_not_called_no_jetstream(broker, start):
    publish_numbered(broker, 20000)
    sub = consume(start, broker, "--durable", "shipping")
    sub.wait_for_line(RECEIVED)

    broker.proc.signal(signal.SIGTERM)  # Ctrl+C on local-broker.sh: JetStream shuts down before the connection
    broker.proc.wait()
    broker.start()
    wait_for_messages([sub], 20000)
    sub.signal(signal.SIGINT)

    assert sub.wait() == 0
    assert set(numbers(sub.lines)) == set(range(20000))
    assert "JetStream is not enabled" not in sub.stderr
    assert "Traceback" not in sub.stderr


@pytest.mark.parametrize(
    "deleted, message",
    [
        ("stream", "sub.py: error: stream orders was deleted while sub.py was reading it"),
        ("consumer", "sub.py: error: consumer shipping was deleted while sub.py was reading it"),
    ],
)
def test_a_stream_or_consumer_deleted_while_sub_reads_is_named(deleted, message, broker, start):
    publish_numbered(broker, 3)
    sub = consume(start, broker, "--durable", "shipping")
    sub.wait_for_line(f"{RECEIVED}2")

    async def delete(js):
        if deleted == "stream":
            await js.delete_stream("orders")
        else:
            await js.delete_consumer("orders", "shipping")

    js_call(broker, delete)

    assert sub.wait() == 1
    assert sub.stderr.splitlines()[-1] == message
    assert "JetStream is not enabled" not in sub.stderr


def test_a_pull_request_left_by_a_stopped_sub_takes_no_message_away(broker, start):
    publish_numbered(broker, 1)
    idle = consume(start, broker, "--durable", "shipping")
    idle.wait_for_line(f"{RECEIVED}0")
    idle.signal(signal.SIGINT)  # while its long poll waits on the server
    assert idle.wait() == 0

    publish_numbered(broker, 1, start=1)
    nxt = consume(start, broker, "--durable", "shipping", "--count", "1")

    assert nxt.wait(timeout=10) == 0, "the message went to the stopped sub.py's pull request (held 30 s)"
    assert numbers(nxt.lines) == [1]


def test_ctrl_c_stops_a_stream_publish_and_says_how_many_the_stream_confirmed(broker, start):
    async def stored(js):
        return (await js.stream_info("orders")).state.messages

    publish_numbered(broker, 0)  # the stream, empty
    pub = start("pub.py", "--stream", "orders", "--count", "3000000", "x", env=broker.env())
    while js_call(broker, stored) == 0:  # until pub.py is storing messages
        pass

    pub.signal(signal.SIGINT)

    assert pub.wait() == 130
    assert pub.lines == [f"Connected to NATS at 127.0.0.1:{broker.port}..."], "it never says Published"
    found = re.fullmatch(
        r"pub\.py: error: interrupted: (\d+) of 3000000 messages published to 'orders.messages' \(stream orders\) and "
        r"confirmed by the server; the others were not confirmed\n",
        pub.stderr,
    )
    assert found, pub.stderr
    confirmed = int(found.group(1))
    # What it confirmed is stored; at most the 4000 in flight, unconfirmed, may be stored too.
    assert 0 < confirmed <= js_call(broker, stored) <= confirmed + 4000


def test_pub_gives_up_on_a_stream_that_does_not_answer_and_says_what_is_confirmed(broker, run, spawn):
    publish_numbered(broker, 1)
    pub = spawn(
        [PYTHON, os.path.join(ROOT, "pub.py"), "--stream", "orders", "--count", "2000000", "x"], env=broker.env()
    )
    pub.wait_for_line("Connected to NATS")

    async def stored(js):
        return (await js.stream_info("orders")).state.messages - 1

    while js_call(broker, stored) == 0:  # until pub.py is storing messages
        pass
    try:
        broker.proc.signal(signal.SIGSTOP)  # a server that no longer answers, with its connection still open
        assert pub.wait(timeout=60) == 1
    finally:
        broker.proc.signal(signal.SIGCONT)

    found = re.fullmatch(
        r"pub\.py: warning: stream orders is not answering \(nats: timeout\); trying again for up "
        r"to 30 s\npub\.py: error: stream orders did not answer for 30 s; (\d+) of 2000000 messages were confirmed "
        r"stored, (\d+) may be \(they were not acknowledged\) and (\d+) were not\n",
        pub.stderr,
    )
    assert found, pub.stderr
    confirmed, unconfirmed, unsent = map(int, found.groups())
    assert confirmed + unconfirmed + unsent == 2000000
    assert "Published" not in "\n".join(pub.lines)
    assert confirmed <= js_call(broker, stored) <= confirmed + unconfirmed


@BOTH
def test_a_subject_another_stream_captures_names_that_stream(script, broker, run):
    assert run("pub.py", "--stream", "orders", "--subject", "orders.new", "x", env=broker.env()).returncode == 0

    result = run(script, "--stream", "big", "--subject", "orders.new", env=broker.env())

    assert_error(
        result,
        f"{script}: error: stream orders already captures 'orders.new'; use --stream orders, or another --subject",
        code=2,
    )
    assert result.seconds < 10


def test_a_durable_consumer_made_for_another_subject_is_an_error_that_names_its_subject(broker, run):
    async def two_subjects(js):
        await js.add_stream(name="fs", subjects=["fs.>"], storage="file")
        await js.publish("fs.a", b"for a")
        await js.publish("fs.b", b"for b")

    js_call(broker, two_subjects)
    first = run("sub.py", "--stream", "fs", "--subject", "fs.a", "--durable", "D", "--count", "1", env=broker.env())
    assert first.returncode == 0, first.stderr

    result = run("sub.py", "--stream", "fs", "--subject", "fs.b", "--durable", "D", env=broker.env())

    assert_error(
        result,
        "sub.py: error: consumer D of stream fs reads 'fs.a', not 'fs.b'; use --subject fs.a, or another --durable",
        code=2,
    )
    assert result.seconds < 10
    assert "Received" not in result.stdout

    async def pending(js):
        info = await js.consumer_info("fs", "D")
        return info.num_pending, info.num_ack_pending

    assert js_call(broker, pending) == (0, 0), "nothing handed out or acknowledged"


def test_acknowledgements_leave_while_sub_prints_not_only_at_the_next_fetch(broker, workdir):
    publish_numbered(broker, 5000)
    reader, writer = os.pipe()  # sub.py's output: a pipe nobody reads, so it blocks mid-batch once the pipe is full
    sub = subprocess.Popen(
        [PYTHON, os.path.join(ROOT, "sub.py"), "--stream", "orders", "--durable", "shipping"],
        stdout=writer,
        stderr=subprocess.DEVNULL,
        env=broker.env(),
        cwd=workdir,
    )
    os.close(writer)

    async def acknowledged(js):
        return (await js.consumer_info("orders", "shipping")).ack_floor.stream_seq

    try:
        deadline, floor = time.monotonic() + 15, -1
        while True:  # until the acknowledgements stop moving: sub.py is blocked on its output
            time.sleep(0.5)
            before, floor = floor, js_call(broker, acknowledged)
            if floor == before or time.monotonic() > deadline:
                break
    finally:
        sub.kill()
        sub.wait()
    with os.fdopen(reader) as pipe:
        printed = numbers(pipe.read().splitlines())

    assert len(printed) > 300, "the pipe took several batches"
    # At most 32 acknowledgements wait to be sent together, and the message being printed is not acknowledged yet.
    assert floor >= len(printed) - 33, f"{len(printed)} printed, only {floor} acknowledged"


def test_a_consumer_at_its_limit_of_unacknowledged_messages_is_told_with_the_ack_wait(broker, start):
    publish_numbered(broker, 20)

    async def crashed_consumers(js):  # 5 handed out and never acknowledged, as by sub.py killed with -9
        await js.add_consumer(
            "orders", durable_name="shipping", filter_subject="orders.messages", max_ack_pending=5, ack_wait=30
        )
        await (await js.pull_subscribe("orders.messages", durable="shipping", stream="orders")).fetch(5)

    js_call(broker, crashed_consumers)
    sub = consume(start, broker, "--durable", "shipping")
    sub.signal(signal.SIGINT)

    assert sub.wait() == 0
    assert sub.stderr.splitlines() == [
        "sub.py: warning: consumer shipping has 5 messages handed out and not acknowledged, its limit "
        "(max_ack_pending): it gets no message until the server hands them out again, after the ack wait (30 s)"
    ]
