"""The fake server's HTTP transport: a threading stdlib server that hands each request's
method, path, API key and body to a handler and writes back its answer.

One thread per connection, so slow answers never hold up others; HTTP/1.1 keep-alive as
httpx expects; chunked request bodies read; idle connections dropped on stop.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

JSON = "application/json; charset=UTF-8"


@dataclass(frozen=True)
class Out:
    """An answer; ``cut`` set: the connection is reset (RST) after that many bytes of the body, 0 before any byte
    of the answer at all, so the client sees a dropped connection, not an HTTP error."""

    status: int
    body: bytes
    content_type: str = JSON
    cut: int | None = None


def json_out(status: int, payload: Any) -> Out:
    return Out(status, json.dumps(payload, indent=2).encode())  # Google pretty-prints its JSON


Handle = Callable[[str, str, "str | None", bytes], Out]  # (method, path, API key, body) -> answer


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # a burst of concurrent connects must not be refused

    def __init__(self, address: tuple[str, int], handle: Handle, stopping: threading.Event) -> None:
        super().__init__(address, _Handler)
        self.handle, self.stopping = handle, stopping
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def track(self, conn: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            (self._connections.add if alive else self._connections.discard)(conn)

    def drop_connections(self) -> None:
        """End idle keep-alive connections so their handler threads exit with the server."""
        with self._connections_lock:
            conns = list(self._connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx pools connections
    server_version = "ESF"
    sys_version = ""
    timeout = 120  # drop idle keep-alive connections eventually
    server: Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: with Nagle's algorithm on, the body would wait for
        # the client's delayed ACK of the headers, some 40 ms a call that no real API adds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        self.server.track(self.connection, False)
        super().finish()

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self, method: str) -> None:
        raw = self._read_body()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        key = self.headers.get("x-goog-api-key") or (query.get("key") or [None])[0]
        out = self.server.handle(method, url.path, key, raw)
        if self.server.stopping.is_set():
            self.close_connection = True
            return
        try:
            if out.cut != 0:
                self.send_response(out.status)
                self.send_header("Content-Type", out.content_type)
                self.send_header("Content-Length", str(len(out.body)))
                self.end_headers()
                self.wfile.write(out.body if out.cut is None else out.body[: out.cut])
            if out.cut is not None:
                self._reset()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reset(self) -> None:
        """Close with a TCP RST instead of a FIN: SO_LINGER on, with a zero timeout."""
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
