"""Who may see what: the one place that knows. Every query of scoped rows goes through a ``Scope``.

- ``admin``: everything.
- ``coordinator``: everything inside the area subtree it belongs to.
- ``member``: the households paired with it and what belongs to them, plus the tasks and reviews
  addressed to it.
- ``integration`` (another platform raising requests, by an integration token): the households of its
  area's subtree, like a coordinator's; its token is accepted only by the calls that say so
  (``server.auth.accepts_integrations``), and it passes no coordinator's check.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, exists, false, or_, select, true
from sqlalchemy.orm import Session

from .errors import ForbiddenError, NotFoundError
from .models import Area, AttachmentRef, Household, Pairing, QuarantinedOp, Review, Task, User

ROLES = ("admin", "coordinator", "member")
INTEGRATION = "integration"
AREA_SCOPED_ROLES = ("coordinator", INTEGRATION)


@dataclass(frozen=True)
class Actor:
    """The person behind a request or job; ``device_id`` is set when a tablet acts for them."""

    user_id: str
    role: str
    area_id: str | None = None
    area_path: str | None = None
    device_id: str | None = None

    @property
    def is_device(self) -> bool:
        return self.device_id is not None

    @property
    def is_integration(self) -> bool:
        return self.role == INTEGRATION


def actor_for(session: Session, user: User, device_id: str | None = None) -> Actor:
    path = session.get(Area, user.area_id).path if user.area_id else None
    return Actor(user.id, user.role, user.area_id, path, device_id)


@dataclass(frozen=True)
class Scope:
    actor: Actor

    # --- areas ---------------------------------------------------------------------------------
    def areas(self) -> ColumnElement[bool]:
        """Areas the actor may see: a coordinator's subtree; nothing for members."""
        a = self.actor
        if a.role == "admin":
            return true()
        if a.role in AREA_SCOPED_ROLES and a.area_path:
            return Area.path.startswith(a.area_path)
        return false()

    def area_ids(self):
        return select(Area.id).where(self.areas())

    def require_area(self, session: Session, area_id: str | None) -> Area:
        """The area, if in scope; otherwise not_found (never reveal that it exists)."""
        area = session.get(Area, area_id) if area_id else None
        if area is None or not session.scalar(select(exists().where(Area.id == area.id, self.areas()))):
            raise NotFoundError("No such area.", {"area_id": area_id})
        return area

    # --- households and what belongs to them ----------------------------------------------------
    def households(self) -> ColumnElement[bool]:
        """A where-clause on ``Household`` for the households in scope."""
        return self.household_ids_clause(Household.id)

    def household_ids_clause(self, column) -> ColumnElement[bool]:
        """A where-clause restricting a ``household_id`` column to households in scope."""
        a = self.actor
        if a.role == "admin":
            return true()
        if a.role in AREA_SCOPED_ROLES:
            if not a.area_path:
                return false()
            return column.in_(select(Household.id).where(Household.area_id.in_(self.area_ids())))
        return column.in_(self.member_household_ids())

    def member_household_ids(self):
        return select(Pairing.household_id).where(Pairing.member_id == self.actor.user_id)

    def records(self, model) -> ColumnElement[bool]:
        """A where-clause for any household-scoped model, tasks and reviews included."""
        if model is Household:
            return self.households()
        clause = self.household_ids_clause(model.household_id)
        if self.actor.role == "member":
            if model is Task:
                return Task.member_id == self.actor.user_id
            if model is Review:
                return Review.recipient_id == self.actor.user_id
        return clause

    def records_listed(self, session: Session, model) -> ColumnElement[bool]:
        """``records(model)``, with a member's households read first and named one by one.

        For a page of a member's whole scope. Given the subquery, PostgreSQL guesses its rows from the
        table-wide average, so when the member's households hold most of the visits (a ledger imported
        with no visits yet, the member's households visited first) it expects a handful and reads the
        whole table; given the ids, it estimates from each household's own statistics.
        """
        if self.actor.role != "member" or model in (Task, Review):
            return self.records(model)
        ids = list(session.scalars(self.member_household_ids()))
        return (model.id if model is Household else model.household_id).in_(ids)

    def can_see_household(self, session: Session, household_id: str) -> bool:
        return bool(session.scalar(select(exists().where(Household.id == household_id, self.households()))))

    def require(self, session: Session, model, record_id: str):
        """The record, if in scope and not deleted; otherwise not_found."""
        record = session.scalar(select(model).where(model.id == record_id, self.records(model)))
        if record is None or getattr(record, "deleted_at", None) is not None:
            raise NotFoundError()
        return record

    def attachment_refs(self, session: Session, sha256: str) -> list[AttachmentRef]:
        """The references to a file from live records in scope; none means the caller may not fetch it.
        Deleted records keep no references, and re-pairing moves a household's with it."""
        return list(session.scalars(select(AttachmentRef).where(
            AttachmentRef.sha256 == sha256, self.household_ids_clause(AttachmentRef.household_id))
            .order_by(AttachmentRef.entity, AttachmentRef.record_id)))

    # --- people ---------------------------------------------------------------------------------
    def users(self) -> ColumnElement[bool]:
        a = self.actor
        if a.role == "admin":
            return true()
        if a.role == "coordinator":
            return or_(User.area_id.in_(self.area_ids()), User.id == a.user_id)
        return User.id == a.user_id

    def require_user(self, session: Session, user_id: str) -> User:
        user = session.scalar(select(User).where(User.id == user_id, self.users()))
        if user is None:
            raise NotFoundError("No such user.")
        return user

    def quarantine(self) -> ColumnElement[bool]:
        """Rejected ops of the devices of the users in scope."""
        if self.actor.role == "admin":
            return true()
        return QuarantinedOp.user_id.in_(select(User.id).where(self.users()))

    # --- roles ----------------------------------------------------------------------------------
    def require_coordinator(self) -> None:
        """Coordinators' and admins' calls: never reachable with a device token or as a member."""
        if self.actor.is_device or self.actor.role not in ("admin", "coordinator"):
            raise ForbiddenError("This call is for coordinators.")

    def require_admin(self) -> None:
        """Admins' calls (the audit log): a user token of an admin, never a device."""
        if self.actor.is_device or self.actor.role != "admin":
            raise ForbiddenError("This call is for admins.")

    def require_device(self) -> None:
        if not self.actor.is_device:
            raise ForbiddenError("This call needs a device token.")

    def may_grant_role(self, role: str) -> bool:
        return self.actor.role == "admin" or role == "member"
