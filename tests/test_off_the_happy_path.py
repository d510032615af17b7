"""One step off the documented path: Windows, pipes, signals, hostile payloads, servers that change."""

import asyncio
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import local_broker
import nats
import pytest
from conftest import PYTHON, ROOT, clean_env, free_port
from test_tutorial import LOST_WHILE_AWAY, TUTORIAL_MESSAGES, subscribed

GRACE = 5  # the scripts' GRACE: seconds that stopping may take after Ctrl+C
PYTHONS = os.path.join(ROOT, ".venv", "pythons")


def script(name):
    return os.path.join(ROOT, name)


def publish(broker, payloads):
    """Publish these bytes as they are, with plain nats-py (a command line cannot carry a NUL byte)."""

    async def send():
        nc = await nats.connect(broker.url, user_credentials=broker.creds)
        for payload in payloads:
            await nc.publish("my-subject", payload)
        await nc.drain()

    asyncio.run(send())


def popen(command, env, cwd, **kwargs):
    return subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


# Signals, on every platform


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


# Output: pipes, full disks, hostile payloads, any text


@pytest.mark.skipif(not shutil.which("stdbuf"), reason="stdbuf makes head pass each line on as it comes")
def test_a_closed_pipe_ends_sub_quietly_and_at_once(broker, run, workdir):
    pipeline = subprocess.Popen(
        f"'{PYTHON}' '{script('sub.py')}' --count 50 | stdbuf -oL head -n 6",
        shell=True,
        env=broker.env(),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        first = [pipeline.stdout.readline() for _ in range(4)]
        assert first[-1] == "Subscription OK\n", first  # only now: a message never comes before this line
        assert run("pub.py", "--count", "20", "x", env=broker.env()).returncode == 0
        out, err = pipeline.communicate(timeout=10)
    finally:
        try:
            os.killpg(pipeline.pid, signal.SIGKILL)  # the pipeline's sub.py, if it is still there
        except ProcessLookupError:
            pass

    assert out.splitlines() == ["Received a message on 'my-subject': x", "Headers maybe: None"]
    assert err == "", "no traceback, no warning"
    assert pipeline.returncode == 0


@pytest.mark.skipif(not hasattr(select, "poll"), reason="a closed pipe is noticed without writing where poll() is")
def test_sub_piped_into_head_ends_when_head_exits_even_if_no_message_comes(broker, workdir):
    pipeline = subprocess.Popen(
        f"'{PYTHON}' '{script('sub.py')}' | head -n 4",
        shell=True,
        env=broker.env(),
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = pipeline.communicate(timeout=10)  # no message is ever published
    finally:
        try:
            os.killpg(pipeline.pid, signal.SIGKILL)  # the pipeline's sub.py, if it is still there
        except ProcessLookupError:
            pass

    assert out.splitlines() == [
        "Connection",
        f"Connected to NATS at 127.0.0.1:{broker.port}...",
        "Subscribing",
        "Subscription OK",
    ]
    assert err == ""
    assert pipeline.returncode == 0


def test_an_output_that_cannot_be_written_is_one_line_and_exit_1(broker, workdir):
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [PYTHON, script("sub.py")],
            env=broker.env(),
            cwd=workdir,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=30,
        )

    assert result.returncode == 1
    assert result.stderr.splitlines() == ["sub.py: error: cannot write the output: No space left on device"]


def test_control_characters_and_line_breaks_in_a_payload_are_shown_escaped(broker, start):
    sub = subscribed(start, broker, "--count", "3")

    publish(
        broker,
        [
            b"title\x1b]0;pwned\x07 clear\x1b[2J bell\x07 nul\x00 del\x7f",
            b"one\nReceived a message on 'my-subject': forged\r\nthree\xe2\x80\xa8four",
            "right-to-left \u202eevil".encode(),
        ],
    )

    assert sub.wait() == 0
    assert sub.lines[4:10] == [
        "Received a message on 'my-subject': title\\x1b]0;pwned\\x07 clear\\x1b[2J bell\\x07 nul\\x00 del\\x7f",
        "Headers maybe: None",
        "Received a message on 'my-subject': one\\nReceived a message on 'my-subject': forged\\r\\nthree\\u2028four",
        "Headers maybe: None",
        "Received a message on 'my-subject': right-to-left \\u202eevil",
        "Headers maybe: None",
    ]


def test_bytes_that_are_not_utf8_are_shown_escaped(broker, start, workdir):
    sub = subscribed(start, broker, "--count", "1")

    # A payload given as raw bytes on the command line is sent as it is.
    assert subprocess.run([PYTHON, script("pub.py"), b"caf\xe9 \xff"], env=broker.env(), cwd=workdir).returncode == 0

    assert sub.wait() == 0
    assert sub.lines[4] == "Received a message on 'my-subject': caf\\xe9 \\xff"


@pytest.mark.parametrize("encoding", ["cp1252", "ascii"])
def test_text_in_any_language_prints_as_it_is_whatever_the_output_encoding(encoding, broker, start, run):
    # Windows gives a redirected stdout cp1252; a bare POSIX locale gives ASCII.
    sub = start("sub.py", "--count", "1", env=broker.env(PYTHONIOENCODING=encoding))
    sub.wait_for_line("Subscription OK")

    assert run("pub.py", "héllo wörld ✓ 😀 你好", env=broker.env()).returncode == 0

    assert sub.wait() == 0
    assert sub.lines[4] == "Received a message on 'my-subject': héllo wörld ✓ 😀 你好"
    assert sub.stderr == ""


# Loss is never silent


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


# Servers that change while sub.py reconnects


@pytest.mark.parametrize("change", ["certificate", "account"])
def test_a_server_that_rejects_sub_after_a_restart_is_told_once_then_ends_it(change, make_broker, start, tmp_path):
    broker = make_broker(tls=change == "certificate")
    env = broker.env(NATS_CREDS=shutil.copy(broker.creds, tmp_path / "mine.creds"))
    if broker.ca:
        env["NATS_CA"] = shutil.copy(broker.ca, tmp_path / "ca.pem")
    sub = start("sub.py", env=env)
    sub.wait_for_line("Subscription OK")

    broker.stop()
    sub.wait_for_line("Disconnected from NATS, reconnecting...")
    if change == "certificate":
        local_broker.write_tls_files(broker.state_dir, ("localhost", "127.0.0.1"))  # from a new CA
    else:
        local_broker.mint(broker.state_dir, tls=False)  # a new operator and account: our creds are unknown
    broker.start()

    assert sub.wait(timeout=20) == 1
    if change == "certificate":
        why = (
            f"certificate verification failed for {broker.url}: unable to get local issuer certificate; "
            "if the server uses a private CA, give it with --tlsca or NATS_CA"
        )
    else:
        why = f"authorization failed at {broker.url}: the server rejected the credentials in {env['NATS_CREDS']}"
    assert sub.stderr.splitlines() == [f"sub.py: warning: {why}; retrying", f"sub.py: error: {why}"]


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


# Checked before connecting


@pytest.mark.parametrize(
    "name, args, message",
    [
        (
            "pub.py",
            ["--subject", "orders.*", "x"],
            "argument --subject: cannot publish to 'orders.*': * and > are "
            "wildcards, which only subscribers use; name one subject",
        ),
        (
            "pub.py",
            ["--subject", "orders.>", "x"],
            "argument --subject: cannot publish to 'orders.>': * and > are "
            "wildcards, which only subscribers use; name one subject",
        ),
        (
            "pub.py",
            ["--subject", "a b", "x"],
            "argument --subject: not a valid subject: 'a b' (tokens between single "
            "dots, no spaces; > only as the last token)",
        ),
        (
            "sub.py",
            ["--subject", "a..b"],
            "argument --subject: not a valid subject: 'a..b' (tokens between single "
            "dots, no spaces; > only as the last token)",
        ),
        (
            "sub.py",
            ["--subject", ">.a"],
            "argument --subject: not a valid subject: '>.a' (tokens between single "
            "dots, no spaces; > only as the last token)",
        ),
        ("sub.py", ["--queue", "my q"], "argument --queue: not a valid queue group name: 'my q' (no spaces)"),
        ("sub.py", ["--queue", b"\xff"], "argument --queue: '\\udcff' is not valid UTF-8"),
        ("pub.py", ["--subject", b"caf\xe9"], "argument --subject: 'caf\\udce9' is not valid UTF-8"),
    ],
    ids=["star", "gt", "space", "empty-token", "gt-not-last", "queue-space", "queue-bytes", "subject-bytes"],
)
def test_subjects_and_queue_names_are_checked_before_connecting(name, args, message, broker, workdir):
    result = subprocess.run(
        [PYTHON, script(name), *args],
        env=broker.env(NATS_URL="nats://127.0.0.1:1"),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=10,
    )

    assert result.returncode == 2
    assert result.stderr.startswith(f"usage: {name}")
    assert result.stderr.splitlines()[-1] == f"{name}: error: {message}"


@pytest.mark.parametrize("subject", ["orders.*", "orders.>", ">"])
def test_wildcards_are_fine_for_subscribing(subject, broker, start, run):
    sub = subscribed(start, broker, "--count", "1", "--subject", subject)

    assert run("pub.py", "--subject", "orders.new", "hi", env=broker.env()).returncode == 0

    assert sub.wait() == 0
    assert sub.lines[4] == "Received a message on 'orders.new': hi"


def test_the_size_check_counts_the_headers(make_broker, run):
    broker = make_broker(max_payload=1024)

    result = run("pub.py", "-H", f"Big={'v' * 100}", "x" * 1000, env=broker.env())

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "pub.py: error: message too large: the server accepts at most 1024 bytes (max_payload)"
    ]
    assert result.seconds < 3
    assert run("pub.py", "-H", "Small=v", "x" * 990, env=broker.env()).returncode == 0


@pytest.mark.parametrize("missing", ["nats", "nkeys"])
def test_a_python_without_nats_py_says_what_to_install(missing, broker, workdir, tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = str(bare / "bin" / "python")
    env = broker.env()
    if missing == "nkeys":  # nats-py itself, without its nkeys extra
        shutil.copytree(os.path.dirname(nats.__file__), tmp_path / "lib" / "nats")
        env["PYTHONPATH"] = str(tmp_path / "lib")

    for name in ("pub.py", "sub.py"):
        result = subprocess.run(
            [python, script(name)], env=env, cwd=workdir, capture_output=True, text=True, timeout=10
        )
        assert result.returncode == 1
        assert result.stderr.splitlines() == [
            f"{name}: error: {python} cannot import {missing}; activate .venv (see the README) "
            f"or install nats-py: {python} -m pip install 'nats-py[nkeys]'"
        ]


# Python versions and ways to run


def pythons():
    found = sorted(os.listdir(PYTHONS), key=lambda v: tuple(map(int, v.split(".")))) if os.path.isdir(PYTHONS) else []
    return found or ["none prepared: run bash scripts/test.sh"]


@pytest.mark.parametrize("version", pythons())
def test_the_tutorial_runs_on_every_python_from_3_9(version, broker, start, workdir):
    python = os.path.join(PYTHONS, version, "bin", "python")
    assert os.path.exists(python), "scripts/test.sh prepares a venv per Python (scripts/venv.sh, ensure_pythons)"
    sub = start("sub.py", env=broker.env(), python=python)
    sub.wait_for_line("Subscription OK")

    pub = subprocess.run(
        [python, script("pub.py")], env=broker.env(), cwd=workdir, capture_output=True, text=True, timeout=30
    )
    sub.wait_for_line("Headers maybe: {'Example'")
    sub.signal(signal.SIGINT)

    assert pub.stdout.splitlines()[-1] == "Published 2 messages to 'my-subject'", pub.stderr
    assert sub.wait() == 0
    assert sub.lines[4:] == [*TUTORIAL_MESSAGES, "Disconnecting...", "Disconnection OK"]
    assert sub.stderr == ""


def test_every_supported_python_that_pyenv_has_is_among_them():
    pyenv = os.path.join(os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv")), "versions")
    installed = {v for v in (os.listdir(pyenv) if os.path.isdir(pyenv) else []) if re.fullmatch(r"3\.\d+\.\d+", v)}
    supported = {v for v in installed if (3, 9) <= tuple(map(int, v.split(".")))[:2] <= (3, 13)}
    assert supported <= set(pythons()), f"prepared {pythons()}, pyenv has {sorted(installed)}"


def test_uv_run_needs_no_venv_thanks_to_the_inline_metadata(broker, spawn, workdir):
    uv = os.path.join(os.path.dirname(PYTHON), "uv")
    env = broker.env()
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if not p.startswith(sys.prefix))
    sub = spawn([uv, "run", "--offline", "--quiet", script("sub.py"), "--count", "2"], env=env)
    sub.wait_for_line("Subscription OK")

    pub = subprocess.run(
        [uv, "run", "--offline", "--quiet", script("pub.py")],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert pub.returncode == 0, pub.stderr
    assert sub.wait() == 0
    assert sub.lines[4:8] == TUTORIAL_MESSAGES


def test_venv_sh_finds_the_interpreter_of_a_windows_venv(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(script("scripts/venv.sh"), tmp_path / "scripts" / "venv.sh")
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / ".venv" / "Scripts").mkdir(parents=True)
    os.symlink(PYTHON, tmp_path / ".venv" / "Scripts" / "python.exe")  # where Windows venvs keep it

    result = subprocess.run(
        ["bash", "-c", '. scripts/venv.sh && ensure_venv requirements.txt && echo "$PY $BIN"'],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    venv = tmp_path / ".venv"
    assert result.stdout.split() == [str(venv / "Scripts" / "python.exe"), str(venv / "Scripts")]
    assert not (venv / "bin").exists(), "it made a second venv"


CTRL_C_WHILE_NATS_LOADS = """
import os, signal, sys

class CtrlC:  # the user presses Ctrl+C while Python loads nats-py
    def find_spec(self, name, path=None, target=None):
        if name == "nats":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGINT)

sys.meta_path.insert(0, CtrlC())
"""


@pytest.mark.parametrize("script", ["pub.py", "sub.py"])
def test_ctrl_c_while_python_loads_nats_py_exits_130_without_a_traceback(script, tmp_path, run):
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(CTRL_C_WHILE_NATS_LOADS)

    result = run(script, env=clean_env(PYTHONPATH=str(tmp_path / "hook")))

    assert (result.returncode, result.stdout, result.stderr) == (130, "", "")


def test_header_keys_print_as_plain_strings_even_for_a_status_line(broker, start):
    sub = start("sub.py", "--count", "1", env=broker.env())
    sub.wait_for_line("Subscription OK")

    async def status_message():  # a header block with a status line, as servers send: NATS/1.0 503 Oops
        nc = await nats.connect(broker.url, user_credentials=broker.creds)
        header = bytearray(b"NATS/1.0 503 Oops\r\nKind: test\r\n\r\n")
        await nc._send_command(nats.protocol.command.hpub_cmd("my-subject", "", header, b"x"))
        await nc.flush()
        await nc.close()

    asyncio.run(status_message())

    assert sub.wait() == 0
    headers = sub.lines[sub.lines.index("Received a message on 'my-subject': x") + 1]
    assert "<Header" not in headers and headers.startswith("Headers maybe: {"), headers
    assert "'Description': 'Oops'" in headers, headers


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


# Secrets and other people's text


def test_a_password_in_the_url_is_never_printed(broker, run, start):
    secret = f"nats://alice:s3cretPW@127.0.0.1:{broker.port}"
    sub = start("sub.py", "-s", secret, env=broker.env())
    sub.wait_for_line("Subscription OK")
    refused = run("pub.py", "-s", f"nats://alice:s3cretPW@127.0.0.1:{free_port()}", env=broker.env())
    sub.signal(signal.SIGINT)
    assert sub.wait() == 0

    assert sub.lines[1] == f"Connected to NATS at 127.0.0.1:{broker.port}..."
    assert refused.returncode == 1
    assert "nats://***@127.0.0.1:" in refused.stderr
    assert "s3cretPW" not in "\n".join(sub.lines) + sub.stderr + refused.stdout + refused.stderr


@pytest.fixture
def hostile_server():
    """hostile_server(reply) -> URL of a server on 127.0.0.1 that says hello as NATS does, then answers each
    CONNECT with reply; closed after the test."""
    listeners = []

    def serve(listener, reply):
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                conn.settimeout(10)
                try:
                    conn.sendall(b'INFO {"server_id":"x","version":"2.10.0","max_payload":1048576,"headers":true}\r\n')
                    # Read all the client sent (CONNECT, then PING) before answering: a socket closed with unread
                    # input sends a reset, and the client's kernel then drops the reply unread.
                    received = b""
                    while not received.endswith(b"PING\r\n") and (data := conn.recv(65536)):
                        received += data
                    conn.sendall(reply)
                    conn.shutdown(socket.SHUT_WR)
                    while conn.recv(65536):  # until the client hangs up
                        pass
                except OSError:
                    pass

    def start(reply):
        listeners.append(socket.create_server(("127.0.0.1", 0)))
        threading.Thread(target=serve, args=(listeners[-1], reply), daemon=True).start()
        return f"nats://127.0.0.1:{listeners[-1].getsockname()[1]}"

    yield start
    for listener in listeners:
        listener.close()


@pytest.mark.parametrize("script", ["pub.py", "sub.py"])
def test_a_servers_error_text_reaches_the_terminal_escaped(script, broker, run, hostile_server):
    url = hostile_server(b"-ERR '\x1b[31mEVIL\x1b]0;pwned\x07\xe2\x80\x8b'\r\n")

    result = run(script, "-s", url, "--timeout", "3", env=broker.env())

    assert result.returncode == 1
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\u200b" not in result.stderr
    assert "\\x1b[31mEVIL\\x1b]0;pwned\\x07\\u200b" in result.stderr, result.stderr


def test_paths_are_echoed_escaped(run):
    result = run("pub.py", "--creds", "/nonexistent/\x1b[2Jcreds\u202e", env=clean_env(NATS_URL="nats://127.0.0.1:1"))

    assert result.returncode == 2
    assert result.stderr.startswith("pub.py: error: cannot read credentials file /nonexistent/\\x1b[2Jcreds\\u202e ")


def test_payloads_escape_unicode_format_characters_too(broker, run, start):
    sub = start("sub.py", "--count", "1", env=broker.env())
    sub.wait_for_line("Subscription OK")

    assert run("pub.py", "a\u200bb\u200ec\u200fd\u061ce\ufefff", env=broker.env()).returncode == 0

    assert sub.wait() == 0
    assert "Received a message on 'my-subject': a\\u200bb\\u200ec\\u200fd\\u061ce\\ufefff" in sub.lines


# A cut connection, a silent network


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

    assert pub.wait(timeout=60) == 1
    assert len(pub.stderr.splitlines()) == 1 and pub.stderr.startswith("pub.py: error: "), pub.stderr
    assert "Published" not in "\n".join(pub.lines)
