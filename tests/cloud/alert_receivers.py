"""Real local receivers for the alert delivery tests: an SMTP server (aiosmtpd), an HTTP server
that records what is POSTed and answers a chosen status, and one that never answers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from edgecascade.brokers import free_port


class SmtpInbox:
    """Accepts every mail (or refuses each with ``refuse``, an SMTP reply) and keeps it."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.mails: list[tuple[list[str], EmailMessage]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.refuse is not None:
            return self.refuse
        content = envelope.original_content or b""
        with self._lock:
            self.mails.append(
                (list(envelope.rcpt_tos), message_from_bytes(content, policy=policy.default))
            )
        return "250 OK"

    def received(self) -> list[tuple[list[str], EmailMessage]]:
        with self._lock:
            return list(self.mails)


@contextmanager
def smtp_server(refuse: str | None = None) -> Iterator[tuple[SmtpInbox, int]]:
    inbox = SmtpInbox(refuse)
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def mailto(port: int) -> str:
    """An apprise URL sending plain SMTP to the local server."""
    return f"mailto://127.0.0.1:{port}?from=cloud@example.com&to=ops@example.com&mode=insecure"


class HttpInbox:
    def __init__(self, status: int) -> None:
        self.status = status
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def add(self, body: dict[str, Any]) -> None:
        with self._lock:
            self.bodies.append(body)

    def received(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.bodies)


@contextmanager
def http_server(status: int = 200) -> Iterator[tuple[HttpInbox, str]]:
    """A webhook receiver answering ``status``; yields it and its URL."""
    inbox = HttpInbox(status)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            inbox.add(body)
            self.send_response(inbox.status)
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield inbox, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def hanging_server() -> Iterator[str]:
    """A listening socket that never accepts: connections complete, requests are never read."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    finally:
        sock.close()
