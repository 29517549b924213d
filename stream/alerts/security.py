"""CURVE encryption and authentication for the alert sockets (ZeroMQ's CurveZMQ).

The pipeline has a key pair; each subscriber has its own. The pipeline accepts only clients
whose public key is in its allowed folder, and subscribers know the pipeline's public key, so
both ends are authenticated and everything between them is encrypted. Keys are ZeroMQ
certificate files (`NAME.key` public, `NAME.key_secret` both):

    python -m stream.alerts.security server --dir keys            # the pipeline's pair
    python -m stream.alerts.security operator-1 --dir keys/clients  # a subscriber's pair

Give the subscriber `keys/server.key` and its own `operator-1.key_secret`; leave
`operator-1.key` in the pipeline's `allowed_clients` folder (remove it to revoke).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from engines.cli import Parser

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator


class KeyFileError(ValueError):
    pass


def load_keys(path: str | Path, secret: bool) -> tuple[bytes, bytes | None]:
    """(public, secret) from a certificate file; secret is None for a public-only file."""
    path = Path(path)
    if not path.is_file():
        raise KeyFileError(f"{path}: no such key file")
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as e:
        raise KeyFileError(f"{path}: not a ZeroMQ certificate ({e})") from None
    if secret and secret_key is None:
        raise KeyFileError(f"{path}: has no secret key (use the .key_secret file)")
    return public, secret_key


class CurveServer:
    """The pipeline's side: an authenticator that admits the allowed client keys, and the socket
    options that make a socket a CURVE server."""

    def __init__(self, secret_key_file: Path, allowed_clients: Path, context: zmq.Context):
        self.public, self.secret = load_keys(secret_key_file, secret=True)
        if not Path(allowed_clients).is_dir():
            raise KeyFileError(f"{allowed_clients}: no such folder of allowed client keys")
        if not list(Path(allowed_clients).glob("*.key")):
            raise KeyFileError(f"{allowed_clients}: no client public keys (*.key); no subscriber could connect")
        self.auth = ThreadAuthenticator(context)
        self.auth.start()
        self.auth.configure_curve(domain="*", location=str(allowed_clients))

    def configure(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def close(self) -> None:
        self.auth.stop()


def client_configure(server_key_file: str | Path, client_secret_file: str | Path) -> Callable[[zmq.Socket], None]:
    """For subscribers: a function that makes a socket a CURVE client of that server."""
    server_public, _ = load_keys(server_key_file, secret=False)
    public, secret = load_keys(client_secret_file, secret=True)

    def configure(sock: zmq.Socket) -> None:
        sock.curve_serverkey = server_public
        sock.curve_publickey = public
        sock.curve_secretkey = secret
    return configure


def add_client_arguments(p: argparse.ArgumentParser) -> None:
    """--server-key and --client-key, for the command-line clients of the pipeline's endpoints."""
    p.add_argument("--server-key", type=Path, help="CURVE: the pipeline's public key file (NAME.key)")
    p.add_argument("--client-key", type=Path, help="CURVE: this client's key pair (NAME.key_secret)")


def client_from_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> Callable[[zmq.Socket], None] | None:
    """The socket set-up those arguments ask for (None: plaintext); a usage error names a bad key."""
    if (args.server_key is None) != (args.client_key is None):
        p.error("CURVE needs both --server-key and --client-key")
    if args.server_key is None:
        return None
    try:
        return client_configure(args.server_key, args.client_key)
    except KeyFileError as e:
        p.error(str(e))


def main(argv: list[str] | None = None) -> int:
    p = Parser("python -m stream.alerts.security", "Make a CURVE key pair: NAME.key (public) and NAME.key_secret.")
    p.add_argument("name", help="file name stem: NAME.key (public) and NAME.key_secret")
    p.add_argument("--dir", default="keys", help="folder to write to (created)")
    args = p.parse_args(argv)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / f"{args.name}.key_secret").exists():
        print(f"{out / args.name}.key_secret exists; not overwriting a key", file=sys.stderr)
        return 1
    public, secret = zmq.auth.create_certificates(str(out), args.name)
    Path(secret).chmod(0o600)
    print(f"public {public}\nsecret {secret}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
