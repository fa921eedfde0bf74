"""Delivery channels: email over SMTP, an SMS gateway over HTTP, and group-robot webhooks
(WeCom 企业微信 / DingTalk 钉钉). Each takes the recipients a unit has on it and a rendered
``Message`` and returns the receiver's message id, or raises ``DeliveryFailed``.

A failure is reported as a short code (``http_503``, ``smtp_unreachable``), never with the
receiver's text or an exception message: those can echo a recipient's address or a URL with a
key in it, and the codes are stored and logged. ``permanent`` failures (the receiver refused the
request as such: a 4xx, a 5xx SMTP reply, a URL outside the allow-list) are not retried.

Channels are configured from the environment (``api.settings.NotifySettings``); ``from_settings``
builds those that are configured, so a worker only claims notifications it can deliver.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

from api.settings import NotifySettings, SmtpSecurity
from domain.notifications import Channel, Message, safe_receipt


class DeliveryFailed(Exception):
    """A delivery attempt failed; ``code`` says how (stored, so never personal)."""

    def __init__(self, code: str, *, permanent: bool = False) -> None:
        super().__init__(code)
        self.code = code[:64]
        self.permanent = permanent


class Sender(Protocol):
    channel: Channel

    async def send(self, recipients: Sequence[str], message: Message) -> str | None:
        """Deliver ``message`` to ``recipients``; the receiver's message id, if any."""
        ...


@dataclass
class SmtpSender:
    """Email through an SMTP server, with the standard library's client in a thread (one
    connection per message: the worker sends few, and a long-lived connection would have to
    survive the server's idle timeout)."""

    host: str
    port: int = 587
    security: SmtpSecurity = SmtpSecurity.STARTTLS
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "xinqiao@localhost"
    timeout: float = 10.0
    channel: Channel = Channel.EMAIL

    async def send(self, recipients: Sequence[str], message: Message) -> str | None:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = ", ".join(recipients)
        mail["Subject"] = message.subject
        mail["Message-ID"] = make_msgid(idstring=message.reference, domain="xinqiao")
        mail["X-Xinqiao-Reference"] = message.reference
        mail.set_content(message.text)
        await asyncio.to_thread(self._send, mail, list(recipients))
        return safe_receipt(mail["Message-ID"])

    def _send(self, mail: EmailMessage, recipients: list[str]) -> None:
        try:
            client = self._connect()
            try:
                if self.username and self.password:
                    client.login(self.username, self.password)
                # A partial refusal counts as sent: retrying would reach the others again.
                client.send_message(mail, to_addrs=recipients)
            finally:
                try:
                    client.quit()
                except smtplib.SMTPException:
                    client.close()
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryFailed("smtp_recipients_refused", permanent=True) from None
        except smtplib.SMTPAuthenticationError:
            raise DeliveryFailed("smtp_auth", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            code = int(exc.smtp_code)
            raise DeliveryFailed(f"smtp_{code}", permanent=500 <= code < 600) from None
        except (smtplib.SMTPException, OSError):
            raise DeliveryFailed("smtp_unreachable") from None

    def _connect(self) -> smtplib.SMTP:
        if self.security is SmtpSecurity.TLS:
            context = ssl.create_default_context()
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security is SmtpSecurity.STARTTLS:
            try:
                client.starttls(context=ssl.create_default_context())
            except BaseException:
                client.close()
                raise
        return client


def _http_failure(status: int) -> DeliveryFailed:
    """4xx is the request's fault and will not get better (except a timeout or a rate limit);
    5xx and the rest may."""
    permanent = 400 <= status < 500 and status not in (408, 425, 429)
    return DeliveryFailed(f"http_{status}", permanent=permanent)


async def _post(client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]) -> Any:
    try:
        response = await client.post(url, json=body, headers=headers)
    except httpx.TimeoutException:
        raise DeliveryFailed("http_timeout") from None
    except httpx.HTTPError:
        raise DeliveryFailed("http_unreachable") from None
    if not 200 <= response.status_code < 300:
        raise _http_failure(response.status_code)
    try:
        return response.json()
    except ValueError:
        return None


@dataclass
class SmsGatewaySender:
    """An SMS gateway that takes ``POST {"to": [...], "text": ..., "reference": ...}`` with a
    bearer token and answers 2xx (optionally with ``{"id": ...}``). Gateways differ; one that
    wants another shape is a small adapter in front of it, not a change here."""

    url: str
    token: str = field(repr=False)
    timeout: float = 10.0
    channel: Channel = Channel.SMS

    async def send(self, recipients: Sequence[str], message: Message) -> str | None:
        body = {"to": list(recipients), "text": message.text, "reference": message.reference}
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            answer = await _post(client, self.url, body, headers)
        if isinstance(answer, dict):
            return safe_receipt(answer.get("id", answer.get("message_id")))
        return None


@dataclass
class WebhookSender:
    """A group robot: ``POST {"msgtype": "text", "text": {"content": ...}}`` to each of the
    unit's webhook URLs (WeCom and DingTalk take the same text message and answer
    ``{"errcode": 0}``). Only URLs on the allowed hosts are posted to."""

    allowed_hosts: tuple[str, ...]
    timeout: float = 10.0
    channel: Channel = Channel.WEBHOOK

    async def send(self, recipients: Sequence[str], message: Message) -> str | None:
        for url in recipients:
            self._check(url)
        body = {"msgtype": "text", "text": {"content": message.text}}
        headers = {"X-Xinqiao-Reference": message.reference}
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            for url in recipients:
                answer = await _post(client, url, body, headers)
                errcode = answer.get("errcode", 0) if isinstance(answer, dict) else 0
                if errcode not in (0, "0", None):
                    code = safe_receipt(errcode) or "unknown"
                    raise DeliveryFailed(f"webhook_errcode_{code}")
        return None

    def _check(self, url: str) -> None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        netloc = f"{host}:{parts.port}" if parts.port else host
        if parts.scheme not in ("http", "https") or (
            host not in self.allowed_hosts and netloc not in self.allowed_hosts
        ):
            raise DeliveryFailed("webhook_host_not_allowed", permanent=True)


def from_settings(settings: NotifySettings) -> dict[Channel, Sender]:
    """The channels this deployment configured."""
    senders: dict[Channel, Sender] = {}
    if settings.smtp_host:
        senders[Channel.EMAIL] = SmtpSender(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_username,
            password=settings.smtp_password,
            sender=settings.smtp_from,
            timeout=settings.timeout_seconds,
        )
    if settings.sms_url and settings.sms_token:
        senders[Channel.SMS] = SmsGatewaySender(
            url=settings.sms_url, token=settings.sms_token, timeout=settings.timeout_seconds
        )
    if settings.webhook_hosts:
        senders[Channel.WEBHOOK] = WebhookSender(
            allowed_hosts=settings.webhook_hosts, timeout=settings.timeout_seconds
        )
    return senders
