"""What the tests share: real nats-server brokers and clusters in operator/JWT mode, a TCP proxy, the scripts
run as users run them, and the assertions that hold the README's promises. The fixtures are in conftest.py."""

import asyncio
import base64
import contextlib
import functools
import json
import logging
import os
import queue
import re
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time

import nats
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

import local_broker  # noqa: E402
from local_broker import free_port  # noqa: E402, F401

PYTHON = sys.executable
logging.getLogger("asyncio").addFilter(local_broker.not_eof_noise)  # the tests' own TLS clients
# Variables of the user's own shell that would change what the scripts do.
FOREIGN = ("NATS_", "SCW_", "LOCAL_BROKER_")
GRACE = 5  # the scripts' GRACE: seconds that stopping may take after Ctrl+C
# pytest runs the tests in parallel workers (tests/pytest.ini). Tests that start a cluster or the benchmark run
# one after the other in a single worker: each loads both CPUs, and an election that starves misses its timing.
ONE_AT_A_TIME = pytest.mark.xdist_group("one-at-a-time")
BOTH = pytest.mark.parametrize("script", ["pub.py", "sub.py"])  # a test each script passes

# What sub.py prints for the two messages a plain `python3 pub.py` sends.
TUTORIAL_MESSAGES = [
    "Received a message on 'my-subject': This is a simple message with some datas",
    "Headers maybe: None",
    "Received a message on 'my-subject': This is still a simple message but with some headers inside",
    "Headers maybe: {'Example': 'True', 'RandomHeaders': 'True'}",
]
LOST_WHILE_AWAY = (
    "sub.py: warning: messages published while sub.py was disconnected are lost (core NATS is at-most-once)"
)


def script(name):
    """The path of a file of the project, e.g. script("sub.py") or script("scripts/venv.sh")."""
    return os.path.join(ROOT, name)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env.update(extra)
    return env


def assert_error(result, *fragments, code=1):
    """The promise every failure keeps: exit code `code`, and on stderr one line, no traceback, made of the
    fragments in order, where `...` stands for any text. One fragment is the whole line.

    result is a finished subprocess.CompletedProcess or Process."""
    got = f"exit {result.returncode}, stdout {result.stdout!r}, stderr {result.stderr!r}"
    assert result.returncode == code, got
    lines = result.stderr.splitlines()
    assert len(lines) == 1, got
    pattern = "".join(".*" if fragment is ... else re.escape(fragment) for fragment in fragments)
    assert re.fullmatch(pattern, lines[0], re.S), f"stderr is {lines[0]!r}, not {fragments!r}"


def assert_usage_error(result, name, message):
    """A bad command line: exit 2, the usage first and `NAME: error: MESSAGE` last, as argparse does."""
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith(f"usage: {name}"), result.stderr
    assert result.stderr.splitlines()[-1] == f"{name}: error: {message}"


def subscribed(start, broker, *args):
    """Start sub.py and return it once the server has its subscription."""
    sub = start("sub.py", *args, env=broker.env())
    sub.wait_for_line("Subscription OK")
    return sub


def publish(broker, payloads):
    """Publish these bytes as they are, with plain nats-py (a command line cannot carry a NUL byte)."""

    async def send():
        nc = await nats.connect(broker.url, user_credentials=broker.creds)
        for payload in payloads:
            await nc.publish("my-subject", payload)
        await nc.drain()

    asyncio.run(send())


def popen(command, env, cwd, **kwargs):
    """A bare subprocess with stdin closed and stderr piped, for tests that read its stdout themselves."""
    return subprocess.Popen(command, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, **kwargs)


@contextlib.contextmanager
def shell_pipeline(command, env, cwd):
    """A shell pipeline such as `sub.py | head`, its output piped, in a process group that is killed at the end."""
    pipeline = subprocess.Popen(
        command,
        shell=True,
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        yield pipeline
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pipeline.pid, signal.SIGKILL)  # what is left of it, sub.py say
        pipeline.wait()
        pipeline.stdout.close()
        pipeline.stderr.close()


def js_call(server, action):
    """Run action(js) with plain nats-py against a Broker or a Cluster (whichever of its nodes are up); return
    its result."""

    async def quiet(e):  # a node that is down, say
        pass

    async def call():
        tls = ssl.create_default_context(cafile=server.ca) if server.ca else None
        nc = await nats.connect(
            server.url.split(","),
            user_credentials=server.creds,
            tls=tls,
            error_cb=quiet,
            reconnect_time_wait=0.2,
            max_reconnect_attempts=-1,
        )
        try:
            return await action(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(call())


def readme_blocks(heading, next_heading):
    """The README's code blocks from heading to next_heading, as (kind, text): ("bash", a command), ("text", what
    it prints)."""
    text = open(os.path.join(ROOT, "README.md")).read()
    return re.findall(r"```(\w+)\n(.*?)```", text[text.index(heading) : text.index(next_heading)], re.S)


def as_shown(output):
    """Output as the README shows it: on the local broker's default port."""
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:4222", output)


def run_as_written(command, env):
    """Run a README command as written, from the project folder, in bash; assert it succeeds quietly and return
    its output as the README shows it."""
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stderr) == (0, ""), command
    return as_shown(result.stdout)


class Process:
    """A running command whose output lines can be waited for; killed at the end of the test. With terminal=True
    it is a process group of its own, which signals reach as Ctrl+C reaches a terminal's (a shell and its child)."""

    def __init__(self, command, env, cwd, merge_stderr=False, terminal=False):
        self.command = command
        stderr = subprocess.STDOUT if merge_stderr else subprocess.PIPE
        self.proc = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            start_new_session=terminal,
        )
        self.send = functools.partial(os.killpg, self.proc.pid) if terminal else self.proc.send_signal
        self.lines = []
        self.stderr = ""
        self.returncode = None  # until wait()
        self._new = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self._new.put(line.rstrip("\n"))
        self._new.put(None)

    def wait_for_line(self, text, timeout=15):
        """Wait until a line containing text is printed; return it."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._new.get(timeout=max(0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {text!r} within {timeout} s; got {self.lines}") from None
            if line is None:
                self._new.put(None)
                raise AssertionError(f"exited before {text!r}; got {self.lines}; stderr: {self.stderr_now()}")
            self.lines.append(line)
            if text in line:
                return line

    def collect(self, timeout):
        """The lines printed since the last call, waiting up to timeout for the first one."""
        new = []
        try:
            line = self._new.get(timeout=timeout)
            while line is not None:
                new.append(line)
                line = self._new.get_nowait()
            self._new.put(None)
        except queue.Empty:
            pass
        self.lines.extend(new)
        return new

    def wait(self, timeout=30):
        """Wait for the exit; return the exit code, with every output line in self.lines."""
        self.returncode = self.proc.wait(timeout)
        self._reader.join(timeout)
        while (line := self._new.get()) is not None:
            self.lines.append(line)
        self._new.put(None)
        self.stderr = self.proc.stderr.read() if self.proc.stderr else ""
        return self.returncode

    @property
    def stdout(self):
        return "".join(line + "\n" for line in self.lines)

    def stderr_now(self):
        if self.proc.stderr and self.proc.poll() is not None:
            return self.proc.stderr.read()
        return "(not available)"

    def signal(self, sig):
        self.send(sig)

    def kill(self):
        with contextlib.suppress(ProcessLookupError):
            self.send(signal.SIGKILL)  # the whole group, if it has one (what a shell started)
        self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()


class Broker:
    """A real nats-server, minted fresh: operator, accounts, user creds, and TLS files if tls."""

    def __init__(
        self,
        state_dir,
        tls=False,
        tls_names=("localhost", "127.0.0.1"),
        max_payload=None,
        config=(),
        jetstream=local_broker.JETSTREAM,
    ):
        local_broker.mint(state_dir, tls=tls, tls_names=tls_names, jetstream=jetstream)
        with open(os.path.join(state_dir, "server.conf"), "a") as conf:
            for line in [f"max_payload: {max_payload}"] * bool(max_payload) + list(config):
                conf.write(line + "\n")
        self.state_dir = state_dir
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.creds = os.path.join(state_dir, "user.creds")
        self.ca = os.path.join(state_dir, "ca.pem") if tls else None
        self.proc = None
        self.start()

    def start(self):
        command = local_broker.server_command(self.state_dir, self.port)
        # nats-server logs to stderr: wait for the line that says it is ready.
        self.proc = Process(command, env=clean_env(), cwd=self.state_dir, merge_stderr=True)
        self.proc.wait_for_line("Server is ready")

    @staticmethod
    def unused_url():
        """A URL where nothing listens: connections are refused."""
        return f"nats://127.0.0.1:{free_port()}"

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc = None

    def new_creds(self, path, **claims):
        """Write a .creds file for another user of the same account, e.g. deny_publish=["secret.>"] or
        expires=time.time() + 5."""
        local_broker.write_private(path, local_broker.user_creds(self._key("app-account.seed").seed, **claims))
        return path

    def revoke(self, creds):
        """Revoke the user of that .creds file as Scaleway does: the account JWT, signed again, lists it in its
        revocations; the server reloads its configuration (SIGHUP) and closes that user's connections."""
        user = jwt_claims(re.search(r"JWT-----\n(\S+)", open(creds).read())[1])["sub"]
        account = self._key("app-account.seed")
        conf_path = os.path.join(self.state_dir, "server.conf")
        conf = open(conf_path).read()
        old = re.search(rf"^  {account.public_key.decode()}: (\S+)$", conf, re.M)[1]
        limits, revoked = jwt_claims(old)["nats"]["limits"], {user: int(time.time()) + 1}
        new = local_broker.account_jwt(self._key("operator.seed"), account, "APP", limits, revocations=revoked)
        local_broker.write_private(conf_path, conf.replace(old, new))
        self.proc.signal(signal.SIGHUP)

    def _key(self, name):
        with open(os.path.join(self.state_dir, name), "rb") as f:
            return local_broker.nkeys.from_seed(f.read())

    def env(self, **extra):
        """The environment of a user who exported what scripts/local-broker.sh prints, plus extra."""
        env = clean_env(NATS_URL=self.url, NATS_CREDS=self.creds)
        if self.ca:
            env["NATS_CA"] = self.ca
        env.update(extra)
        return env


def jwt_claims(jwt):
    body = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))


class Cluster:
    """Real nats-server nodes routed on 127.0.0.1, minted like Broker (one operator, JWT accounts, TLS by
    default), each with its own JetStream store: a local stand-in for MnQ, which is a cluster."""

    def __init__(self, state_dir, size=3, tls=True):
        local_broker.mint(state_dir, tls=tls)
        local_broker.cluster_confs(state_dir, [free_port() for _ in range(size)])
        self.state_dir = state_dir
        self.ports = {f"node-{i}": free_port() for i in range(1, size + 1)}
        self.urls = {name: f"nats://127.0.0.1:{port}" for name, port in self.ports.items()}
        self.url = ",".join(self.urls.values())
        self.creds = os.path.join(state_dir, "user.creds")
        self.ca = os.path.join(state_dir, "ca.pem") if tls else None
        self.nodes = {}
        for name in self.ports:
            self.start(name, wait=False)
        for name in self.ports:
            self.nodes[name].wait_for_line("Server is ready")
        self.wait_for_jetstream()

    def start(self, name, wait=True):
        index = int(name.split("-")[1])
        command = local_broker.node_command(self.state_dir, index, self.ports[name])
        self.nodes[name] = Process(command, env=clean_env(), cwd=self.state_dir, merge_stderr=True)
        if wait:
            self.nodes[name].wait_for_line("Server is ready")

    def kill(self, name):
        """kill -9: no goodbye, its leaderships are lost until the others elect new leaders."""
        self.nodes.pop(name).kill()

    def stop(self, name):
        """SIGTERM, as a maintenance restart does: the node hands its leaderships over, then exits."""
        node = self.nodes.pop(name)
        node.signal(signal.SIGTERM)
        node.wait()
        node.kill()

    def wait_for_jetstream(self):
        return local_broker.wait_for_jetstream(list(self.urls.values()), self.creds, self.ca)

    def close(self):
        for name in list(self.nodes):
            self.kill(name)

    def env(self, **extra):
        """The environment of a user who exported what `scripts/local-broker.sh --cluster 3` prints."""
        env = clean_env(NATS_URL=self.url, NATS_CREDS=self.creds, **extra)
        if self.ca:
            env["NATS_CA"] = self.ca
        return env


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of a port: cut() resets every connection through it, silence() stops
    forwarding without closing anything (a NAT that forgot the connection, a laptop changing network)."""

    def __init__(self, target_port):
        self.target = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"nats://127.0.0.1:{self.listener.getsockname()[1]}"
        self.silent = threading.Event()
        self.sockets, self.pings, self.cut_at_ping = [], 0, None  # cut_at_ping=n: cut() when the client sends its nth
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.sockets.append(client)
            if self.silent.is_set():
                continue  # accepted, and never answered
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.sockets.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a, b):
        sending = {a: b, b: a}  # each peer that has not hung up, and where what it sends goes
        while sending:
            if self.silent.is_set():  # read nothing, send nothing: the peers' buffers fill, as on a dead path
                time.sleep(0.05)
                if a.fileno() < 0:
                    return
                continue
            try:
                readable, _, _ = select.select(list(sending), [], [], 0.05)
                for source in readable:
                    data = source.recv(65536)
                    if source is a and self.cut_at_ping and b"PING\r\n" in data:
                        self.pings += 1
                        if self.pings == self.cut_at_ping:
                            self.cut()  # before passing it on: the server never answers it
                            break
                    if data:
                        sending[source].sendall(data)
                    else:  # a hang-up is passed on as one, and the other way keeps flowing until it ends too
                        sending.pop(source).shutdown(socket.SHUT_WR)
            except (OSError, ValueError):  # a reset, or cut()
                break
        for sock in (a, b):
            sock.close()

    def silence(self):
        self.silent.set()

    def cut(self):
        """Reset every connection through the proxy, as a network failure does."""
        for sock in self.sockets:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.close()
            except OSError:
                pass
        self.sockets = []

    def close(self):
        self.listener.close()
        self.cut()
