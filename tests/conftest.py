"""Fixtures: real nats-server brokers in operator/JWT mode, and the scripts run as users run them. What they
are made of, and what the tests share besides, is in helpers.py."""

import os
import socket
import subprocess
import threading
import time

import pytest
from helpers import PYTHON, ROOT, Broker, Cluster, Process, Proxy


@pytest.fixture
def cluster(tmp_path):
    """A three-node cluster with TLS and JetStream, like MnQ; stopped after the test."""
    made = Cluster(str(tmp_path / "cluster"))
    yield made
    made.close()


@pytest.fixture
def proxy():
    """proxy(port) -> a Proxy in front of that port on 127.0.0.1, closed after the test."""
    made = []

    def make(port):
        made.append(Proxy(port))
        return made[-1]

    yield make
    for p in made:
        p.close()


@pytest.fixture
def make_broker(tmp_path):
    """make_broker(tls=, tls_names=, max_payload=, config=[lines], jetstream=limits) -> a running Broker, stopped
    after the test."""
    brokers = []

    def make(**options):
        brokers.append(Broker(str(tmp_path / f"broker{len(brokers)}"), **options))
        return brokers[-1]

    yield make
    for b in brokers:
        b.stop()


@pytest.fixture
def broker(make_broker):
    """A plain-text broker: operator/JWT mode, like MnQ, without TLS."""
    return make_broker()


@pytest.fixture
def tls_broker(make_broker):
    """A TLS-only broker, like MnQ: reached with a nats:// URL, verified with its own CA (NATS_CA)."""
    return make_broker(tls=True)


@pytest.fixture
def workdir(tmp_path):
    """The scripts' working directory: empty, so no nats.creds of the developer's is picked up."""
    path = tmp_path / "cwd"
    path.mkdir()
    return str(path)


@pytest.fixture
def run(workdir):
    """run("pub.py", *args, env=...) -> CompletedProcess, run to the end as a user would."""

    def run_script(script, *args, env, timeout=30, prefix=()):
        started = time.monotonic()
        result = subprocess.run(
            [*prefix, PYTHON, os.path.join(ROOT, script), *args],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        result.seconds = time.monotonic() - started
        return result

    return run_script


@pytest.fixture
def spawn(workdir):
    """spawn([command...], env=..., terminal=False) -> Process in the background, in workdir, killed after the test."""
    procs = []

    def spawn_command(command, env, terminal=False):
        procs.append(Process(command, env=env, cwd=workdir, terminal=terminal))
        return procs[-1]

    yield spawn_command
    for p in procs:
        p.kill()


@pytest.fixture
def start(spawn):
    """start("sub.py", *args, env=..., python=PYTHON) -> Process in the background, killed after the test."""

    def start_script(script, *args, env, python=PYTHON):
        return spawn([python, os.path.join(ROOT, script), *args], env=env)

    return start_script


@pytest.fixture
def fake_server():
    """fake_server(reply) -> URL of a server on 127.0.0.1 that says hello as NATS does, answers each CONNECT with
    reply (an -ERR, say), then hangs up; closed after the test."""
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
