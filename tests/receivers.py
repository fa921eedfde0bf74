"""Real local receivers for delivery tests: an SMTP server (aiosmtpd) and an HTTP server (the
standard library's, in a thread) standing in for the SMS gateway and group-robot webhooks.
Both listen on 127.0.0.1 only, record what they receive, and fail on demand (a number of
failures first, or always) so retries and dead-lettering run against real sockets."""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Mail:
    recipients: list[str]
    message: EmailMessage

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        assert body is not None
        content: str = body.get_content()
        return content

    @property
    def everything(self) -> str:
        """Headers and body, decoded: what a privacy check must search."""
        return f"{self.message['Subject']}\n{self.message.as_string()}\n{self.text}"


class SmtpReceiver:
    """An SMTP server that answers ``451`` to the first ``fail`` messages (``fail=-1``: always),
    then accepts and keeps them."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.fail = 0
        self.refused = 0
        self._lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self.fail:
                self.fail -= 1 if self.fail > 0 else 0
                self.refused += 1
                return "451 4.3.0 try again later"
            raw = envelope.original_content or b""
            message = message_from_bytes(raw, policy=policy.default)
            assert isinstance(message, EmailMessage)
            self.mails.append(Mail(list(envelope.rcpt_tos), message))
        return "250 OK"

    def __enter__(self) -> SmtpReceiver:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class HttpReceiver:
    """An HTTP server: POSTs are recorded; ``script`` holds statuses to answer first (then 200,
    or ``always`` if set); ``delay`` seconds before answering (to make workers overlap)."""

    script: list[int] = field(default_factory=list)
    always: int | None = None
    delay: float = 0.0
    requests: list[Request] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                if receiver.delay:
                    threading.Event().wait(receiver.delay)
                with receiver._lock:
                    receiver.requests.append(
                        Request(self.path, dict(self.headers.items()), json.loads(raw or b"null"))
                    )
                    if receiver.script:
                        status = receiver.script.pop(0)
                    else:
                        status = receiver.always or 200
                    receiver.answered.append(status)
                    n = len(receiver.requests)
                answer = {"id": f"gw-{n}", "errcode": 0, "errmsg": "ok"} if status < 300 else {}
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
