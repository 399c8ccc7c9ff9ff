"""Residents' data: the audit log of reads, phone masking, and retention (the purge command)."""
from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from server.extensions import db
from server.services import audit
from sync.models import AuditEvent, ChangeLog, Household, OpLog, QuarantinedOp, RateLimitHit, SyncBatch, utcnow
from tests.api.roles import assert_error, assert_page
from tests.conftest import op

PHONE = "13812345678"


def _events(**where):
    stmt = select(AuditEvent).where(*[getattr(AuditEvent, k) == v for k, v in where.items()])
    return list(db.session.scalars(stmt.order_by(AuditEvent.at)))


def test_reading_a_household_is_audited_with_who_what_and_which_request(world):
    household = world.household(phone=PHONE)
    response = world.coordinator.get(f"/api/v1/households/{household['id']}", headers={"X-Request-Id": "req-42"})
    assert response.status_code == 200
    [event] = _events(household_id=household["id"], action="read")
    assert event.user_id == world.users["coord"]["id"] and event.role == "coordinator"
    assert event.entity == "household" and event.endpoint == "households.HouseholdById"
    assert event.request_id == "req-42" and event.device_id is None
    assert event.community_id == world.community["id"]


def test_a_list_audits_each_household_it_answered(world):
    ids = {world.household(f"幸福路{i}号")["id"] for i in range(3)}
    world.household("和平路1号", area=world.other_building, by=world.other_coordinator)
    assert world.coordinator.get("/api/v1/households?per_page=2").status_code == 200
    listed = _events(action="list")
    assert len(listed) == 2 and {e.household_id for e in listed} < ids


def test_a_refused_read_is_not_audited_and_reveals_nothing(world):
    other = world.household("和平路1号", area=world.other_building, by=world.other_coordinator)
    assert_error(world.coordinator.get(f"/api/v1/households/{other['id']}"), 404, "not_found")
    assert _events(household_id=other["id"]) == []


def test_admins_read_the_audit_log_newest_first_and_filtered(world):
    first, second = world.household("幸福路1号"), world.household("幸福路2号")
    world.coordinator.get(f"/api/v1/households/{first['id']}")
    world.coordinator.get(f"/api/v1/households/{second['id']}")
    body = world.admin.get(f"/api/v1/audit?household_id={second['id']}").get_json()
    [item] = assert_page(body)
    assert item["household_id"] == second["id"] and item["user_id"] == world.users["coord"]["id"]
    assert item["action"] == "read" and item["at"].endswith("Z")
    everything = assert_page(world.admin.get("/api/v1/audit").get_json())
    assert [i["household_id"] for i in everything][:2] == [second["id"], first["id"]]
    assert_error(world.coordinator.get("/api/v1/audit"), 403, "forbidden")
    assert_error(world.admin.get("/api/v1/audit?action=peek"), 422, "validation_failed")


def test_no_trace_no_data_when_the_audit_cannot_be_written(world, monkeypatch):
    household = world.household(phone=PHONE)

    def broken(session):
        raise OperationalError("INSERT", {}, Exception("database went away"))

    monkeypatch.setattr(audit, "flush", broken)
    response = world.coordinator.get(f"/api/v1/households/{household['id']}")
    assert_error(response, 503, "unavailable")
    assert response.headers["Retry-After"]
    assert PHONE not in response.get_data(as_text=True)


# --- phones -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("phone, shown", [
    ("13812345678", "138****5678"),
    ("+86 138 1234 5678", "+86 1** **** 5678"),
    ("010-8888-6666", "010-****-6666"),
    ("12345", "***45"),
    ("", ""),
    (None, None),
])
def test_mask_phone_hides_the_middle_digits(phone, shown):
    assert audit.mask_phone(phone) == shown


def test_lists_mask_phones_detail_and_the_paired_tablet_see_them_whole(world):
    household = world.household(phone=PHONE, member="m1")
    [listed] = world.coordinator.get("/api/v1/households").get_json()["items"]
    assert listed["phone"] == "138****5678"
    assert world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()["phone"] == PHONE
    tablet = world.tablet("m1")
    tablet.pull_all()
    assert tablet.replica[("household", household["id"])]["phone"] == PHONE
    # masking is a view: the stored number is untouched after a list was answered
    db.session.expire_all()
    assert db.session.get(Household, household["id"]).phone == PHONE


def test_a_masked_record_cannot_be_written_back():
    class Record:
        phone = PHONE
        id = "x"

    view = audit.Masked(Record())
    assert view.phone == "138****5678" and view.id == "x"
    with pytest.raises(AttributeError):
        view.phone = "1"


# --- retention --------------------------------------------------------------------------------------


def _age(model, column, days, *where):
    db.session.execute(db.update(model).where(*where).values({column: utcnow() - dt.timedelta(days=days)}))
    db.session.commit()


def test_purge_removes_only_what_retention_no_longer_keeps(world, runner, app):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    old_batch, new_batch = str(uuid.uuid4()), str(uuid.uuid4())
    visit = op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                 "visited_at": "2026-12-01T09:00:00+08:00"})
    tablet.push([visit, op("visit", str(uuid.uuid4()), data={"household_id": household["id"]})], batch_id=old_batch)
    recent = op("visit", str(uuid.uuid4()), data={"household_id": household["id"], "kind": "routine",
                                                  "visited_at": "2026-12-01T09:00:00+08:00"})
    new_ops = [recent, op("visit", str(uuid.uuid4()), data={"household_id": household["id"]})]
    tablet.push(new_ops, batch_id=new_batch)
    world.coordinator.get(f"/api/v1/households/{household['id']}")

    op_days, q_days, h_days, a_days = (app.config[k] for k in ("OP_LOG_DAYS", "QUARANTINE_DAYS", "HISTORY_DAYS",
                                                                 "AUDIT_DAYS"))
    _age(OpLog, "created_at", op_days + 1, OpLog.batch_id == old_batch)
    _age(SyncBatch, "created_at", op_days + 1, SyncBatch.batch_id == old_batch)
    quarantined = list(db.session.scalars(select(QuarantinedOp).order_by(QuarantinedOp.created_at)))
    assert len(quarantined) == 2
    db.session.execute(db.update(QuarantinedOp).where(QuarantinedOp.id == quarantined[0].id).values(
        status="discarded", handled_at=utcnow() - dt.timedelta(days=q_days + 1)))
    db.session.execute(db.update(QuarantinedOp).where(QuarantinedOp.id == quarantined[1].id).values(
        created_at=utcnow() - dt.timedelta(days=q_days * 3)))  # open: kept however old
    _age(ChangeLog, "created_at", h_days + 2, ChangeLog.record_id == visit["id"])
    _age(AuditEvent, "at", a_days + 1, AuditEvent.household_id == household["id"])
    db.session.add(RateLimitHit(key="login:user:x", window_start=int(utcnow().timestamp()) - 3 * 86400, count=3))
    db.session.commit()

    dry = runner.invoke(args=["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would remove 2 from op_log" in dry.output
    assert db.session.scalar(select(func.count()).select_from(OpLog)) == 4

    result = runner.invoke(args=["purge"])
    assert result.exit_code == 0, result.output
    assert "removed 2 from op_log, removed 1 from sync_batches, removed 1 from quarantine, removed 1 from " \
           "change_log, removed 1 from audit_log, removed 1 from rate_limits, removed 0 from device_logs" \
           == result.output.strip()
    db.session.expire_all()
    assert {r.batch_id for r in db.session.scalars(select(OpLog))} == {new_batch}
    assert [q.id for q in db.session.scalars(select(QuarantinedOp))] == [quarantined[1].id]
    assert db.session.scalar(select(func.count()).select_from(ChangeLog).where(
        ChangeLog.record_id == recent["id"])) == 1
    # a recent replay still answers its original results; the record whose history went is still pulled
    again = tablet.push(new_ops, batch_id=new_batch)
    assert [r["status"] for r in again["results"]] == ["applied", "rejected"]  # the original answers
    fresh = world.tablet("m1")
    fresh.pull_all()
    assert ("visit", visit["id"]) in fresh.replica and ("visit", recent["id"]) in fresh.replica


def test_an_export_audits_every_household_it_covers_before_the_first_row(world, app):
    from tests.api.test_console import Console

    covered = world.household("幸福路1号", member="m1")
    world.household("幸福路2号", member="m1")  # no visit: not in a visits export
    tablet = world.tablet("m1")
    tablet.push([op("visit", str(uuid.uuid4()), data={"household_id": covered["id"], "kind": "routine",
                                                     "visited_at": "2026-12-01T09:00:00+08:00"})])
    console = Console(app.test_client())
    console.login()
    response = console.get("/console/exports/download?kind=visits&format=csv")
    assert response.status_code == 200 and response.is_streamed
    [event] = _events(action="export")
    assert event.household_id == covered["id"] and event.entity == "visits"
    assert event.user_id == world.users["coord"]["id"]
    assert "幸福路1号" in response.get_data().decode("utf-8-sig")
