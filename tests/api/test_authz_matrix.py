"""The authorization matrix: every /api/v1 route × every role × a target in scope, out of scope, or missing.

The routes come from ``app.url_map``, and each must have a rule in ``ACCESS``: a route added without one
fails ``test_every_route_has_a_rule``. For each cell the answer must be the rule's: denied roles get
exactly 401/403 with the right code (before their body is read); allowed roles never get 401/403; a target
outside the caller's scope answers exactly what a target that does not exist answers (404 ``not_found``);
and no answer to a caller holds the id of any record outside that caller's scope.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import uuid

import pytest

from server.extensions import db
from sync.models import Conflict, QuarantinedOp, WebhookDelivery
from tests.conftest import Api, op

# Who may call each route. public: anyone; coordinator: admins and coordinators (within their area);
# device: a tablet's device token; admin: admins only; scoped: anyone signed in, within their own scope.
ACCESS = {
    "POST auth.Token": "public",
    "GET areas.Areas": "coordinator",
    "POST areas.Areas": "coordinator",
    "GET users.Users": "coordinator",
    "POST users.Users": "coordinator",
    "POST users.EnrollmentCodes": "coordinator",
    "GET devices.Devices": "coordinator",
    "POST devices.Enroll": "public",
    "POST devices.Revoke": "coordinator",
    "POST devices.Resync": "coordinator",
    "GET households.Households": "coordinator",
    "POST households.Households": "coordinator",
    "GET households.HouseholdById": "coordinator",
    "PATCH households.HouseholdById": "coordinator",
    "PUT households.HouseholdPairing": "coordinator",
    "POST sync.Push": "device",
    "GET sync.Pull": "device",
    "GET requests.Requests": "coordinator",
    "POST requests.Requests": "coordinator",
    "GET requests.RequestById": "coordinator",
    "POST requests.AssignRequest": "coordinator",
    "POST requests.ResolveRequest": "coordinator",
    "POST requests.ReopenRequest": "coordinator",
    "GET visits.Visits": "coordinator",
    "POST visits.VisitReview": "coordinator",
    "GET due-visits.DueVisits": "coordinator",
    "GET members.Leaderboard": "coordinator",
    "GET members.MemberPoints": "coordinator",
    "GET stats.Coverage": "coordinator",
    "GET stats.RequestStats": "coordinator",
    "GET conflicts.Conflicts": "coordinator",
    "POST conflicts.ResolveConflict": "coordinator",
    "GET quarantine.Quarantine": "coordinator",
    "POST quarantine.RetryQuarantined": "coordinator",
    "POST quarantine.DiscardQuarantined": "coordinator",
    "GET audit.AuditLog": "admin",
    "POST device_log_uploads.DeviceLogUploads": "device",
    "GET device_logs.DeviceLogs": "coordinator",
    "GET device_logs.DeviceLogById": "coordinator",
    "PUT attachments.AttachmentBySha": "device",
    "GET attachments.AttachmentBySha": "scoped",
    "GET attachments.AttachmentThumbnail": "scoped",
    "GET watermelondb.Sync": "device",
    "POST watermelondb.Sync": "device",
    "GET registrations.Registrations": "coordinator",
    "POST registrations.Registrations": "coordinator",
    "POST registrations.EndRegistration": "coordinator",
    "GET registrations.ServiceReport": "coordinator",
    "GET webhooks.Subscriptions": "coordinator",
    "POST webhooks.Subscriptions": "coordinator",
    "DELETE webhooks.SubscriptionById": "coordinator",
    "GET webhooks.Deliveries": "coordinator",
    "POST webhooks.ReplayDelivery": "coordinator",
    "GET integrations.Integrations": "admin",
    "POST integrations.Integrations": "admin",
    "POST integrations.RevokeIntegration": "admin",
}
# Routes that also take an integration token (another platform's); everywhere else it is unknown (401).
INTEGRATION_ROUTES = {"POST requests.Requests"}

ROLES = ("admin", "coordinator", "other_coordinator", "member", "paired_device", "unpaired_device",
         "revoked_device", "anonymous", "integration")
ALLOWED = {
    "public": set(ROLES),
    "coordinator": {"admin", "coordinator", "other_coordinator"},
    "device": {"paired_device", "unpaired_device"},
    "admin": {"admin"},
    "scoped": set(ROLES) - {"revoked_device", "anonymous", "integration"},
}
# Which community each role's scope covers, for the in/out-of-scope targets ("c1" is the first community).
SCOPE_OF = {"admin": {"c1", "c2"}, "coordinator": {"c1"}, "other_coordinator": {"c2"}, "integration": {"c1"}}
# On routes open to everyone signed in, members and tablets have a scope too: m1's paired households.
MEMBER_SCOPE_OF = {"member": {"c1"}, "paired_device": {"c1"}, "unpaired_device": set()}


def scope_of(access: str, role: str) -> set[str]:
    if access == "scoped" and role in MEMBER_SCOPE_OF:
        return MEMBER_SCOPE_OF[role]
    return SCOPE_OF.get(role, {"c1", "c2"})


def allowed(key: str) -> set[str]:
    return ALLOWED[ACCESS[key]] | ({"integration"} if key in INTEGRATION_ROUTES else set())


def denial(role: str) -> tuple[int, str]:
    if role in ("anonymous", "integration"):
        return 401, "unauthenticated"
    if role == "revoked_device":
        return 401, "device_revoked"
    return 403, "forbidden"


# The valid body of each write, so that an allowed call reaches its scope check (a bad body would stop
# it earlier). ``ids`` holds the world's records; ``c`` is "c1" or "c2", the community of the target.
def bodies(ids: dict, c: str) -> dict:
    unique = uuid.uuid4().hex[:10]
    return {
        "POST auth.Token": {"username": "nobody", "password": "wrong-password"},
        "POST areas.Areas": {"name": "新网格", "kind": "grid", "parent_id": ids[f"community_{c}"]},
        "POST users.Users": {"username": f"u-{unique}", "display_name": "新成员", "role": "member",
                             "area_id": ids[f"grid_{c}"], "password": "password-123"},
        "POST devices.Enroll": {"code": "AAAAA-BBBBB", "name": "猜测"},
        "POST households.Households": {"area_id": ids[f"building_{c}"], "address": f"新路{unique}号"},
        "PATCH households.HouseholdById": {"base_version": 1, "notes": "矩阵测试"},
        "PUT households.HouseholdPairing": {"member_id": None},
        "POST sync.Push": {"batch_id": str(uuid.uuid4()), "client_time": "2026-12-01T10:00:00+08:00", "ops": []},
        "POST requests.Requests": {"household_id": ids[f"household_{c}"], "category": "照明",
                                   "description": "楼道灯坏了", "urgency": "normal"},
        "POST requests.AssignRequest": {"handler": "物业"},
        "POST requests.ResolveRequest": {"resolution": "已修好"},
        "POST requests.ReopenRequest": {"note": "又坏了"},
        "POST visits.VisitReview": {"decision": "approved", "comment": "好"},
        "POST conflicts.ResolveConflict": {"value": "定值"},
        "POST quarantine.RetryQuarantined": {"data": None},
        "POST quarantine.DiscardQuarantined": {"reason": "测试"},
        "POST device_log_uploads.DeviceLogUploads": {"text": "sync ok", "app_version": "1.4.2"},
        "POST registrations.Registrations": {"user_id": ids[f"member_{c}"], "area_id": ids[f"community_{c}"],
                                             "home_organisation": "区教育局", "started_on": "2026-11-01"},
        "POST registrations.EndRegistration": {"reason": "矩阵测试"},
        "POST webhooks.Subscriptions": {"area_id": ids[f"community_{c}"], "name": f"平台{unique}",
                                        "url": "http://127.0.0.1:9/hook", "event_types": ["request.raised"]},
        "POST integrations.Integrations": {"name": f"热线{unique}", "area_id": ids[f"community_{c}"]},
    }


# Path parameters → the kind of record they name.
PARAM_KIND = {"household_id": "target_household", "user_id": "member", "device_id": "target_device",
              "request_id": "request", "visit_id": "visit", "member_id": "member", "conflict_id": "conflict",
              "entry_id": "quarantine", "log_id": "device_log", "sha256": "attachment",
              "registration_id": "registration", "subscription_id": "subscription", "delivery_id": "delivery",
              "integration_id": "integration"}


def api_routes(app) -> list[tuple[str, str, str]]:
    """(method, endpoint, rule) for every route under /api/v1."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                found.append((method, rule.endpoint, rule.rule))
    return found


def test_every_route_has_a_rule(app):
    routes = {f"{method} {endpoint}" for method, endpoint, _ in api_routes(app)}
    assert routes - set(ACCESS) == set(), "routes without an authorization rule: add them to ACCESS"
    assert set(ACCESS) - routes == set(), "rules for routes that no longer exist"
    for _method, endpoint, rule in api_routes(app):
        for name in re.findall(r"<(?:\w+:)?(\w+)>", rule):
            assert name in PARAM_KIND, f"{endpoint}: no target records for path parameter {name}"


@pytest.fixture
def matrix_world(world, app):
    """Records of every kind in each community, the callers of every role, and which ids each may see."""
    w = world
    ids = {"community_c1": w.community["id"], "grid_c1": w.grid["id"], "building_c1": w.building["id"],
           "community_c2": w.other_community["id"], "building_c2": w.other_building["id"]}
    ids["grid_c2"] = w.other_coordinator.get("/api/v1/areas").get_json()["items"][1]["id"]
    w.add_member("m9", area={"id": ids["grid_c2"]}, by=w.other_coordinator)
    ids["member_c1"], ids["member_c2"] = w.users["m1"]["id"], w.users["m9"]["id"]

    h1 = w.household("幸福路1号", member="m1", phone="13812345678")
    h2 = w.household("和平路9号", area=w.other_building, member="m9", by=w.other_coordinator, phone="13987654321")
    ids["household_c1"], ids["household_c2"] = h1["id"], h2["id"]
    ids["target_household_c1"] = w.household("幸福路2号")["id"]
    ids["target_household_c2"] = w.household("和平路8号", area=w.other_building, by=w.other_coordinator)["id"]

    paired, unpaired = w.tablet("m1"), w.tablet("m2")
    revoked = w.tablet("m2")
    assert w.coordinator.post(f"/api/v1/devices/{revoked.device_id}/revoke").status_code == 200
    target1 = w.tablet("m1")
    tablet9 = w.tablet("m9", by=w.other_coordinator)
    for target, c in ((target1, "c1"), (tablet9, "c2")):
        ids[f"target_device_{c}"] = target.device_id
        response = target.post("/api/v1/devices/logs", {"text": f"{c} sync log", "app_version": "1.4.2"})
        assert response.status_code == 201, response.get_json()
        ids[f"device_log_{c}"] = response.get_json()["id"]

    for tablet, household, c in ((paired, h1, "c1"), (tablet9, h2, "c2")):
        visit_id = str(uuid.uuid4())
        image = _png(c)
        ids[f"attachment_{c}"] = hashlib.sha256(image).hexdigest()
        response = tablet.put(f"/api/v1/attachments/{ids[f'attachment_{c}']}", data=image,
                              headers={"Content-Type": "image/png"})
        assert response.status_code == 200, response.get_json()
        results = tablet.push([
            op("visit", visit_id, data={"household_id": household["id"], "visited_at": "2026-12-01T09:00:00+08:00",
                                        "kind": "routine", "summary": "身体不错", "attachments": [
                                            {"sha256": ids[f"attachment_{c}"], "mime": "image/png", "name": "门牌.png"}]}),
            op("visit", str(uuid.uuid4()), data={"household_id": household["id"]}),  # no kind: quarantined
        ])["results"]
        assert [r["status"] for r in results] == ["applied", "rejected"]
        ids[f"visit_{c}"] = visit_id
        ids[f"quarantine_{c}"] = db.session.scalar(
            db.select(QuarantinedOp.id).where(QuarantinedOp.device_id == tablet.device_id))
    for caller, c in ((w.coordinator, "c1"), (w.other_coordinator, "c2")):
        # a registered member with no households (ending it unpairs nobody the other cells rely on)
        w.add_member(f"r{c}", area={"id": ids[f"grid_{c}"]}, by=caller)
        response = caller.post("/api/v1/registrations", {
            "user_id": w.users[f"r{c}"]["id"], "area_id": ids[f"community_{c}"], "home_organisation": "区教育局",
            "started_on": "2026-11-01"})
        assert response.status_code == 201, response.get_json()
        ids[f"registration_{c}"] = response.get_json()["id"]
        response = caller.post("/api/v1/webhooks/subscriptions", {
            "area_id": ids[f"community_{c}"], "name": "一网统管", "url": "http://127.0.0.1:9/hook",
            "event_types": ["request.raised"]})
        assert response.status_code == 201, response.get_json()
        ids[f"subscription_{c}"] = response.get_json()["id"]
        response = w.admin.post("/api/v1/integrations", {"name": f"热线{c}", "area_id": ids[f"community_{c}"]})
        assert response.status_code == 201, response.get_json()
        ids[f"integration_{c}"] = response.get_json()["id"]
        if c == "c1":
            integration = Api(w.client, response.get_json()["token"])
    for caller, household, c in ((w.coordinator, h1, "c1"), (w.other_coordinator, h2, "c2")):
        response = caller.post("/api/v1/requests", {"household_id": household["id"], "category": "照明",
                                                    "description": "楼道灯坏了", "urgency": "normal"})
        assert response.status_code == 201, response.get_json()
        ids[f"request_{c}"] = response.get_json()["id"]
        conflict = Conflict(entity="household", record_id=household["id"], field="notes", kept="甲", discarded="乙",
                            community_id=ids[f"community_{c}"], household_id=household["id"])
        db.session.add(conflict)
        db.session.commit()
        ids[f"conflict_{c}"] = conflict.id
        ids[f"delivery_{c}"] = db.session.scalar(db.select(WebhookDelivery.id).where(
            WebhookDelivery.subscription_id == ids[f"subscription_{c}"]))
        db.session.commit()

    callers = {"admin": w.admin, "coordinator": w.coordinator, "other_coordinator": w.other_coordinator,
               "member": w.login("m1"), "paired_device": paired, "unpaired_device": unpaired,
               "revoked_device": revoked, "anonymous": Api(w.client, None), "integration": integration}
    # Ids that must never appear in an answer to each caller (except echoed from its own request).
    c1 = {v for k, v in ids.items() if k.endswith("_c1") and not k.startswith(("community", "grid", "building"))}
    c2 = {v for k, v in ids.items() if k.endswith("_c2") and not k.startswith(("community", "grid", "building"))}
    hidden = {"admin": set(), "coordinator": c2, "other_coordinator": c1,
              "member": c2 | {ids["target_household_c1"]},
              "paired_device": c2 | {ids["target_household_c1"]},
              "unpaired_device": c2 | {ids["household_c1"], ids["visit_c1"], ids["request_c1"],
                                       ids["target_household_c1"], ids["attachment_c1"]},
              "revoked_device": c1 | c2, "anonymous": c1 | c2, "integration": c2}
    return ids, callers, hidden


def _png(seed: str) -> bytes:
    """A small image of its own for each community (content-addressed files must differ)."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (4, 4), (len(seed) * 40, 120, 200 if seed == "c1" else 10)).save(out, format="PNG")
    return out.getvalue()


def _call(caller: Api, method: str, path: str, body):
    if method == "GET":
        return caller.get(path)
    return getattr(caller, method.lower())(path, json=body)


def _assert_error_shape(response):
    body = response.get_json()
    assert isinstance(body, dict) and set(body) == {"error"}, response.get_data(as_text=True)[:300]
    assert {"code", "message", "details"} <= set(body["error"])


def test_the_matrix(app, matrix_world, figures):
    ids, callers, hidden = matrix_world
    cells = 0
    for method, endpoint, rule in api_routes(app):
        key = f"{method} {endpoint}"
        access, allowed_roles = ACCESS[key], allowed(key)
        params = re.findall(r"<(?:\w+:)?(\w+)>", rule)
        targets = ("c1", "c2", "missing") if params else ("c1", "c2")
        for role in ROLES:
            caller = callers[role]
            answers = {}
            for target in targets:
                path = rule
                for name in params:
                    value = str(uuid.uuid4()) if target == "missing" else ids[f"{PARAM_KIND[name]}_{target}"]
                    path = re.sub(rf"<(?:\w+:)?{name}>", value, path)
                body = bodies(ids, "c1" if target == "missing" else target).get(key)
                response = _call(caller, method, path, body)
                cells += 1
                where = f"{key} as {role}, target {target}: {response.status_code} " \
                        f"{response.get_data()[:300]!r}"
                assert response.status_code < 500, where
                if response.status_code >= 400:
                    _assert_error_shape(response)
                code = (response.get_json() or {}).get("error", {}).get("code") if response.is_json else None
                answers[target] = (response.status_code, code)
                if role not in allowed_roles:
                    assert (response.status_code, code) == denial(role), where
                    continue
                assert code not in ("unauthenticated", "forbidden", "device_revoked"), where
                if params and target != "missing":
                    in_scope = target in scope_of(access, role)
                    if in_scope:
                        assert response.status_code != 404, where
                if not (params and target in ("c2", "c1") and target not in scope_of(access, role)):
                    answer = response.get_data()
                    sent = path + json.dumps(body or {})
                    leaked = {i for i in hidden[role] if i.encode() in answer and i not in sent}
                    assert not leaked, f"{where}: out-of-scope ids in the answer: {leaked}"
            if params and role in allowed_roles and access != "public":
                for target in ("c1", "c2"):
                    if target not in scope_of(access, role):
                        assert answers[target] == answers["missing"] == (404, "not_found"), \
                            f"{key} as {role}: out of scope {answers[target]} vs missing {answers['missing']}"
    figures(f"authorization matrix: {len(api_routes(app))} routes x {len(ROLES)} roles, {cells} cells checked")
    assert cells > 0


def test_denied_callers_are_turned_away_before_their_body_is_read(app, matrix_world, figures):
    """A caller without the right token gets 401/403, never validation details about a body it may not send."""
    ids, callers, _ = matrix_world
    cells, wrong = 0, []
    for method, endpoint, rule in api_routes(app):
        key = f"{method} {endpoint}"
        if method == "GET" or ACCESS[key] == "public":
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: ids[f"{PARAM_KIND[m.group(1)]}_c1"], rule)
        for role in ROLES:
            if role in allowed(key):
                continue
            response = _call(callers[role], method, path, {"unknown": "\x00" * 3, "base_version": "x"})
            cells += 1
            code = response.get_json()["error"]["code"]
            if (response.status_code, code) != denial(role):
                wrong.append(f"{method} {endpoint} as {role}: {response.status_code} {code}")
    figures(f"authorization matrix, denied before the body: {cells} cells checked")
    assert not wrong, "\n".join(wrong)


def test_a_tablet_pushing_to_a_household_outside_its_scope_learns_nothing(matrix_world):
    """Per op, an out-of-scope household answers exactly like a missing one."""
    ids, callers, _ = matrix_world
    tablet = callers["unpaired_device"]
    answers = []
    for household_id in (ids["household_c1"], ids["household_c2"], str(uuid.uuid4())):
        results = tablet.push([
            op("visit", str(uuid.uuid4()), data={"household_id": household_id, "kind": "routine",
                                                 "visited_at": "2026-12-01T09:00:00+08:00"}),
            op("household", household_id, "update", {"notes": "改"}, base_version=1),
        ])["results"]
        answers.append([(r["status"], r["error"]["code"]) for r in results])
    assert answers[0] == answers[1] == answers[2]
    assert {code for row in answers for _, code in row} == {"not_found"}
