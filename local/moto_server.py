#!/usr/bin/env python3
"""The local AWS emulator: moto's server mode, one request at a time.

moto's multi-threaded server is not atomic for DynamoDB TransactWriteItems
under concurrent requests (two transactions can both pass their condition
checks before either writes). This launcher builds the same WSGI app as
`moto_server` and wraps it so that ONE global lock is held around each whole
request: reading the request body, running moto, and collecting the whole
response. The HTTP server itself stays threaded (connections are accepted and
answered concurrently, only moto's work is serialised).

Usage: python local/moto_server.py [--host 127.0.0.1] [--port 5005]
Only loopback addresses are accepted for --host.
"""

from __future__ import annotations

import argparse
import io
import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
from typing import Any, Callable, Iterable


def is_loopback(host: str) -> bool:
    """True when every address HOST resolves to is a loopback address."""
    bare = host.strip("[]")
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(bare, None)
    except socket.gaierror:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addrs)


def _read_body(environ: dict[str, Any]) -> bytes:
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH") or ""
    try:
        n = int(length)
    except ValueError:
        n = -1
    if n >= 0:
        chunks = []
        remaining = n
        while remaining > 0:
            chunk = stream.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    if environ.get("wsgi.input_terminated"):
        # Chunked request body, already de-chunked by the server: read to EOF.
        return stream.read()
    return b""


def _forget_tracked_models() -> None:
    """Drop moto's list of every model object ever built.

    moto appends each model instance to a class-level list for its dashboard,
    and TransactWriteItems deep-copies whole tables for its rollback, so every
    transaction would keep a copy of the table alive: memory grows with the
    square of the table (a long session reached 24 GB and was OOM-killed).
    The server's state lives in its backends, not in these lists.
    """
    from moto.core.model_instances import reset_model_data

    reset_model_data()


class SerialisedApp:
    """WSGI middleware: one request at a time through the wrapped app."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        with self.lock:
            body = _read_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            result = self.app(environ, start_response)
            try:
                collected = [bytes(chunk) for chunk in result]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                _forget_tracked_models()
        return collected


def build_app() -> SerialisedApp:
    from moto.server import DomainDispatcherApplication, create_backend_app

    return SerialisedApp(DomainDispatcherApplication(create_backend_app))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=5005, help="port to bind (default 5005)")
    args = parser.parse_args(argv)

    if not is_loopback(args.host):
        parser.error(f"refusing to bind {args.host!r}: only loopback addresses are allowed")
    if not 0 < args.port < 65536:
        parser.error(f"invalid port {args.port}")

    # moto sends some requests to itself and reads the port from here.
    os.environ.setdefault("MOTO_PORT", str(args.port))

    # Quiet: no request log, no start-up banner.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    def _exit(signum: int, _frame: Any) -> None:
        # Leave at once: the data lives only in this process, and a normal exit
        # would wait for handler threads still parked on idle keep-alive
        # connections of clients (the AWS SDK keeps a connection pool).
        print("moto stopped", flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, _exit)
    # A background job of a non-interactive shell inherits SIGINT ignored: keep
    # it that way (the launching script stops us with TERM, in its own order).
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _exit)

    from werkzeug.serving import run_simple

    app = build_app()
    try:
        from moto.server import MotoRequestHandler
    except ImportError:  # older moto: werkzeug's default handler
        MotoRequestHandler = None  # noqa: N806

    print(f"moto (serialised) listening on http://{args.host}:{args.port}", flush=True)
    kwargs: dict[str, Any] = {"threaded": True}
    if MotoRequestHandler is not None:
        kwargs["request_handler"] = MotoRequestHandler
    try:
        run_simple(args.host, args.port, app, **kwargs)
    except SystemExit:
        pass
    except KeyboardInterrupt:
        pass
    print("moto stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
