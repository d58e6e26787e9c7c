"""Motion-JPEG-over-HTTP cameras served by the benchmark itself, on loopback.

Each path `/cam/<n>.mjpg` plays the same pre-encoded loop from its own starting frame at
the source rate, paced on a grid from the server's start (a late write does not make the
next ones burst). Nothing is encoded while serving: a frame costs one socket write.
"""

from __future__ import annotations

import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOUNDARY = "frame"
_PATH = re.compile(r"^/cam/(\d+)\.mjpg$")


class MjpegCameras:
    """Serves `cameras` MJPEG streams of `frames` at `fps` until stopped."""

    def __init__(self, frames: list[bytes], cameras: int, fps: float) -> None:
        if not frames:
            raise ValueError("no frames to serve")
        self.frames = frames
        self.cameras = cameras
        self.fps = fps
        self._serving = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._epoch = time.monotonic()
        self._lock = threading.Lock()
        self.frames_sent = 0
        self.connections = 0

    def url(self, camera: int) -> str:
        if self._server is None:
            raise RuntimeError("the MJPEG server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/cam/{camera}.mjpg"

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._epoch = time.monotonic()
        self._serving.set()
        threading.Thread(target=self._server.serve_forever, name="mjpeg", daemon=True).start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._serving.clear()  # open streams end
        self._server.shutdown()
        self._server.server_close()
        self._server = None

    def _stream(self, handler: BaseHTTPRequestHandler, camera: int) -> None:
        period = 1.0 / self.fps
        # Cameras start at different points of the loop, so they do not show the same frame.
        offset = camera * len(self.frames) // max(1, self.cameras)
        tick = int((time.monotonic() - self._epoch) / period)
        with self._lock:
            self.connections += 1
        while self._serving.is_set():
            jpeg = self.frames[(offset + tick) % len(self.frames)]
            header = (
                f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
            )
            handler.wfile.write(header.encode() + jpeg + b"\r\n")
            handler.wfile.flush()
            with self._lock:
                self.frames_sent += 1
            tick += 1
            due = self._epoch + tick * period
            now = time.monotonic()
            if due < now - period:
                # Stalled (a slow reader): skip what was missed, as a live camera would.
                tick = int((now - self._epoch) / period) + 1
                due = self._epoch + tick * period
            time.sleep(max(0.0, due - now))

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        cameras = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                match = _PATH.match(self.path)
                if match is None or not 1 <= int(match.group(1)) <= cameras.cameras:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                try:
                    cameras._stream(self, int(match.group(1)))
                except (BrokenPipeError, ConnectionResetError):
                    return

        return Handler
