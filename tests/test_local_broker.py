"""scripts/local-broker.sh and scripts/demo.sh: the README's one-command promises."""

import os
import re
import signal
import socket
import stat
import subprocess

import local_broker as local_broker_module
import pytest
from helpers import (
    ONE_AT_A_TIME,
    PYTHON,
    ROOT,
    TUTORIAL_MESSAGES,
    Process,
    as_shown,
    clean_env,
    free_port,
    readme_blocks,
)


def is_listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def local_broker(tmp_path):
    """start(*args, env=...) -> scripts/local-broker.sh running, its exports parsed; stopped after the test."""
    procs = []

    def start(*args, ready="Stop it with Ctrl+C.", **env):
        proc = Process(
            ["bash", os.path.join(ROOT, "scripts/local-broker.sh"), *args],
            env=clean_env(**env),
            cwd=str(tmp_path),
            merge_stderr=True,
        )
        procs.append(proc)
        proc.wait_for_line(ready)
        proc.exports = dict(re.findall(r"^  export (NATS_\w+)=(.*)$", "\n".join(proc.lines), re.M))
        return proc

    yield start
    for proc in procs:
        stop(proc)


def stop(proc):
    """SIGTERM, as a terminal closing does: the broker stops its nats-servers (in sessions of their own, which a kill
    of the broker would leave running), then exits."""
    proc.signal(signal.SIGTERM)
    try:
        proc.wait(20)
    finally:
        proc.kill()


def test_local_broker_prints_the_exports_that_make_the_tutorial_work(local_broker, tmp_path, run):
    port = free_port()
    broker = local_broker("--port", str(port), "--dir", str(tmp_path / "state"))

    state = tmp_path / "state" / "tls"
    assert broker.exports == {
        "NATS_URL": f"nats://127.0.0.1:{port}",
        "NATS_CREDS": str(state / "user.creds"),
        "NATS_CA": str(state / "ca.pem"),
    }
    result = run("pub.py", env=clean_env(**broker.exports))
    assert result.returncode == 0, result.stderr


def test_local_broker_keeps_its_exports_on_screen_and_its_log_in_a_file_as_the_readme_shows(
    local_broker, tmp_path, run
):
    state = tmp_path / "state" / "tls"
    broker = local_broker("--port", str(free_port()), "--dir", str(tmp_path / "state"))
    assert run("pub.py", env=clean_env(**broker.exports)).returncode == 0

    broker.signal(signal.SIGINT)

    assert broker.wait() == 0
    assert broker.lines[-1] == "Broker stopped."
    [shown] = [body for kind, body in readme_blocks("**2a.", "**2b.") if kind == "text"]
    readme_path = "/path/to/scaleway-messaging-python/.local-broker/tls"
    assert as_shown("\n".join(broker.lines[:-1]) + "\n") == shown.replace(readme_path, str(state))
    assert "Server is ready" in (state / "nats-server.log").read_text()


def test_local_broker_requires_tls_unless_no_tls(local_broker, tmp_path, run):
    broker = local_broker("--port", str(free_port()), "--dir", str(tmp_path / "state"))
    without_ca = {k: v for k, v in broker.exports.items() if k != "NATS_CA"}
    assert "certificate verification failed" in run("pub.py", env=clean_env(**without_ca)).stderr

    plain = local_broker("--no-tls", "--port", str(free_port()), "--dir", str(tmp_path / "state"))
    assert "NATS_CA" not in plain.exports
    assert run("pub.py", env=clean_env(**plain.exports)).returncode == 0


def test_local_broker_takes_its_port_from_LOCAL_BROKER_PORT(local_broker, tmp_path):
    port = free_port()
    broker = local_broker("--dir", str(tmp_path / "state"), LOCAL_BROKER_PORT=str(port))
    assert broker.exports["NATS_URL"] == f"nats://127.0.0.1:{port}"


def test_local_broker_keeps_its_secrets_private_and_never_touches_nats_creds(local_broker, tmp_path):
    (tmp_path / "nats.creds").write_text("the user's own Scaleway creds\n")
    local_broker("--port", str(free_port()), "--dir", str(tmp_path / "state"))

    assert (tmp_path / "nats.creds").read_text() == "the user's own Scaleway creds\n"
    state = tmp_path / "state" / "tls"
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    for secret in ("user.creds", "app-account.seed", "server-key.pem", "server.conf"):
        assert stat.S_IMODE(os.stat(state / secret).st_mode) == 0o600, secret


def test_local_broker_keeps_the_same_creds_across_restarts(local_broker, tmp_path, run):
    port, state = str(free_port()), str(tmp_path / "state")
    first = local_broker("--port", port, "--dir", state)
    creds = open(first.exports["NATS_CREDS"]).read()
    first.signal(signal.SIGINT)
    assert first.wait() == 0

    second = local_broker("--port", port, "--dir", state)

    assert open(second.exports["NATS_CREDS"]).read() == creds
    assert run("pub.py", env=clean_env(**second.exports)).returncode == 0


def test_local_broker_restarts_on_the_same_port_right_after_clients_were_connected(local_broker, tmp_path, start):
    port, state = str(free_port()), str(tmp_path / "state")
    first = local_broker("--no-tls", "--port", port, "--dir", state)
    sub = start("sub.py", env=clean_env(**first.exports))
    sub.wait_for_line("Subscription OK")
    first.signal(signal.SIGINT)  # the server closes the connection: TIME-WAIT sockets stay on its port
    assert first.wait() == 0
    sub.wait_for_line("Disconnected from NATS, reconnecting...")

    second = local_broker("--no-tls", "--port", port, "--dir", state)

    assert second.exports == first.exports
    sub.wait_for_line(f"Reconnected to NATS at 127.0.0.1:{port}")


def test_local_broker_stops_cleanly_on_ctrl_c(local_broker, tmp_path):
    port = free_port()
    broker = local_broker("--port", str(port), "--dir", str(tmp_path / "state"))

    broker.signal(signal.SIGINT)

    assert broker.wait() == 0
    assert broker.lines[-1] == "Broker stopped."
    assert "Server Exiting" in open(tmp_path / "state" / "tls" / "nats-server.log").read()
    assert not is_listening(port)


def test_local_broker_says_when_the_port_is_taken(broker, tmp_path):
    result = subprocess.run(
        [
            "bash",
            os.path.join(ROOT, "scripts/local-broker.sh"),
            "--port",
            str(broker.port),
            "--dir",
            str(tmp_path / "state"),
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"local-broker: error: port {broker.port} on 127.0.0.1 is already in use; "
        "stop what uses it or pick another with --port"
    )


def processes_using(path):
    """The PIDs of the running processes whose command line names path (Linux's /proc)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if path.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def three_free_ports():
    while True:
        port = free_port()
        if all(local_broker_module.port_is_free(port + i) for i in range(3)):
            return port


@ONE_AT_A_TIME
def test_local_broker_cluster_runs_three_nodes_that_give_streams_three_replicas_and_ctrl_c_stops_them_all(
    local_broker, tmp_path, run
):
    port, state = three_free_ports(), tmp_path / "state"
    cluster = local_broker(
        "--cluster", "3", "--port", str(port), "--dir", str(state), ready="Stop the cluster with Ctrl+C."
    )

    nodes = state / "cluster-tls"
    assert cluster.exports == {
        "NATS_URL": ",".join(f"nats://127.0.0.1:{port + i}" for i in range(3)),
        "NATS_CREDS": str(nodes / "user.creds"),
        "NATS_CA": str(nodes / "ca.pem"),
    }
    assert "JetStream is ready. In another terminal, run:" in cluster.lines
    assert len(processes_using(str(nodes))) == 3
    published = run("pub.py", "--stream", "orders", env=clean_env(**cluster.exports))
    assert published.returncode == 0, published.stderr
    replicas = subprocess.run(
        [PYTHON, "-c", STREAM_REPLICAS], env=clean_env(**cluster.exports), capture_output=True, text=True, timeout=30
    )
    assert replicas.stdout == "3 replicas\n", replicas.stderr

    os.kill(int((nodes / "node-2.pid").read_text()), signal.SIGKILL)
    cluster.wait_for_line("node-2 stopped (signal SIGKILL); starting it again in 3 s")
    cluster.wait_for_line("node-2 started again")
    cluster.signal(signal.SIGINT)

    assert cluster.wait() == 0
    assert cluster.lines[-1] == "Cluster stopped."
    assert processes_using(str(nodes)) == []
    assert not any(is_listening(port + i) for i in range(3))


STREAM_REPLICAS = """
import asyncio, os, ssl, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"].split(","), user_credentials=os.environ["NATS_CREDS"],
                            tls=ssl.create_default_context(cafile=os.environ["NATS_CA"]))
    print((await nc.jetstream().stream_info("orders")).config.num_replicas, "replicas")
    await nc.close()
asyncio.run(main())
"""


@ONE_AT_A_TIME
@pytest.mark.parametrize("kind", [[], ["--cluster", "3"]], ids=["single", "cluster"])
def test_local_broker_has_mnqs_quotas(kind, local_broker, tmp_path):
    ready = "Stop the cluster with Ctrl+C." if kind else "Stop it with Ctrl+C."
    broker = local_broker(*kind, "--port", str(three_free_ports()), "--dir", str(tmp_path / "state"), ready=ready)

    limits = subprocess.run(
        [PYTHON, "-c", ACCOUNT_LIMITS], env=clean_env(**broker.exports), capture_output=True, text=True, timeout=30
    )

    assert limits.stdout == "max_payload 524288, memory 0, storage 314572800, streams 50, consumers 50\n", limits.stderr


ACCOUNT_LIMITS = """
import asyncio, os, ssl, nats
async def main():
    nc = await nats.connect(os.environ["NATS_URL"].split(","), user_credentials=os.environ["NATS_CREDS"],
                            tls=ssl.create_default_context(cafile=os.environ["NATS_CA"]))
    limits = (await nc.jetstream().account_info()).limits
    print(f"max_payload {nc.max_payload}, memory {limits.max_memory}, storage {limits.max_storage}, "
          f"streams {limits.max_streams}, consumers {limits.max_consumers}")
    await nc.close()
asyncio.run(main())
"""


def test_local_broker_cluster_needs_three_nodes_or_more(tmp_path):
    result = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts/local-broker.sh"), "--cluster", "2", "--dir", str(tmp_path / "state")],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        "local-broker.sh: error: --cluster takes 3 to 9 nodes (JetStream needs a majority of them up to elect leaders)"
    )


def demo(*args):
    return Process(["bash", os.path.join(ROOT, "scripts/demo.sh"), *args], env=clean_env(), cwd=ROOT)


def demo_port(lines):
    return int(re.search(r"on 127\.0\.0\.1:(\d+)", lines[0]).group(1))


def test_demo_runs_the_tutorial_end_to_end_and_leaves_nothing_running():
    for _ in range(2):  # running it twice works too
        run = demo()
        assert run.wait(timeout=120) == 0, run.stderr
        assert run.lines[run.lines.index("What terminal 1 printed:") + 1 :] == [
            "Connection",
            f"Connected to NATS at 127.0.0.1:{demo_port(run.lines)}...",
            "Subscribing",
            "Subscription OK",
            *TUTORIAL_MESSAGES,
            "Disconnecting...",
            "Disconnection OK",
        ]
        assert not is_listening(demo_port(run.lines))


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_demo_stops_what_it_started_when_interrupted(sig, code):
    run = demo()
    try:
        run.wait_for_line("Terminal 1", timeout=120)
        run.signal(sig)  # to the demo alone: its trap must stop the broker and sub.py
        assert run.wait() == code
        assert not is_listening(demo_port(run.lines))
    finally:
        run.kill()


def test_demo_has_a_usage_line():
    result = subprocess.run(["bash", os.path.join(ROOT, "scripts/demo.sh"), "--help"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "usage: bash scripts/demo.sh\n"


def test_local_broker_files_have_safe_modes_whatever_the_umask_and_whatever_was_left(tmp_path):
    state = tmp_path / "state"
    (state / "tls").mkdir(parents=True, mode=0o755)
    (state / "tls").chmod(0o755)  # an existing folder, readable by all
    (state / "tls" / "user.creds.tmp").write_text("left by an interrupted run")
    (state / "tls" / "user.creds.tmp").chmod(0o644)
    port = free_port()
    broker = Process(
        ["bash", "-c", f"umask 000; exec bash '{ROOT}/scripts/local-broker.sh' --port {port} --dir '{state}'"],
        env=clean_env(),
        cwd=str(tmp_path),
        merge_stderr=True,
    )
    try:
        broker.wait_for_line("Stop it with Ctrl+C.")
    finally:
        stop(broker)

    tls = state / "tls"
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tls.iterdir()}
    assert stat.S_IMODE(tls.stat().st_mode) == 0o700
    assert modes["ca.pem"] == modes["server-cert.pem"] == 0o644
    for secret in ("user.creds", "app-account.seed", "server-key.pem", "server.conf"):
        assert modes[secret] == 0o600, secret
    assert all(mode & 0o022 == 0 for mode in modes.values()), modes


def test_local_broker_dir_with_spaces_works_and_one_with_a_quote_is_refused_before_anything_is_printed(
    local_broker, tmp_path, run
):
    spaced = local_broker("--port", str(free_port()), "--dir", str(tmp_path / "my broker"))
    assert run("pub.py", env=clean_env(**spaced.exports)).returncode == 0

    result = subprocess.run(
        ["bash", os.path.join(ROOT, "scripts/local-broker.sh"), "--dir", str(tmp_path / 'a"b')],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines()[-1].startswith("local-broker.sh: error: --dir ")
    assert "cannot be written in nats-server's configuration" in result.stderr
