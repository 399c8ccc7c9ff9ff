"""Events for other platforms (一网统管 and others): subscriptions per area, signed deliveries through the
outbox, the delivery log and replays.

A move in the request loop (``sync.requests.notify``) or a household found overdue by the sweep makes one
``WebhookDelivery`` per matching subscription, with its exact body, and one outbox message of kind
``webhook`` that carries it, in the transaction that made the move: the event is sent if and only if the
move commits. The worker sends it like any outbox message (claim, send, mark; back-off; leases), through
``server.gateways.WebhookGateway``, which signs the body with the subscription's secret at send time.
Personal data in a body is limited to the subscription's grant (``docs/webhooks.md``).
"""
from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from sync import requests as request_rules
from sync.errors import ForbiddenError, NotFoundError
from sync.models import Area, Household, OutboxMessage, Request, WebhookDelivery, WebhookSubscription, new_id, utcnow
from sync.policy import Scope

from .audit import mask_phone
from .common import paginate

PAYLOAD_VERSION = 1
OUTBOX_KIND = "webhook"


# --- subscriptions --------------------------------------------------------------------------------


def create_subscription(session: Session, scope: Scope, data: dict) -> WebhookSubscription:
    """A subscription for an area in scope; only an admin may grant personal data (``contact``)."""
    area = scope.require_area(session, data["area_id"])
    if data["grant"] != "none" and scope.actor.role != "admin":
        raise ForbiddenError("Only an admin may grant personal data to another platform.")
    subscription = WebhookSubscription(
        id=new_id(), area_id=area.id, community_id=area.community_id, name=data["name"], url=data["url"],
        secret=secrets.token_urlsafe(32), event_types=list(data["event_types"]), grant=data["grant"],
        active=True, created_by=scope.actor.user_id, created_at=utcnow())
    session.add(subscription)
    session.flush()
    return subscription


def _subscriptions_in(scope: Scope):
    return WebhookSubscription.area_id.in_(scope.area_ids())


def list_subscriptions(session: Session, scope: Scope, page: int, per_page: int) -> dict:
    stmt = select(WebhookSubscription).where(_subscriptions_in(scope))
    return paginate(session, stmt, page, per_page, (WebhookSubscription.created_at, WebhookSubscription.id))


def require_subscription(session: Session, scope: Scope, subscription_id: str) -> WebhookSubscription:
    found = session.scalar(select(WebhookSubscription).where(WebhookSubscription.id == subscription_id,
                                                             _subscriptions_in(scope)))
    if found is None:
        raise NotFoundError()
    return found


def deactivate_subscription(session: Session, scope: Scope, subscription_id: str) -> WebhookSubscription:
    """No new events; deliveries already queued fail for good at their next try."""
    subscription = require_subscription(session, scope, subscription_id)
    subscription.active = False
    return subscription


# --- events ---------------------------------------------------------------------------------------


def _time(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z") if value else None


def _household_data(household: Household, grant: str) -> dict[str, Any]:
    data: dict[str, Any] = {"id": household.id, "area_id": household.area_id, "tags": list(household.tags or [])}
    if grant == "contact":
        data.update(address=household.address, head_name=household.head_name,
                    phone_masked=mask_phone(household.phone))
    return data


def _request_data(request: Request, grant: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": request.id, "household_id": request.household_id, "category": request.category,
        "urgency": request.urgency, "status": request.status, "source": request.source,
        "external_id": request.external_id, "handler": request.handler, "raised_at": _time(request.raised_at),
        "due_at": _time(request.due_at), "resolved_at": _time(request.resolved_at),
        "feedback_due_at": _time(request.feedback_due_at), "closed_at": _time(request.closed_at),
        "satisfaction": request.satisfaction,
    }
    if grant == "contact":
        data.update(description=request.description, resolution=request.resolution)
    return data


def _matching(session: Session, event_type: str, household: Household) -> list[WebhookSubscription]:
    """Active subscriptions of the household's community whose area holds it and that want this event.
    On every push of a request or its event: a community without subscriptions costs one indexed query."""
    rows = [(sub, path) for sub, path in session.execute(
        select(WebhookSubscription, Area.path).join(Area, Area.id == WebhookSubscription.area_id).where(
            WebhookSubscription.community_id == household.community_id, WebhookSubscription.active.is_(True)))
        if event_type in (sub.event_types or ())]
    if not rows:
        return []
    area_path = session.scalar(select(Area.path).where(Area.id == household.area_id))
    return [sub for sub, path in rows if area_path.startswith(path)]


def _queue(session: Session, subscription: WebhookSubscription, event_type: str, now: dt.datetime,
           household: Household, data: dict[str, Any], dedupe_key: str | None = None) -> WebhookDelivery:
    delivery_id = new_id()
    envelope = {"version": PAYLOAD_VERSION, "id": delivery_id, "type": event_type, "occurred_at": _time(now),
                "subscription_id": subscription.id, "community_id": household.community_id,
                "area_id": household.area_id, "data": data}
    outbox_id, queued_at = new_id(), utcnow()  # ``now`` is the event's time; the queue runs on the clock
    delivery = WebhookDelivery(id=delivery_id, subscription_id=subscription.id, community_id=household.community_id,
                               event_type=event_type, body=json.dumps(envelope, ensure_ascii=False),
                               outbox_id=outbox_id, status="pending", attempts=[], created_at=queued_at)
    session.add(delivery)
    session.add(OutboxMessage(id=outbox_id, kind=OUTBOX_KIND, payload={"delivery_id": delivery_id},
                              dedupe_key=dedupe_key, created_at=queued_at, next_attempt_at=queued_at))
    return delivery


def on_request_event(session: Session, event_type: str, request: Request, now: dt.datetime) -> None:
    """``sync.requests`` listener: a delivery for each subscription that wants this move."""
    household = session.get(Household, request.household_id)
    for subscription in _matching(session, event_type, household):
        _queue(session, subscription, event_type, now, household,
               {"request": _request_data(request, subscription.grant),
                "household": _household_data(household, subscription.grant)})


class OverdueAnnouncer:
    """Tells subscribed platforms of households the sweep found overdue: one event per overdue spell
    (per household and ``due_at``), however often the sweep runs.

    Made once per sweep: it reads the subscriptions that want ``household.overdue`` and the area paths
    once, so a district's sweep costs one indexed look-up per household inside a subscribed area.
    It is false when no subscription wants the event, and the sweep then skips it altogether.
    """

    EVENT = "household.overdue"

    def __init__(self, session: Session):
        self.session = session
        self.by_community: dict[str, list[tuple[WebhookSubscription, str]]] = {}
        for subscription, path in session.execute(
                select(WebhookSubscription, Area.path).join(Area, Area.id == WebhookSubscription.area_id)
                .where(WebhookSubscription.active.is_(True))):
            if self.EVENT in (subscription.event_types or ()):
                self.by_community.setdefault(subscription.community_id, []).append((subscription, path))
        self.paths: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.by_community)

    def announce(self, household_id: str, due_at: dt.datetime, days_overdue: int, member_id: str | None,
                 now: dt.datetime) -> int:
        """Queue the event for each subscription whose area holds the household; the number queued."""
        household = self.session.get(Household, household_id)
        candidates = self.by_community.get(household.community_id, ())
        if not candidates:
            return 0
        if household.area_id not in self.paths:
            self.paths[household.area_id] = self.session.scalar(select(Area.path).where(Area.id == household.area_id))
        queued = 0
        for subscription, path in candidates:
            key = f"webhook:{subscription.id}:overdue:{household.id}:{_time(due_at)}"
            if not self.paths[household.area_id].startswith(path) or self.session.scalar(
                    select(exists().where(OutboxMessage.dedupe_key == key))):
                continue
            _queue(self.session, subscription, self.EVENT, now, household,
                   {"household": _household_data(household, subscription.grant), "due_at": _time(due_at),
                    "days_overdue": days_overdue, "paired": member_id is not None}, dedupe_key=key)
            queued += 1
        return queued


def register_listeners() -> None:
    """Hear the request loop's moves (once per process, however many apps it makes)."""
    if on_request_event not in request_rules.LISTENERS:
        request_rules.LISTENERS.append(on_request_event)


# --- deliveries: the log, the worker's side, replays ----------------------------------------------


def _deliveries_in(scope: Scope):
    return WebhookDelivery.subscription_id.in_(select(WebhookSubscription.id).where(_subscriptions_in(scope)))


def list_deliveries(session: Session, scope: Scope, subscription_id: str | None, status: str | None,
                    page: int, per_page: int) -> dict:
    stmt = select(WebhookDelivery).where(_deliveries_in(scope))
    if subscription_id:
        stmt = stmt.where(WebhookDelivery.subscription_id == require_subscription(session, scope, subscription_id).id)
    if status:
        stmt = stmt.where(WebhookDelivery.status == status)
    return paginate(session, stmt, page, per_page, (WebhookDelivery.created_at.desc(), WebhookDelivery.id))


def require_delivery(session: Session, scope: Scope, delivery_id: str) -> WebhookDelivery:
    found = session.scalar(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id, _deliveries_in(scope)))
    if found is None:
        raise NotFoundError()
    return found


def replay(session: Session, scope: Scope, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again, the same body with the same ``id`` (so a receiver that had it can drop it),
    signed afresh; through the outbox like the first time, with its own retries."""
    delivery = require_delivery(session, scope, delivery_id)
    # a retry still waiting is replaced by the replay, so the receiver does not get both
    session.execute(update(OutboxMessage).where(OutboxMessage.id == delivery.outbox_id,
                                                OutboxMessage.status == "pending").values(status="superseded"))
    outbox_id = new_id()
    now = utcnow()
    session.add(OutboxMessage(id=outbox_id, kind=OUTBOX_KIND, payload={"delivery_id": delivery.id, "replay": True},
                              created_at=now, next_attempt_at=now))
    delivery.outbox_id = outbox_id
    delivery.status = "pending"
    return delivery


@dataclass(frozen=True)
class Target:
    """What the gateway needs to send one delivery, read just before it sends."""

    delivery_id: str
    url: str
    secret: str
    event_type: str
    body: str
    active: bool


def target(session: Session, delivery_id: str) -> Target | None:
    """The delivery's current URL and secret (a rotated secret or moved URL applies to retries)."""
    row = session.execute(select(WebhookDelivery, WebhookSubscription).join(
        WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id).where(
        WebhookDelivery.id == delivery_id)).first()
    if row is None:
        return None
    delivery, subscription = row
    return Target(delivery.id, subscription.url, subscription.secret, delivery.event_type, delivery.body,
                  subscription.active)


def record_attempt(session: Session, payload: dict, attempt: dict, outcome: str) -> None:
    """Add one try to the delivery's log; ``outcome`` is ``delivered``, ``retrying`` or ``failed``."""
    delivery = session.get(WebhookDelivery, payload.get("delivery_id"))
    if delivery is None:
        return
    delivery.attempts = [*(delivery.attempts or []), {**attempt, "outcome": outcome}]
    delivery.status = outcome
    if outcome == "delivered":
        delivery.delivered_at = utcnow()
