"""What the user gives the scripts: subjects, queue names, headers and payload sizes checked before connecting,
and the Python that runs them (3.9 to 3.13, a venv or not, uv, Windows' venv layout)."""

import os
import re
import shutil
import signal
import subprocess
import sys

import nats
import pytest
from helpers import PYTHON, ROOT, TUTORIAL_MESSAGES, assert_error, assert_usage_error, clean_env, script, subscribed


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

    assert_usage_error(result, name, message)


@pytest.mark.parametrize("subject", ["orders.*", "orders.>", ">"])
def test_wildcards_are_fine_for_subscribing(subject, broker, start, run):
    sub = subscribed(start, broker, "--count", "1", "--subject", subject)

    assert run("pub.py", "--subject", "orders.new", "hi", env=broker.env()).returncode == 0

    assert sub.wait() == 0
    assert sub.lines[4] == "Received a message on 'orders.new': hi"


def test_the_size_check_counts_the_headers(make_broker, run):
    broker = make_broker(max_payload=1024)

    result = run("pub.py", "-H", f"Big={'v' * 100}", "x" * 1000, env=broker.env())

    assert_error(
        result,
        "pub.py: error: message too large: the server accepts at most 1024 bytes with the headers (max_payload; "
        "MnQ's quota: 512 KB)",
    )
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
        assert_error(
            result,
            f"{name}: error: {python} cannot import {missing}; activate .venv (see the README) "
            f"or install nats-py: {python} -m pip install 'nats-py[nkeys]'",
        )


PYTHONS = os.path.join(ROOT, ".venv", "pythons")


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


@pytest.mark.parametrize("version", pythons())
def test_a_stream_is_published_and_read_on_every_python_from_3_9(version, broker, workdir):
    python = os.path.join(PYTHONS, version, "bin", "python")

    def run(script_name, *args):
        command = [python, script(script_name), "--stream", "orders", "--count", "5000", *args]
        return subprocess.run(command, env=broker.env(), cwd=workdir, capture_output=True, text=True, timeout=60)

    pub, sub = run("pub.py", "x"), run("sub.py")

    assert (pub.returncode, pub.stderr) == (0, ""), pub.stderr
    assert pub.stdout.splitlines()[-1] == "Published 5000 messages to 'orders.messages' (stream orders)"
    assert (sub.returncode, sub.stderr) == (0, ""), sub.stderr
    assert sub.stdout.count("Received a message on 'orders.messages': x\n") == 5000


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
