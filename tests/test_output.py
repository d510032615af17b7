"""What reaches the terminal: pipes that close, disks that fill, any text in any encoding, and other people's
text (payloads, headers, server errors, paths) shown escaped; secrets never shown."""

import asyncio
import shutil
import signal
import subprocess

import nats
import pytest
from helpers import BOTH, PYTHON, assert_error, clean_env, free_port, publish, script, shell_pipeline, subscribed


@pytest.mark.skipif(not shutil.which("stdbuf"), reason="stdbuf makes head pass each line on as it comes")
def test_a_closed_pipe_ends_sub_quietly_at_its_next_write(broker, run, workdir):
    with shell_pipeline(
        f"'{PYTHON}' '{script('sub.py')}' --count 1000 | stdbuf -oL head -n 6", broker.env(), workdir
    ) as pipeline:
        first = [pipeline.stdout.readline() for _ in range(4)]
        assert first[-1] == "Subscription OK\n", first  # only now: a message never comes before this line
        assert run("pub.py", "--count", "20", "x", env=broker.env()).returncode == 0
        out = [pipeline.stdout.readline() for _ in range(2)]  # head's last two lines: head is done
        # Like any Unix filter, sub.py notices at its next write (the pipe may have taken all 20 before head left).
        for _ in range(5):
            if pipeline.poll() is None:
                assert run("pub.py", "x", env=broker.env()).returncode == 0
        rest, err = pipeline.communicate(timeout=10)

    assert out + [rest] == ["Received a message on 'my-subject': x\n", "Headers maybe: None\n", ""]
    assert err == "", "no traceback, no warning"
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

    assert_error(result, "sub.py: error: cannot write the output: No space left on device")


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


def test_payloads_escape_unicode_format_characters_too(broker, run, start):
    sub = start("sub.py", "--count", "1", env=broker.env())
    sub.wait_for_line("Subscription OK")

    assert run("pub.py", "a\u200bb\u200ec\u200fd\u061ce\ufefff", env=broker.env()).returncode == 0

    assert sub.wait() == 0
    assert "Received a message on 'my-subject': a\\u200bb\\u200ec\\u200fd\\u061ce\\ufefff" in sub.lines


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


@BOTH
def test_a_servers_error_text_reaches_the_terminal_escaped(script, broker, run, fake_server):
    url = fake_server(b"-ERR '\x1b[31mEVIL\x1b]0;pwned\x07\xe2\x80\x8b'\r\n")

    result = run(script, "-s", url, "--timeout", "3", env=broker.env())

    assert_error(
        result, f"{script}: error: could not connect to {url} ", ..., "'\\x1b[31mEVIL\\x1b]0;pwned\\x07\\u200b'", ...
    )
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr and "\u200b" not in result.stderr


def test_paths_are_echoed_escaped(run):
    result = run("pub.py", "--creds", "/nonexistent/\x1b[2Jcreds\u202e", env=clean_env(NATS_URL="nats://127.0.0.1:1"))

    assert_error(result, "pub.py: error: cannot read credentials file /nonexistent/\\x1b[2Jcreds\\u202e ", ..., code=2)


def test_a_password_in_the_url_is_never_printed(broker, run, start):
    secret = f"nats://alice:s3cretPW@127.0.0.1:{broker.port}"
    sub = start("sub.py", "-s", secret, env=broker.env())
    sub.wait_for_line("Subscription OK")
    refused = run("pub.py", "-s", f"nats://alice:s3cretPW@127.0.0.1:{free_port()}", env=broker.env())
    sub.signal(signal.SIGINT)
    assert sub.wait() == 0

    assert sub.lines[1] == f"Connected to NATS at 127.0.0.1:{broker.port}..."
    assert_error(refused, "pub.py: error: could not connect to nats://***@127.0.0.1:", ...)
    assert "s3cretPW" not in "\n".join(sub.lines) + sub.stderr + refused.stdout + refused.stderr
