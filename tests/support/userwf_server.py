"""A loopback HTTP server for workflow steps in tests: flaky, gated and recording endpoints.

- ``/flaky/<n>``: 500 for the first ``n`` requests, then 200 ``ok``.
- ``/gate``: 503 until :meth:`StepServer.open_gate`, then 200 ``open``.
- ``/status/<code>``: answers that status.
- ``/hook/<name>``: records the JSON body and headers of each POST, answers 204.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StepServer:
    """Serves on 127.0.0.1 on a free port until :meth:`close`."""

    def __init__(self) -> None:
        self.hits: Counter[str] = Counter()
        self.hooks: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gate_open = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, body: bytes = b"") -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                path = self.path
                server.hits[path] += 1
                if path.startswith("/flaky/"):
                    fails = int(path.rsplit("/", 1)[1])
                    ok = server.hits[path] > fails
                    self._answer(200 if ok else 500, b"ok" if ok else b"not yet")
                elif path == "/gate":
                    opened = server.gate_open.is_set()
                    self._answer(200 if opened else 503, b"open" if opened else b"closed")
                elif path.startswith("/status/"):
                    self._answer(int(path.rsplit("/", 1)[1]), b"as asked")
                else:
                    self._answer(404, b"no such path")

            def do_POST(self) -> None:  # noqa: N802
                server.hits[self.path] += 1
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"null")
                name = self.path.removeprefix("/hook/")
                server.hooks[name].append({"body": body, "headers": dict(self.headers)})
                self._answer(204)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def open_gate(self) -> None:
        """``/gate`` answers 200 from now on."""
        self.gate_open.set()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
