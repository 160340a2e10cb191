"""A stand-in for the API in the local dev stack: it only answers Nomad's health check.

GET /health -> 200 {"status": "ok"}; anything else -> 404. Listens on $PORT (the job sets it
from the api port), stops cleanly on SIGTERM so `nomad job stop` does not wait for a kill.
"""

from __future__ import annotations

import json
import os
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType


class Health(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/health":
            self._reply(200, {"status": "ok"})
        else:
            self._reply(404, {"error": f"not found: {self.path}"})

    def _reply(self, code: int, document: dict[str, str]) -> None:
        body = json.dumps(document).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    host, port = os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer((host, port), Health)

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever, so it must not run on the serving thread.
        threading.Thread(target=server.shutdown).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"api stand-in listening on {host}:{port}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
