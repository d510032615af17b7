"""When the server ends the conversation: credentials that expire or are revoked while a script runs, a permission
the credentials lack, a limit the server enforces by closing the connection. Each ends the script with one line
that says why and what to do; none is retried as an outage, and pub.py never claims what the server did not get."""

import re
import time

import local_broker
import nats
import pytest
from helpers import BOTH, assert_error, js_call


async def stored(js):
    try:
        return (await js.stream_info("orders")).state.messages
    except nats.js.errors.NotFoundError:
        return 0


NEW_CREDS = "get one with scripts/create-credentials.sh (Scaleway) or scripts/local-broker.sh"
# Each script, idle or busy (flood: another pub.py publishes to it all along, through a stream: at a pace a subscriber
# keeps up with; what a slower one has not yet read, it reads before the server's goodbye), and what it prints once
# it is at work.
RUNNING = {
    "core sub, idle": ("sub.py", [], None, "Subscription OK"),
    "core sub, busy": ("sub.py", [], ["--stream", "orders", "--subject", "my-subject", "--count", "100000000", "x"],
                       "Received a message"),
    "sub --stream, idle": ("sub.py", ["--stream", "orders"], None, "Subscription OK"),
    "sub --stream, busy": ("sub.py", ["--stream", "orders"], ["--stream", "orders", "--count", "100000000", "x"],
                           "Received a message"),
    "core pub": ("pub.py", ["--count", "1000000000", "x"], None, "Connected to NATS"),
    "pub --stream": ("pub.py", ["--stream", "orders", "--count", "100000000", "x"], None, "Connected to NATS"),
}  # fmt: skip


def running(case, broker, start, creds):
    """The script of that case, started with creds and at work; the flood publisher (if any) with the broker's own."""
    script, args, flood, ready = RUNNING[case]
    if flood:
        start("pub.py", *flood, env=broker.env()).wait_for_line("Connected to NATS")
    proc = start(script, "--creds", creds, *args, env=broker.env())
    proc.wait_for_line(ready)
    while script == "pub.py" and "--stream" in args and js_call(broker, stored) == 0:  # until it stores messages
        pass
    return proc


def assert_told(proc, line, broker):
    """Exit 1, and this line last on stderr; before it, only that the stream was slow to answer (a loaded machine).
    pub.py --stream adds how far it got, and the stream holds what it says: the confirmed, maybe those in flight.

    The server's goodbye can be lost: its close resets a connection the script is writing to, and the reset discards
    what the script had not read yet. Then, as after any lost connection, core pub.py stops saying so, and the others
    reconnect, are told once that the server rejects the credentials, and stop."""
    assert proc.returncode == 1, (proc.lines[-5:], proc.stderr)
    *warnings, last = proc.stderr.splitlines()
    rejected = r"(pub|sub)\.py: (warning|error): authorization failed at .+"
    if re.fullmatch(rejected, last) or last.startswith("pub.py: error: the connection to the server was lost"):
        warnings, line = [w for w in warnings if not re.fullmatch(rejected, w)], None
    if line and "--stream" in proc.command and proc.command[1].endswith("pub.py"):
        counts = re.fullmatch(
            re.escape(line) + r"; (\d+) of 100000000 messages were confirmed stored"
            r"(?:, (\d+) may be \(they were not acknowledged\))? and (\d+) were not",
            last,
        )
        assert counts, last
        confirmed, maybe, unsent = (int(n or 0) for n in counts.groups())
        assert confirmed + maybe + unsent == 100000000
        assert confirmed <= js_call(broker, stored) <= confirmed + maybe
    elif line:
        assert last == line
    assert all(re.fullmatch(r"(pub|sub)\.py: warning: stream orders is (not )?answering .+", w) for w in warnings), (
        warnings
    )
    assert not any(out.startswith("Published") for out in proc.lines)


@pytest.mark.parametrize("case", RUNNING)
def test_credentials_that_expire_while_a_script_runs_end_it_with_one_line_that_says_so(case, broker, start, tmp_path):
    expires = int(time.time()) + 5
    creds = broker.new_creds(str(tmp_path / "short.creds"), expires=expires)
    proc = running(case, broker, start, creds)

    proc.wait(timeout=expires + 10 - time.time())

    script = RUNNING[case][0]
    assert_told(
        proc, f"{script}: error: the server closed the connection: the credentials expired; {NEW_CREDS}", broker
    )


@pytest.mark.parametrize("case", ["core sub, idle", "sub --stream, busy", "core pub", "pub --stream"])
def test_credentials_revoked_while_a_script_runs_end_it_with_one_line_that_says_so(case, broker, start, tmp_path):
    creds = broker.new_creds(str(tmp_path / "revoked.creds"))
    proc = running(case, broker, start, creds)

    broker.revoke(creds)

    proc.wait(timeout=10)
    script = RUNNING[case][0]
    told = f"{script}: error: the server closed the connection: the credentials were revoked; {NEW_CREDS}"
    assert_told(proc, told, broker)


@BOTH
def test_credentials_denied_the_jetstream_api_are_named_at_once_not_retried(script, broker, run, tmp_path):
    creds = broker.new_creds(str(tmp_path / "no-js.creds"), deny_publish=["$JS.API.>"])

    result = run(script, "--creds", creds, "--stream", "orders", *(["x"] if script == "pub.py" else []),
                 env=broker.env())  # fmt: skip

    assert_error(
        result,
        f"{script}: error: permission denied: these credentials may not use JetStream (publish to $JS.API.>); "
        "use credentials that may, or leave out --stream",
    )
    assert result.seconds < 5


def test_credentials_denied_the_streams_subject_are_named_at_once_not_retried(broker, run, tmp_path):
    creds = broker.new_creds(str(tmp_path / "no-orders.creds"), deny_publish=["Orders.new"])

    result = run("pub.py", "--creds", creds, "--stream", "orders", "--subject", "Orders.new", "x", env=broker.env())

    assert_error(result, "pub.py: error: permission denied: these credentials may not publish to 'Orders.new'")
    assert result.seconds < 5


@pytest.mark.parametrize("attempt", range(3))
def test_a_message_over_the_accounts_payload_limit_is_named_never_published(attempt, make_broker, run):
    broker = make_broker(tls=True, jetstream={**local_broker.JETSTREAM, "payload": 1000})

    result = run("pub.py", "x" * 2000, env=broker.env())

    assert_error(
        result,
        "pub.py: error: the server closed the connection: a message was over the account's size limit (maximum "
        "payload violation); publish smaller messages",
    )
    assert result.stdout.splitlines() == [f"Connected to NATS at 127.0.0.1:{broker.port}..."]
