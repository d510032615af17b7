"""Ctrl+C and SIGTERM at any moment, on every platform: a clean stop, the count of what was confirmed, and an
exit that never hangs."""

import re
import shutil
import signal
import subprocess
import time

import local_broker
from helpers import GRACE, PYTHON, TUTORIAL_MESSAGES, popen, script, subscribed


def test_on_windows_where_the_loop_has_no_add_signal_handler_ctrl_c_still_disconnects_cleanly(
    broker, start, run, tmp_path
):
    # Windows' event loops raise NotImplementedError from add_signal_handler: make this one do the same.
    (tmp_path / "sitecustomize.py").write_text(
        "import asyncio\n"
        "def add_signal_handler(self, *args):\n"
        "    raise NotImplementedError\n"
        "asyncio.AbstractEventLoop.add_signal_handler = add_signal_handler\n"
        "asyncio.SelectorEventLoop.add_signal_handler = add_signal_handler\n"
    )
    env = broker.env(PYTHONPATH=str(tmp_path))
    sub = start("sub.py", env=env)
    sub.wait_for_line("Subscription OK")
    assert run("pub.py", env=env).returncode == 0
    sub.wait_for_line("Headers maybe: {'Example'")

    sub.signal(signal.SIGINT)

    assert sub.wait() == 0
    assert sub.lines[4:] == [*TUTORIAL_MESSAGES, "Disconnecting...", "Disconnection OK"]
    assert sub.stderr == ""


def test_ctrl_c_stops_a_long_publish_and_says_how_many_the_server_confirmed(broker, start):
    counter = subscribed(start, broker)
    pub = start("pub.py", "--count", "3000000", "x", env=broker.env())
    pub.wait_for_line("Connected to NATS")
    time.sleep(0.2)  # let it publish a while: there is no line to wait for mid-batch

    started = time.monotonic()
    pub.signal(signal.SIGINT)

    assert pub.wait() == 130
    assert time.monotonic() - started < 3
    assert pub.lines == [f"Connected to NATS at 127.0.0.1:{broker.port}..."], "it never says Published"
    found = re.fullmatch(
        r"pub\.py: error: interrupted: (\d+) of 3000000 messages published to 'my-subject' and "
        r"confirmed by the server; the others were not sent\n",
        pub.stderr,
    )
    assert found, pub.stderr
    confirmed = int(found.group(1))
    assert 0 < confirmed < 3000000
    received = 0
    while received < confirmed:  # every confirmed message reached the subscriber
        new = counter.collect(timeout=5)
        assert new, f"only {received} of {confirmed} confirmed messages arrived"
        received += sum(line == "Received a message on 'my-subject': x" for line in new)
    assert received == confirmed


def test_any_count_works_without_building_the_batch_and_ctrl_c_gives_the_usual_count(broker, start):
    pub = start("pub.py", "--count", "99999999999999999999", "x", env=broker.env())
    pub.wait_for_line("Connected to NATS")

    pub.signal(signal.SIGINT)

    assert pub.wait() == 130
    assert re.fullmatch(
        r"pub\.py: error: interrupted: \d+ of 99999999999999999999 messages published to "
        r"'my-subject' and confirmed by the server; the others were not sent\n",
        pub.stderr,
    ), pub.stderr


def test_a_second_ctrl_c_exits_at_once_while_a_backlog_is_printed(broker, start, run, workdir):
    sub = popen([PYTHON, script("sub.py")], env=broker.env(), cwd=workdir, stdout=subprocess.PIPE)
    assert sub.stdout.readline() and sub.stdout.readline() and sub.stdout.readline()
    assert sub.stdout.readline() == b"Subscription OK\n"
    assert run("pub.py", "--count", "200000", "x" * 100, env=broker.env(), timeout=60).returncode == 0
    # Nobody reads sub.py's output now: its printing blocks, as with `python3 sub.py | slow-reader`.
    try:
        sub.send_signal(signal.SIGINT)
        time.sleep(0.5)
        started = time.monotonic()
        sub.send_signal(signal.SIGINT)
        assert sub.wait(timeout=GRACE) == 130
        assert time.monotonic() - started < 2
    finally:
        sub.kill()
        sub.communicate()


def test_a_stop_that_takes_too_long_ends_anyway_and_says_so(broker, run, workdir):
    sub = popen([PYTHON, script("sub.py")], env=broker.env(), cwd=workdir, stdout=subprocess.PIPE)
    assert sub.stdout.readline() and sub.stdout.readline() and sub.stdout.readline()
    assert sub.stdout.readline() == b"Subscription OK\n"
    assert run("pub.py", "--count", "200000", "x" * 100, env=broker.env(), timeout=60).returncode == 0
    try:
        started = time.monotonic()
        sub.send_signal(signal.SIGTERM)  # while its output is blocked by a reader that does not read
        assert sub.wait(timeout=GRACE + 5) == 128 + signal.SIGTERM
        assert GRACE - 0.5 < time.monotonic() - started < GRACE + 3
        assert sub.stderr.read().decode().splitlines() == [
            f"sub.py: warning: could not stop cleanly within {GRACE} s; exiting anyway "
            "(what was not yet printed or sent is lost)"
        ]
    finally:
        sub.kill()
        sub.communicate()


def test_ctrl_c_while_reconnecting_to_a_server_whose_certificate_fails_exits_cleanly(make_broker, start, tmp_path):
    broker = make_broker(tls=True)
    sub = start("sub.py", env=broker.env(NATS_CA=shutil.copy(broker.ca, tmp_path / "ca.pem")))
    sub.wait_for_line("Subscription OK")
    broker.stop()
    sub.wait_for_line("Disconnected from NATS, reconnecting...")
    local_broker.write_tls_files(broker.state_dir, ("localhost", "127.0.0.1"))
    broker.start()
    time.sleep(1.5)  # a failed TLS handshake or two; there is no line to wait for

    started = time.monotonic()
    sub.signal(signal.SIGINT)

    assert sub.wait(timeout=10) == 0
    assert time.monotonic() - started < GRACE
    assert sub.lines[-2:] == ["Disconnecting...", "Disconnection OK"]
