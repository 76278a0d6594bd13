"""The local server of ``interp view``: the page at ``/`` and the views' payloads at ``/api/<view>?...``.

Design
------
A standard-library ``ThreadingHTTPServer`` bound to the loopback interface (``127.0.0.1`` by default;
port 0 picks a free one). It serves exactly two things: the page (built once, BokehJS inlined, so
nothing is fetched from elsewhere) and JSON payloads computed on request from the stores
(``interp.view.api``). Requests are answered one at a time (a lock), so the stores' caches are never
filled by two threads at once. A failure inside a view is a payload with its message; anything else is
a 500 with a one-line reason (and the traceback on the server's stderr).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import traceback
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

from interp.view import api, page
from interp.view.source import StoreSource


class ViewServer(ThreadingHTTPServer):
    """Serves the page and payloads of ``sources``; ``url`` is its address."""

    daemon_threads = True

    def __init__(self, sources: Sequence[StoreSource], host: str = "127.0.0.1", port: int = 0) -> None:
        self.sources = list(sources)
        self.page = page.build([s.name for s in self.sources]).encode("utf-8")
        self.lock = threading.Lock()
        super().__init__((host, port), _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"


class _Handler(BaseHTTPRequestHandler):
    server: ViewServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the stdlib's name)
        pass  # quiet: the terminal shows the address and errors only

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the browser went away
            self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        parts = urlsplit(self.path)
        if parts.path in ("/", "/index.html"):
            self._send(200, self.server.page, "text/html; charset=utf-8")
            return
        if parts.path.startswith("/api/"):
            view = parts.path[len("/api/") :]
            try:
                with self.server.lock:
                    body = api.answer(self.server.sources, view, dict(parse_qsl(parts.query, keep_blank_values=True)))
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                self._send(500, f"{type(exc).__name__}: {exc}".encode(), "text/plain; charset=utf-8")
                return
            self._send(200, json.dumps(body, allow_nan=False).encode("utf-8"), "application/json")
            return
        if parts.path == "/favicon.ico":
            self._send(204, b"", "image/x-icon")
            return
        self._send(404, b"not found", "text/plain; charset=utf-8")
