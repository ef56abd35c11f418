"""A real webhook receiver on loopback for the webhook tests: an ``http.server`` in a thread that
records every request (with the time the app's clock showed when it arrived) and answers as a
script says, optionally holding its answer until the test releases it."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: ``(path, webhook-id, how many times this id came to this path before) -> status``.
Script = Callable[[str, str, int], int]


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    #: The app's clock when the request arrived.
    at: datetime

    @property
    def event_id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def message(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    clock: Callable[[], datetime]
    script: Script = lambda _path, _event_id, _seen: 200
    received: list[Received] = field(default_factory=list)
    #: Set when a request arrives; while ``hold`` is set, answers wait for ``release``.
    arrived: threading.Event = field(default_factory=threading.Event)
    hold: bool = False
    release: threading.Event = field(default_factory=threading.Event)
    #: What happened, in order ("arrived", "answered" and whatever the test adds).
    timeline: list[str] = field(default_factory=list)
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def accepted(self, path: str | None = None) -> list[Received]:
        return [
            r for r in self.received if 200 <= r.status < 300 and (path is None or r.path == path)
        ]

    def accepted_ids(self, path: str | None = None) -> Counter[str]:
        return Counter(r.event_id for r in self.accepted(path))

    def at(self, path: str) -> list[Received]:
        return [r for r in self.received if r.path == path]

    def _answer(self, path: str, headers: dict[str, str], body: bytes) -> int:
        with self._lock:
            event_id = headers.get("webhook-id", "")
            seen = sum(1 for r in self.received if r.path == path and r.event_id == event_id)
            status = self.script(path, event_id, seen)
            self.timeline.append("arrived")
            self.arrived.set()
        if self.hold:
            assert self.release.wait(30), "the test never released the receiver"
        with self._lock:
            self.received.append(Received(path, headers, body, status, self.clock()))
            self.timeline.append("answered")
        return status


def _handler(receiver: WebhookReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            headers = {name.lower(): value for name, value in self.headers.items()}
            status = receiver._answer(self.path, headers, body)
            answer = b"ok" if status < 300 else b"receiver says no"
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.send_header("content-length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running_receiver(clock: Callable[[], datetime]) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(clock=clock)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
