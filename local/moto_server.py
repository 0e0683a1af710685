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


def _rollback_touched_items_only() -> None:
    """Make TransactWriteItems cost its own items, not the whole table.

    moto deep-copies every table a transaction touches so that it can put the
    table back on failure: a purchase then costs time in proportion to the
    table (12.5/s on a fresh stack, 2.2/s after 1,500 purchases). Requests run
    one at a time here (SerialisedApp), so only the items the transaction names
    can change while it runs: snapshot those, let moto run unchanged (its
    conditions, cancellation reasons and errors), and on any failure put those
    items back exactly. Secondary indexes are computed from the items at query
    time in moto, so restoring the items restores them too.
    """
    import copy
    import types

    from moto.dynamodb import models
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table

    if getattr(models.DynamoDBBackend.transact_write_items, "_kobatela_patched", False):
        return
    original = models.DynamoDBBackend.transact_write_items
    in_transaction = threading.local()

    def deepcopy(obj: Any, memo: Any = None) -> Any:
        # Inside a transaction moto's whole-table backup becomes the live
        # table itself (its "restore" is then a no-op); we restore items below.
        if isinstance(obj, Table) and getattr(in_transaction, "active", False):
            return obj
        return copy.deepcopy(obj, memo)

    models.copy = types.SimpleNamespace(deepcopy=deepcopy, copy=copy.copy)

    def touched_slots(backend: Any, transact_items: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
        slots = []
        for entry in transact_items:
            try:
                op_type, op = next(iter(entry.items()))
                table = backend.tables.get(op.get("TableName"))
                if table is None:
                    continue
                attrs = op["Item"] if op_type == "Put" else op["Key"]
                hash_key = DynamoType(attrs[table.hash_key_attr])
                range_key = DynamoType(attrs[table.range_key_attr]) if table.range_key_attr else None
            except (AttributeError, KeyError, StopIteration, TypeError):
                continue  # malformed: moto refuses it before writing anything
            slots.append((table, hash_key, range_key))
        return slots

    def snapshot(table: Any, hash_key: Any, range_key: Any) -> tuple[bool, Any]:
        if range_key is None:
            present = hash_key in table.items
            return present, copy.deepcopy(table.items[hash_key]) if present else None
        bucket = table.items.get(hash_key)
        present = bucket is not None and range_key in bucket
        return present, copy.deepcopy(bucket[range_key]) if present else None

    def restore(table: Any, hash_key: Any, range_key: Any, had_hash: bool, state: tuple[bool, Any]) -> None:
        present, item = state
        if range_key is None:
            if present:
                table.items[hash_key] = item
            else:
                table.items.pop(hash_key, None)
            return
        bucket = table.items.get(hash_key)
        if present:
            table.items.setdefault(hash_key, {})[range_key] = item
        elif bucket is not None:
            bucket.pop(range_key, None)
            if not bucket and not had_hash:
                table.items.pop(hash_key, None)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        slots = touched_slots(self, transact_items)
        saved = [(slot, slot[1] in slot[0].items, snapshot(*slot)) for slot in slots]
        in_transaction.active = True
        try:
            return original(self, transact_items)
        except BaseException:
            # Reverse order: a key named twice keeps its first (original) state.
            for (table, hash_key, range_key), had_hash, state in reversed(saved):
                restore(table, hash_key, range_key, had_hash, state)
            raise
        finally:
            in_transaction.active = False

    transact_write_items._kobatela_patched = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


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

    _rollback_touched_items_only()
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
