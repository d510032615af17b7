"""Networks and servers that change under the scripts: a cut, a silent network, a reader too slow for the server,
a server that comes back with another certificate or account. Loss is never silent."""

import re
import shutil
import signal
import subprocess
import time

import local_broker
import pytest
from helpers import LOST_WHILE_AWAY, PYTHON, assert_error, js_call, popen, script


def test_pub_never_claims_success_after_the_connection_was_cut_while_publishing(broker, proxy, start):
    cut = proxy(broker.port)
    pub = start("pub.py", "-s", cut.url, "--subject", "cut.x", "--count", "5000000", "x", env=broker.env())
    pub.wait_for_line("Connected to NATS")
    time.sleep(0.5)  # let it publish a while: there is no line to wait for mid-batch

    cut.cut()

    assert pub.wait(timeout=30) == 1
    assert pub.lines == [f"Connected to NATS at 127.0.0.1:{cut.url.rsplit(':', 1)[1]}..."], "it never says Published"
    assert re.fullmatch(
        r"pub\.py: error: the connection to the server was lost while publishing: of the \d+ messages "
        r"published before, some may not have reached it, and the other \d+ were not sent\n",
        pub.stderr,
    ), pub.stderr


def test_pub_to_a_stream_rides_through_a_cut_and_stores_each_message_once(broker, proxy, start):
    async def make_stream(js):
        await js.add_stream(name="orders", subjects=["cut.x"], storage="file")

    async def stored(js):
        return (await js.stream_info("orders")).state.messages

    js_call(broker, make_stream)
    cut = proxy(broker.port)
    pub = start(
        "pub.py", "-s", cut.url, "--stream", "orders", "--subject", "cut.x", "--count", "200000", "x", env=broker.env()
    )
    while js_call(broker, stored) == 0:  # until pub.py is storing messages
        pass

    cut.cut()  # what was in flight, and its acknowledgements, is lost: sent again, with the same IDs

    assert pub.wait(timeout=60) == 0, pub.stderr
    assert pub.lines[-1] == "Published 200000 messages to 'cut.x' (stream orders)"
    assert js_call(broker, stored) == 200000, "each message stored once, none lost"
    assert re.fullmatch(r"(pub\.py: warning: stream orders is (not answering|answering again) .+\n)*", pub.stderr)


def test_pub_to_a_stream_says_published_once_each_message_is_confirmed_even_if_the_connection_is_then_lost(
    broker, proxy, start
):
    cut = proxy(broker.port)
    cut.cut_at_ping = 2  # the first PING is the connection's own; a second would be a flush() once all is confirmed
    pub = start(
        "pub.py", "-s", cut.url, "--stream", "orders", "--subject", "cut.x", "--count", "1000", "x", env=broker.env()
    )

    assert pub.wait(timeout=30) == 0, pub.stderr
    assert pub.lines[-1] == "Published 1000 messages to 'cut.x' (stream orders)"
    assert pub.stderr == ""


@pytest.mark.parametrize("attempt", range(3))  # which moment the hang-up lands on varies: each run is one
def test_pub_never_claims_success_when_the_server_hangs_up_right_after_accepting(attempt, broker, run, fake_server):
    url = fake_server(b"PONG\r\n")  # accepts the connection, then hangs up: nothing published reaches anyone

    result = run("pub.py", "-s", url, "--timeout", "3", env=broker.env())

    assert_error(result, "pub.py: error: ", ...)
    assert "Published" not in result.stdout


def test_a_silent_network_is_noticed_by_sub_within_about_30_s(broker, proxy, start):
    silent = proxy(broker.port)
    sub = start("sub.py", "-s", silent.url, env=broker.env())
    sub.wait_for_line("Subscription OK")

    silent.silence()

    sub.wait_for_line("Disconnected from NATS, reconnecting...", timeout=45)  # nats-py's defaults: 4 to 6.5 min


def test_a_silent_network_ends_pub_with_one_line_rather_than_retrying_forever(broker, proxy, start):
    silent = proxy(broker.port)
    pub = start("pub.py", "-s", silent.url, "--count", "3000000", "x", env=broker.env())
    pub.wait_for_line("Connected to NATS")
    time.sleep(0.5)  # let it publish a while: there is no line to wait for mid-batch

    silent.silence()

    pub.wait(timeout=60)
    assert_error(pub, "pub.py: error: ", ...)
    assert "Published" not in "\n".join(pub.lines)


def test_a_subscriber_that_cannot_keep_up_is_told_what_it_lost(make_broker, run, workdir):
    # The server cuts a client that does not read for write_deadline; core NATS then drops what it held.
    broker = make_broker(config=['write_deadline: "1s"'])
    sub = popen([PYTHON, script("sub.py")], env=broker.env(), cwd=workdir, stdout=subprocess.PIPE)
    assert [sub.stdout.readline() for _ in range(4)][-1] == b"Subscription OK\n"
    try:
        assert run("pub.py", "--count", "200000", "x" * 200, env=broker.env(), timeout=60).returncode == 0
        time.sleep(3)  # nobody reads sub.py's output meanwhile: the server's write deadline passes
        lines = []
        while not lines or not lines[-1].startswith(b"Reconnected"):
            lines.append(sub.stdout.readline())
            assert lines[-1], "sub.py ended"
        sub.send_signal(signal.SIGINT)
        out, err = sub.communicate(timeout=15)
    finally:
        sub.kill()
    assert b"Disconnected from NATS, reconnecting...\n" in lines
    assert sum(line.startswith(b"Received") for line in lines) < 200000
    assert err.decode().splitlines() == [LOST_WHILE_AWAY]


RUNNING = {
    "sub.py": ([], "Subscription OK"),
    "pub.py": (["--stream", "orders", "--count", "100000000", "x"], "Connected"),
}


@pytest.mark.parametrize("script", RUNNING)
@pytest.mark.parametrize("change", ["certificate", "account"])
def test_a_server_that_rejects_a_script_after_a_restart_is_told_once_then_ends_it(
    script, change, make_broker, start, tmp_path
):
    broker = make_broker(tls=change == "certificate")
    env = broker.env(NATS_CREDS=shutil.copy(broker.creds, tmp_path / "mine.creds"))
    if broker.ca:
        env["NATS_CA"] = shutil.copy(broker.ca, tmp_path / "ca.pem")
    sub = start(script, *RUNNING[script][0], env=env)
    sub.wait_for_line(RUNNING[script][1])

    broker.stop()
    if script == "sub.py":
        sub.wait_for_line("Disconnected from NATS, reconnecting...")
    if change == "certificate":
        local_broker.write_tls_files(broker.state_dir, ("localhost", "127.0.0.1"))  # from a new CA
    else:
        local_broker.mint(broker.state_dir, tls=False)  # a new operator and account: our creds are unknown
    broker.start()

    assert sub.wait(timeout=20) == 1
    if change == "certificate":
        why = (
            f"certificate verification failed for {broker.url}: unable to get local issuer certificate; the CA in "
            f"{env['NATS_CA']} (--tlsca or NATS_CA) did not sign it: the exports may be from the other local broker "
            "(single or --cluster); paste those of the one that runs"
        )
    else:
        why = f"authorization failed at {broker.url}: the server rejected the credentials in {env['NATS_CREDS']}"
    told = [line for line in sub.stderr.splitlines() if "stream orders is" not in line]  # (pub.py: its outage)
    assert told == [f"{script}: warning: {why}; retrying", f"{script}: error: {why}"], sub.stderr
