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
import base64
import io
import json
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
    time in moto, so restoring the items restores them too; the records the
    transaction appended to the table's stream are dropped.
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
        # The stream records moto appended as it wrote: a cancelled
        # transaction must publish none (the table's stream is the outbox).
        streams = {id(t): (t.stream_shard, len(t.stream_shard.items))
                   for t, _, _ in slots if t.stream_shard is not None}
        in_transaction.active = True
        try:
            return original(self, transact_items)
        except BaseException:
            # Reverse order: a key named twice keeps its first (original) state.
            for (table, hash_key, range_key), had_hash, state in reversed(saved):
                restore(table, hash_key, range_key, had_hash, state)
            for shard, length in streams.values():
                del shard.items[length:]
            raise
        finally:
            in_transaction.active = False

    transact_write_items._kobatela_patched = True  # type: ignore[attr-defined]
    models.DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


#: environ key set once a request's body has been read to its end, so the
#: connection can carry the next request.
BODY_READ = "kobatela.body_read"


#: DynamoDB operations whose answers are items and counters only: plain JSON.
FAST_JSON_OPERATIONS = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def _json_default(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(value).decode("ascii")  # a B attribute
    raise TypeError(f"not plain JSON: {type(value).__name__}")


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _serialise_items_as_plain_json() -> None:
    """Answer DynamoDB's item operations with json.dumps, not moto's serializer.

    moto walks every answer through botocore's output shapes, attribute by
    attribute: a third of the emulator's time per purchase. The answers of the
    item operations are already DynamoDB JSON (moto builds them as such), so
    dumping them gives the same document. Errors, table descriptions and every
    other operation keep moto's serializer. With KOBATELA_MOTO_CHECK_JSON=1
    (make moto-selftest, make integration) both run, moto's answer is sent and
    any difference is logged as "plain JSON differs", which fails those runs.
    """
    from moto.core.responses import get_service_model
    from moto.dynamodb.responses import DynamoHandler

    if getattr(DynamoHandler.serialized, "_kobatela_patched", False):
        return
    original = DynamoHandler.serialized
    check = os.environ.get("KOBATELA_MOTO_CHECK_JSON") == "1"
    log = logging.getLogger("moto_server")

    output_members: dict[str, frozenset[str]] = {}

    def members(operation: str) -> frozenset[str]:
        # The answer keeps only its output shape's members, as moto's does
        # (DeleteItem's result carries an extra "ConsumedCapacityUnits").
        if operation not in output_members:
            shape = get_service_model("dynamodb").operation_model(operation).output_shape
            output_members[operation] = frozenset(shape.members) if shape is not None else frozenset()
        return output_members[operation]

    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        operation = self._get_action()
        if not isinstance(result, dict) or operation not in FAST_JSON_OPERATIONS:
            return original(self, action_result)
        wanted = members(operation)
        result = {k: v for k, v in result.items() if k in wanted}
        try:
            body = json.dumps(_without_nulls(result), separators=(",", ":"), default=_json_default)
        except TypeError:
            return original(self, action_result)
        headers = {"Content-Type": "application/x-amz-json-1.0"}
        headers.update(self.response_headers)
        if check:
            want = original(self, action_result)
            if want[0] != 200 or json.loads(want[2]) != json.loads(body) or dict(want[1]) != headers:
                log.error("plain JSON differs for %s: moto %s, plain %s", operation, want, body)
                return want
        return 200, headers, body

    serialized._kobatela_patched = True  # type: ignore[attr-defined]
    DynamoHandler.serialized = serialized  # type: ignore[method-assign]


def _memoise_pure_lookups() -> None:
    """Compute once what moto recomputes on every request from fixed inputs.

    - the list of moto's service modules, read from the file system to route
      each request to its service;
    - the tokens of a condition expression, a function of its text alone (a
      purchase's transaction carries several conditions, each lexed twice).
    Both showed up at a few percent each of a purchase's emulator time.
    """
    from collections import deque

    from moto import backends
    from moto.dynamodb.comparisons import ConditionExpressionParser

    if getattr(ConditionExpressionParser._lex_condition_expression, "_kobatela_patched", False):
        return
    modules = list(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: iter(modules)  # type: ignore[assignment]

    lex = ConditionExpressionParser._lex_condition_expression
    tokens: dict[str, tuple[Any, ...]] = {}

    def lex_once(self: Any) -> Any:
        text = self.condition_expression
        known = tokens.get(text)
        if known is None:
            known = tuple(lex(self))  # a bad expression raises here, uncached
            if len(tokens) < 10_000:
                tokens[text] = known
        # Later stages consume the deque and fill children: hand out fresh ones.
        return deque(node._replace(children=[]) for node in known)

    lex_once._kobatela_patched = True  # type: ignore[attr-defined]
    ConditionExpressionParser._lex_condition_expression = lex_once  # type: ignore[method-assign]


class SerialisedApp:
    """WSGI middleware: one request at a time through the wrapped app."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        # An SQS long poll (ReceiveMessage with WaitTimeSeconds, kobatela-local's
        # PSP queue consumer) waits up to 20 s inside moto: under the lock it
        # would stall every other request for that long. It runs outside the
        # lock; moto's SQS queue is a Python list that sends append to and
        # receives copy, each atomic under the GIL. DynamoDB never skips the lock.
        if environ.get("HTTP_X_AMZ_TARGET") == "AmazonSQS.ReceiveMessage":
            body = _read_body(environ)
            environ[BODY_READ] = True
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            result = self.app(environ, start_response)
            try:
                return [bytes(chunk) for chunk in result]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        with self.lock:
            body = _read_body(environ)
            environ[BODY_READ] = True
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


def keep_alive_handler(base: type) -> type:
    """werkzeug's request handler, answering with HTTP/1.1 keep-alive.

    werkzeug closes every connection after one answer (and, after each
    answer, reads and discards whatever the client sent next), because
    http.server cannot drain an unread request body. The AWS SDKs then open a
    TCP connection, and this server a thread, per call: most of what a cheap
    call costs. SerialisedApp reads each body to its end and hands back the
    whole answer, so this handler can send it with its length and leave the
    connection positioned at the next request.
    """

    class KeepAliveHandler(base):  # type: ignore[misc, valid-type]
        def setup(self) -> None:
            super().setup()
            # Answers go out in one write; without this, Nagle's algorithm and
            # the client's delayed ACK hold each answer on a kept-alive
            # connection for up to 40 ms.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run_wsgi(self) -> None:
            if self.headers.get("Expect", "").strip().lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            environ = self.make_environ()
            answer: list[Any] = []

            def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                answer[:] = [status, headers]
                return None

            try:
                body = b"".join(self.server.app(environ, start_response))
                status, headers = answer
            except Exception:  # noqa: BLE001 - answered as a 500, like werkzeug
                logging.getLogger("moto_server").exception("request failed")
                self.close_connection = True
                self.send_error(500)
                return
            code = int(status.split(" ", 1)[0])
            self.send_response(code, status.split(" ", 1)[1] if " " in status else "")
            bodiless = self.command == "HEAD" or code in (204, 304) or 100 <= code < 200
            for name, value in headers:
                lower = name.lower()
                # A HEAD answer keeps the length of what a GET would send.
                if lower in ("connection", "transfer-encoding") or (lower == "content-length" and not bodiless):
                    continue
                self.send_header(name, value)
            if not bodiless:
                self.send_header("Content-Length", str(len(body)))
            if not environ.get(BODY_READ):
                self.send_header("Connection", "close")  # also ends the loop
            # Headers and body in one write (end_headers would flush apart).
            self._headers_buffer.append(b"\r\n")
            if not bodiless:
                self._headers_buffer.append(body)
            self.flush_headers()

    return KeepAliveHandler


def build_app() -> SerialisedApp:
    from moto.server import DomainDispatcherApplication, create_backend_app

    _rollback_touched_items_only()
    _serialise_items_as_plain_json()
    _memoise_pure_lookups()
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
        from moto.server import MotoRequestHandler as base_handler
    except ImportError:  # older moto: werkzeug's default handler
        from werkzeug.serving import WSGIRequestHandler as base_handler

    print(f"moto (serialised) listening on http://{args.host}:{args.port}", flush=True)
    kwargs: dict[str, Any] = {"threaded": True, "request_handler": keep_alive_handler(base_handler)}
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
