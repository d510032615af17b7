"""MnQ's quotas, which the local broker (and every broker of these tests) has too: 512 KB messages, 300 MB of
stream storage per account, 50 streams per account, 50 consumers per stream. At each, pub.py and sub.py stop with
one line that names the limit and MnQ's quota."""

import nats
import pytest
from helpers import BOTH, assert_error, js_call

STREAMS = "maximum number of streams reached (MnQ's quota: 50 streams per account); delete streams you no longer need"
CONSUMERS = (
    "maximum consumers limit reached (MnQ's quota: 50 consumers per stream); delete those you no longer need "
    "(sub.py's own, without --durable, go 5 min after it stops)"
)


@BOTH
def test_the_51st_stream_is_refused_naming_mnqs_quota(script, broker, run):
    async def fifty_streams(js):
        for i in range(50):
            await js.add_stream(name=f"s{i}", subjects=[f"s{i}"])

    js_call(broker, fifty_streams)

    result = run(
        script,
        "--stream",
        "orders",
        "--subject",
        "orders.new",
        *(["x"] if script == "pub.py" else []),
        env=broker.env(),
    )

    assert_error(result, f"{script}: error: stream orders: {STREAMS}")


@pytest.mark.parametrize("durable", [[], ["--durable", "shipping"]], ids=["own consumer", "durable"])
def test_the_51st_consumer_of_a_stream_is_refused_naming_mnqs_quota(durable, broker, run):
    async def fifty_consumers(js):
        await js.add_stream(name="orders", subjects=["orders.new"])
        for i in range(50):
            await js.add_consumer("orders", durable_name=f"c{i}")

    js_call(broker, fifty_consumers)

    result = run("sub.py", "--stream", "orders", "--subject", "orders.new", *durable, env=broker.env())

    assert_error(result, f"sub.py: error: stream orders: {CONSUMERS}")


def test_a_full_account_storage_is_refused_naming_mnqs_quota(broker, run):
    async def fill(js):  # up to 350 MB, past MnQ's 300 MB if the broker has that quota, then to the last byte
        await js.add_stream(name="archive", subjects=["archive"])
        refused = []
        for size, most in ((500_000, 700), (10_000, 100), (100, 200), (1, 200)):
            for _ in range(most):
                try:
                    await js.publish("archive", b"x" * size)
                except nats.js.errors.APIError as e:
                    refused.append(e.err_code)
                    break
        return refused

    assert js_call(broker, fill) == [10002] * 4

    result = run("pub.py", "--stream", "orders", "--subject", "orders.new", "x", env=broker.env())

    assert_error(
        result,
        "pub.py: error: stream orders: the account's storage is full (resource limits exceeded for account; MnQ's "
        "quota: 300 MB per account, each replica counted); delete streams you no longer need; 0 of 1 messages were "
        "confirmed stored and 1 were not",
    )


@pytest.mark.parametrize("stream", [[], ["--stream", "orders"]], ids=["core", "--stream"])
def test_a_600_kb_message_is_refused_naming_mnqs_quota(stream, broker, run):
    # 5 headers of 120 KB and 10 KB of payload: one argument may not exceed 128 KB on Linux.
    headers = [arg for i in range(5) for arg in ("-H", f"H{i}={'h' * 120_000}")]

    result = run("pub.py", *stream, *headers, "x" * 10_000, env=broker.env())

    assert_error(
        result,
        "pub.py: error: message too large: the server accepts at most 524288 bytes with the headers (max_payload; "
        "MnQ's quota: 512 KB)",
    )
    assert result.stdout == f"Connected to NATS at 127.0.0.1:{broker.port}...\n"
