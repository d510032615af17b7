"""Fixtures: real nats-server brokers in operator/JWT mode, and the scripts run as users run them. What they
are made of, and what the tests share besides, is in helpers.py."""

import os
import subprocess
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
    """spawn([command...], env=...) -> Process in the background, in workdir, killed after the test."""
    procs = []

    def spawn_command(command, env):
        procs.append(Process(command, env=env, cwd=workdir))
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
