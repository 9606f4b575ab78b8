"""A webhook receiver for the benchmark, in its own process: one line per message received.

    python -m bench.notify.receiver PORT OUTFILE

Each line is `<unix time received> <title>`; Apprise's json:// posts {"title", "message", ...}.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def main(port: int, path: str) -> None:
    out = open(path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - open for the process's life
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            now = time.time()
            try:
                title = str(json.loads(body).get("title", ""))
            except ValueError:
                title = ""
            with lock:
                out.write(f"{now:.6f} {title}\n")
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2])
