"""Where outbox messages leave the system: a gateway takes one message and delivers it, or raises.

``log`` (the default) records the delivery in the log and keeps the last ones in memory, so a site
without an SMS provider still sees what would have been sent; ``http`` POSTs each message as JSON to a
configured URL, the shape an SMS provider's webhook takes; ``webhook`` messages (events for other
platforms) go through ``WebhookGateway``, signed, whatever the SMS gateway is. A gateway may be handed a message twice
(a worker that died after sending but before marking it sent): ``http`` sends the message id as
``Idempotency-Key`` so the receiving side can drop the repeat.
"""
from __future__ import annotations

import collections
import hashlib
import hmac
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("lianhu.outbox")


@dataclass(frozen=True)
class OutgoingMessage:
    id: str
    kind: str
    payload: dict[str, Any]
    attempt: int


class GatewayError(Exception):
    """Delivery failed. ``permanent`` failures are not retried (the provider refused the message)."""

    def __init__(self, message: str, permanent: bool = False, status_code: int | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.status_code = status_code


class Gateway(Protocol):
    name: str

    def send(self, message: OutgoingMessage) -> None:
        """Deliver ``message`` or raise ``GatewayError``."""


def mask_phone(phone: Any) -> str:
    """Enough of a number to tell messages apart in a log, not enough to call it."""
    text = str(phone or "")
    return ("*" * max(len(text) - 4, 0)) + text[-4:]


@dataclass
class LogGateway:
    name: str = "log"
    sent: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1000))

    def send(self, message: OutgoingMessage) -> None:
        log.info("outbox %s %s to %s (attempt %d)", message.kind, message.id,
                 mask_phone(message.payload.get("to")), message.attempt)
        self.sent.append(message)


@dataclass
class HttpGateway:
    url: str
    token: str | None = None
    timeout: float = 10.0
    name: str = "http"

    def send(self, message: OutgoingMessage) -> None:
        body = json.dumps({"id": message.id, "kind": message.kind, **message.payload}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": message.id}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            # the provider refused this message: trying it again cannot help (except when it asks us to)
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise GatewayError(f"HTTP {exc.code} from the gateway", permanent=permanent) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GatewayError(f"gateway unreachable: {exc}") from None


SIGNATURE_HEADER = "Lianhu-Signature"


def webhook_signature(secret: str, timestamp: int, body: bytes) -> str:
    """``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``: the receiver recomputes it and checks ``t`` is
    recent, so a body cannot be altered, and an old delivery cannot be played back later, unnoticed."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


@dataclass
class WebhookGateway:
    """POSTs a webhook delivery's stored body to its subscription's URL, signed with its secret.

    ``resolve(delivery_id)`` reads the delivery's current URL, secret and body (or None) just before
    sending, so a moved URL or a rotated secret applies to retries. Any answer but 2xx is a failure;
    a 4xx other than 408/429, or a subscription switched off, is not retried.
    """

    resolve: Callable[[str], Any]
    timeout: float = 10.0
    name: str = "webhook"

    def send(self, message: OutgoingMessage) -> int:
        target = self.resolve(message.payload.get("delivery_id"))
        if target is None:
            raise GatewayError("no such webhook delivery", permanent=True)
        if not target.active:
            raise GatewayError("the subscription is switched off", permanent=True)
        body = target.body.encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Lianhu-Webhooks/1",
                   "Lianhu-Event": target.event_type, "Lianhu-Delivery": target.delivery_id,
                   SIGNATURE_HEADER: webhook_signature(target.secret, int(time.time()), body)}
        request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
                return response.status
        except urllib.error.HTTPError as exc:
            permanent = 400 <= exc.code < 500 and exc.code not in (408, 429)
            raise GatewayError(f"HTTP {exc.code} from the receiver", permanent=permanent,
                               status_code=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            raise GatewayError(f"receiver unreachable: {exc}") from None


@dataclass
class KindRouter:
    """One gateway per message kind (``webhook``), the configured one for the rest (SMS)."""

    default: Gateway
    by_kind: dict[str, Gateway]

    @property
    def name(self) -> str:
        return self.default.name

    def send(self, message: OutgoingMessage):
        return self.by_kind.get(message.kind, self.default).send(message)


def gateway_from_config(config) -> Gateway:
    """The gateway the settings name; a wrong setting stops the worker at start, not at the first message."""
    kind = config["OUTBOX_GATEWAY"]
    if kind == "log":
        return LogGateway()
    if kind == "http":
        url = config.get("OUTBOX_HTTP_URL")
        if not url or not url.startswith(("http://", "https://")):
            raise RuntimeError("OUTBOX_GATEWAY=http needs OUTBOX_HTTP_URL (an http:// or https:// URL)")
        return HttpGateway(url, config.get("OUTBOX_HTTP_TOKEN"), config["OUTBOX_HTTP_TIMEOUT_SECONDS"])
    raise RuntimeError(f"OUTBOX_GATEWAY must be log or http, not {kind!r}")
