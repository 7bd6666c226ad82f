"""HTTP/1.1 handler shared by both origins: routing, Range, file streaming and body faults."""

from __future__ import annotations

import socket
import struct
import time
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, BinaryIO, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from quantpick.testing import cdn, control
from quantpick.testing.faults import Fault
from quantpick.testing.log import RequestRecord
from quantpick.testing.replies import HubError, Reply
from quantpick.testing.routes import INVALID_TOKEN, Request
from quantpick.testing.store import StoreError

if TYPE_CHECKING:
    from quantpick.testing.state import OriginState

_CHUNK = 1 << 18
Span = tuple[int, int] | Literal["unsatisfiable"] | None


class HubHandler(BaseHTTPRequestHandler):
    # keep-alive: huggingface_hub and hf_transfer reuse connections, as they do with the real Hub
    protocol_version = "HTTP/1.1"
    server_version = "quantpick-loopback-hub"
    # bounds a handler thread stuck on a client that went silent
    timeout = 120
    server: OriginState  # type: ignore[assignment]

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: object) -> None:
        """Silent: the request log (server.requests) is the record."""

    # --- request ------------------------------------------------------------------------------

    def _serve(self) -> None:
        hub = self.server.hub
        generation = hub.requests.generation
        origin = self.server.origin
        split = urlsplit(self.path)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        path = "/" + "/".join(segments)
        query = parse_qs(split.query, keep_blank_values=True)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if origin == "hub" and segments[:1] == ["_testing"]:
            # control traffic stays out of the request log and is never faulted
            self._send(control.handle(hub, self.command, segments[1:], body))
            return
        status, sent, faulted = 500, 0, False
        fault = hub.faults.claim("request", method=self.command, path=path, origin=origin)
        try:
            if fault is not None and fault.stall_s > 0:
                hub.stopping.wait(fault.stall_s)
            if fault is not None and fault.status is not None:
                reply = HubError(fault.status, None, "Injected fault").reply()
            else:
                reply = self._route(segments, query)
            status = reply.status
            faulted = fault is not None
            if reply.file is not None or reply.stream is not None:
                status, sent, faulted = self._send_file(reply, fault, path)
            else:
                sent = self._send(reply)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        finally:
            self.server.hub.requests.append(
                RequestRecord(
                    method=self.command,
                    path=path,
                    query=split.query,
                    status=status,
                    origin=origin,
                    authorized="Authorization" in self.headers,
                    range=self.headers.get("Range"),
                    bytes_sent=sent,
                    fault=faulted,
                ),
                generation,
            )

    def _route(self, segments: list[str], query: dict[str, list[str]]) -> Reply:
        hub = self.server.hub
        try:
            if self.command not in ("GET", "HEAD"):
                raise HubError(405, None, "Method not allowed")
            if self.server.origin == "cdn":
                authorized = "Authorization" in self.headers
                return cdn.serve(hub.store, hub.signer, segments, query, authorized=authorized)
            if self.server.origin == "cas":
                token = _bearer(self.headers.get("Authorization"))
                return hub.cas.dispatch(segments, query, token, self.headers.get("Range"))
            token = _bearer(self.headers.get("Authorization"))
            if token is not None and not hub.valid_token(token):
                raise HubError(401, None, INVALID_TOKEN)
            host = self.headers.get("Host")
            base_url = f"http://{host}" if host else hub.endpoint
            req = Request(self.command, segments, query, token, base_url)
            return hub.routes.dispatch(req)
        except HubError as e:
            return e.reply()
        except StoreError as e:
            return HubError(500, None, f"Broken test repository: {e}").reply()
        except Exception as e:
            # a server bug: the fixture fails the test that hit it, with this traceback
            hub.errors.append(traceback.format_exc())
            return HubError(500, None, f"Loopback hub bug: {e!r}").reply()

    # --- response -----------------------------------------------------------------------------

    def _send(self, reply: Reply) -> int:
        self.send_response(reply.status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command == "HEAD":
            return 0
        self.wfile.write(reply.body)
        return len(reply.body)

    def _send_file(self, reply: Reply, fault: Fault | None, path: str) -> tuple[int, int, bool]:
        """Returns (status, body bytes sent, whether a fault shaped the answer)."""
        entry, stream = reply.file, reply.stream
        size = entry.size if entry is not None else stream.size if stream is not None else 0
        if fault is None:
            fault = self.server.hub.faults.claim(
                "body", method=self.command, path=path, origin=self.server.origin
            )
        ignored = fault is not None and fault.ignore_range != 0
        span = None if ignored else _parse_range(self.headers.get("Range"), size)
        if span == "unsatisfiable":
            range_headers = {"Content-Range": f"bytes */{size}"}
            self._send(HubError(416, None, "Range Not Satisfiable", range_headers).reply())
            return 416, 0, fault is not None
        start, end = span if span is not None else (0, size - 1)
        length = end - start + 1
        announced = max(0, length + (fault.length_delta if fault else 0))
        status = 206 if span is not None else reply.status
        self.send_response(status)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(announced))
        if span is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD":
            return status, 0, fault is not None
        sent = self._send_body(reply, start, length, announced, fault)
        return status, sent, fault is not None

    def _send_body(
        self, reply: Reply, start: int, length: int, announced: int, fault: Fault | None
    ) -> int:
        count = min(length, announced)
        cut = count < announced
        abort = False
        if fault is not None:
            if fault.truncate_bytes:
                count, cut = max(0, count - fault.truncate_bytes), True
            if fault.drop_after_bytes is not None and fault.drop_after_bytes < count:
                count, abort = fault.drop_after_bytes, True
        if reply.stream is not None:
            sent = self._drip(reply.stream.pieces(start, count), start, count, fault)
        else:
            assert reply.file is not None
            with open(reply.file.abs_path, "rb") as f:
                if fault is None or (fault.corrupt_at is None and fault.rate_bps is None):
                    sent = self.connection.sendfile(f, start, count) if count else 0
                else:
                    sent = self._drip(_read_pieces(f, start, count, fault), start, count, fault)
        if abort:
            # SO_LINGER 0 turns the close into a RST: the client sees a reset, not a clean EOF
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.server.abort(self.connection)
        if abort or cut:
            self.close_connection = True
        return sent

    def _drip(self, pieces: Iterator[bytes], start: int, count: int, fault: Fault | None) -> int:
        """Python-level copy, for generated bodies and for faults that touch bytes or pace."""
        sent, began = 0, time.monotonic()
        for piece in _paced(pieces, fault):
            if sent >= count:
                break
            data = bytearray(piece[: count - sent])
            if (
                fault is not None
                and fault.corrupt_at is not None
                and start + sent <= fault.corrupt_at < start + sent + len(data)
            ):
                data[fault.corrupt_at - start - sent] ^= 0xFF
            self.wfile.write(data)
            sent += len(data)
            if fault is not None and fault.rate_bps is not None:
                ahead = began + sent / fault.rate_bps - time.monotonic()
                if ahead > 0 and self.server.hub.stopping.wait(ahead):
                    break
        return sent


def _paced(pieces: Iterator[bytes], fault: Fault | None) -> Iterator[bytes]:
    """Pieces small enough for a rate cap to pace smoothly (about 20 writes a second)."""
    if fault is None or fault.rate_bps is None:
        yield from pieces
        return
    step = max(1, min(_CHUNK, fault.rate_bps // 20))
    for piece in pieces:
        for at in range(0, len(piece), step):
            yield piece[at : at + step]


def _read_pieces(f: BinaryIO, start: int, count: int, fault: Fault | None) -> Iterator[bytes]:
    rate = fault.rate_bps if fault is not None else None
    chunk = _CHUNK if rate is None else max(1, min(_CHUNK, rate // 20))
    f.seek(start)
    left = count
    while left > 0:
        data = f.read(min(chunk, left))
        if not data:
            return
        left -= len(data)
        yield data


def _bearer(header: str | None) -> str | None:
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    # a non-Bearer header is an invalid credential, not an anonymous call
    return token.strip() if scheme.lower() == "bearer" else header


def _parse_range(header: str | None, size: int) -> Span:
    """One `bytes=` range, clamped: hf_transfer's last chunk asks one byte past the end."""
    if not header or not header.startswith("bytes="):
        return None
    first, _, last = header[6:].split(",")[0].strip().partition("-")
    try:
        if first == "":
            start, end = max(0, size - int(last)), size - 1
        else:
            start, end = int(first), int(last) if last else size - 1
    except ValueError:
        return None  # RFC 9110: an unreadable Range is ignored
    if start >= size or end < start:
        return "unsatisfiable"
    return start, min(end, size - 1)
