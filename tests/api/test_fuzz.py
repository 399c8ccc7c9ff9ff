"""Fuzzing: Schemathesis over every operation of the OpenAPI document, Hypothesis on the push envelope and
the cursor parser. Whatever comes in: no 500, every answer matches its documented schema, and every error
is the one error shape."""
from __future__ import annotations

import base64
import collections
import datetime as dt
import json
import os
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import checks as st_checks

from sync import cursor as cursor_module
from sync.errors import CursorExpiredError, InvalidCursorError
from tests.api.test_authz_matrix import ACCESS
from tests.conftest import op

# Bounded for CI: about a minute per database for the whole module on these machines.
EXAMPLES_PER_OPERATION = int(os.environ.get("FUZZ_EXAMPLES", "30"))
ENVELOPE_EXAMPLES = int(os.environ.get("FUZZ_ENVELOPE_EXAMPLES", "150"))
CURSOR_EXAMPLES = int(os.environ.get("FUZZ_CURSOR_EXAMPLES", "400"))

ERROR_CODES = {"malformed_json", "invalid_cursor", "bad_request", "unauthenticated", "invalid_credentials",
               "device_revoked", "forbidden", "not_found", "method_not_allowed", "conflict", "username_taken",
               "schema_unsupported", "cursor_expired", "code_used", "batch_too_large", "body_too_large",
               "unsupported_media_type", "validation_failed", "rate_limited", "id_taken", "stale_delete",
               "invalid_transition", "op_id_reused", "hash_mismatch", "unavailable"}


def assert_error_shape(status: int, body) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, body
    assert error["code"] in ERROR_CODES, body
    assert isinstance(error["message"], str) and isinstance(error["details"], dict)


@pytest.fixture
def fuzz_callers(world):
    """A token for each kind of route: admin for coordinators' and admins' calls, a tablet for sync."""
    world.household(member="m1")
    tablet = world.tablet("m1")
    return {"coordinator": world.admin.token, "admin": world.admin.token, "device": tablet.token,
            "scoped": tablet.token, "public": None}


def _endpoint_key(app, case) -> str:
    adapter = app.url_map.bind("localhost")
    path = case.operation.path
    for name in case.path_parameters or {}:
        path = path.replace("{" + name + "}", str(uuid.uuid4()))
    endpoint, _ = adapter.match(path, method=case.method.upper())
    return f"{case.method.upper()} {endpoint}"


CHECKS = [st_checks.not_a_server_error, st_checks.status_code_conformance, st_checks.content_type_conformance,
          st_checks.response_schema_conformance]


def test_every_operation_answers_by_its_schema(app, fuzz_callers, figures):
    """Schemathesis cases (valid and invalid) for every operation, sent with a real token."""
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    tried, statuses = collections.Counter(), collections.Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= len(ACCESS)
    for operation in operations:

        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case):
            key = _endpoint_key(app, case).replace("HEAD ", "GET ", 1)  # HEAD is GET without a body
            token = fuzz_callers[ACCESS[key]] if key in ACCESS else fuzz_callers["admin"]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            response = case.call(headers=headers)
            tried[key] += 1
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)
            if response.status_code >= 400 and case.method.upper() != "HEAD":
                assert_error_shape(response.status_code, response.json())

        call()
    figures(f"schemathesis: {len(operations)} operations fuzzed, {sum(tried.values())} examples tried, "
            f"answers by status {dict(sorted(statuses.items()))}")


# --- the push envelope ------------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) |
                           st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
uuids = st.uuids().map(str)
plausible_times = st.sampled_from(["2026-12-01T09:30:00+08:00", "2026-12-01T09:30:00Z", "2026-12-01T09:30:00",
                                   "not a time", "9999-12-31T23:59:59+14:00", "", "2026-02-30T00:00:00Z"])
ENTITIES = ["household", "resident", "visit", "assistance_log", "request", "request_event", "task", "review",
            "nonsense"]


@st.composite
def ops(draw, household_id: str):
    """An op that is sometimes valid, sometimes subtly wrong, sometimes junk."""
    entity = draw(st.sampled_from(ENTITIES))
    data = draw(st.one_of(
        st.none(),
        json_values,
        st.fixed_dictionaries({}, optional={
            "household_id": st.sampled_from([household_id, str(uuid.uuid4()), "x"]) | json_scalars,
            "visited_at": plausible_times, "occurred_at": plausible_times, "kind": st.sampled_from(
                ["routine", "feedback", "bogus"]) | json_scalars,
            "summary": st.text(max_size=50), "area_id": uuids | json_scalars, "address": st.text(max_size=30),
            "tags": st.lists(st.text(max_size=5), max_size=5) | json_values, "name": st.text(max_size=20),
            "observations": json_values, "location": json_values, "attachments": json_values,
            "category": st.text(max_size=20), "description": st.text(max_size=20), "request_id": uuids,
            "action": st.sampled_from(["comment", "reopen", "feedback_delivered", "x"]),
        })))
    base = {"op_id": draw(uuids), "entity": entity, "id": draw(uuids),
            "action": draw(st.sampled_from(["create", "update", "delete", "upsert"]) | json_scalars),
            "base_version": draw(st.none() | st.integers(min_value=-3, max_value=5) | json_scalars),
            "recorded_at": draw(plausible_times), "data": data}
    drop = draw(st.sets(st.sampled_from(sorted(base)), max_size=2))
    extra = draw(st.dictionaries(st.sampled_from(["extra", "version", "op_id2"]), json_scalars, max_size=1))
    return {k: v for k, v in base.items() if k not in drop} | extra


@st.composite
def envelopes(draw, household_id: str):
    well_formed = draw(st.integers(0, 3)) > 0  # mostly, so that the ops themselves are what is fuzzed
    body = {"batch_id": draw(uuids if well_formed else uuids | json_scalars),
            "client_time": draw(st.just("2026-12-01T10:00:00+08:00") if well_formed else plausible_times | json_scalars),
            "ops": draw(st.lists(ops(household_id), max_size=6) if well_formed
                        else st.lists(ops(household_id) | json_values, max_size=6) | json_scalars)}
    if draw(st.booleans()):
        body["client"] = draw(st.fixed_dictionaries({}, optional={
            "app_version": st.text(max_size=10) | json_scalars, "schema_version": st.integers(-1, 3) | json_scalars,
            "platform": st.text(max_size=10)}) | json_values)
    if well_formed:
        return body
    drop = draw(st.sets(st.sampled_from(["batch_id", "client_time", "ops"]), max_size=1))
    return {k: v for k, v in body.items() if k not in drop}


def _check_push_answer(response, sent) -> None:
    assert response.status_code in (200, 400, 409, 413, 422), (response.status_code, response.get_data()[:300])
    body = response.get_json()
    if response.status_code != 200:
        assert_error_shape(response.status_code, body)
        return
    assert isinstance(sent, dict) and isinstance(sent.get("ops"), list)
    assert len(body["results"]) == len(sent["ops"])
    for result in body["results"]:
        assert result["status"] in ("applied", "merged", "duplicate", "rejected"), result
        if result["status"] == "rejected":
            assert result["error"]["code"] in ERROR_CODES, result


def test_junk_push_envelopes_never_break_the_server(world, figures):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    tried = collections.Counter()

    @settings(max_examples=ENVELOPE_EXAMPLES, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(body=envelopes(household["id"]))
    def push(body):
        response = tablet.post("/api/v1/sync/push", body)
        tried[response.status_code] += 1
        _check_push_answer(response, body)

    push()

    @settings(max_examples=ENVELOPE_EXAMPLES // 3, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(raw=st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
    def push_bytes(raw):
        response = tablet.client.post("/api/v1/sync/push", data=raw, content_type="application/json",
                                      headers={"Authorization": f"Bearer {tablet.token}"})
        tried[response.status_code] += 1
        assert response.status_code in (400, 422), response.get_data()[:200]
        assert_error_shape(response.status_code, response.get_json())

    push_bytes()
    # the server still works afterwards
    result = tablet.push([op("visit", str(uuid.uuid4()), data={
        "household_id": household["id"], "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine"})])
    assert result["results"][0]["status"] == "applied"
    figures(f"push envelope fuzz: {sum(tried.values())} envelopes tried, answers by status "
            f"{dict(sorted(tried.items()))}")


# --- the cursor parser ------------------------------------------------------------------------------

KEY = b"k" * 32
NOW = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)


def _decode(token: str):
    return cursor_module.decode(token, KEY, device_id="dev", epoch=0, max_age=dt.timedelta(days=365), now=NOW)


def _signed(payload: bytes) -> str:
    body = cursor_module._b64(payload)
    return f"{body}.{cursor_module._mac(KEY, body)}"


def _only_cursor_errors(token: str) -> str:
    try:
        decoded = _decode(token)
    except InvalidCursorError:
        return "invalid"
    except CursorExpiredError:
        return "expired"
    assert isinstance(decoded, cursor_module.Cursor)
    return "read"


def test_the_cursor_parser_answers_a_cursor_or_a_cursor_error_for_any_input(figures):
    outcomes = collections.Counter()
    valid = cursor_module.encode(cursor_module.Cursor("dev", 0, 41, int(NOW.timestamp()),
                                                      cursor_module.Pending("full", None, 2, "abc")), KEY)
    assert _only_cursor_errors(valid) == "read"

    @settings(max_examples=CURSOR_EXAMPLES, deadline=None, derandomize=True)
    @given(token=st.text(max_size=300) | st.text(alphabet="abcdefABCDEF0123456789-_.=", max_size=120))
    def any_text(token):
        outcomes[_only_cursor_errors(token)] += 1

    @settings(max_examples=CURSOR_EXAMPLES // 2, deadline=None, derandomize=True)
    @given(position=st.integers(min_value=0, max_value=len(valid) - 1), char=st.characters())
    def altered(position, char):
        token = valid[:position] + char + valid[position + 1:]
        result = _only_cursor_errors(token)
        outcomes[result] += 1
        if token != valid and result == "read":
            # an altered character may only be one base64 cannot tell apart (padding bits)
            assert _decode(token) == _decode(valid)

    # Signed with the right key, so the parser's structure checks are what is tested (a leaked or
    # reused key must still not crash the server).
    @settings(max_examples=CURSOR_EXAMPLES, deadline=None, derandomize=True)
    @example(payload={"v": 1, "d": "dev", "e": 0, "s": float("inf"), "t": 1})  # int(inf) overflowed
    @example(payload={"v": 1, "d": "dev", "e": 0, "s": 1, "t": 1, "p": {"mode": "full", "step": float("nan"),
                                                                         "after": ""}})
    @given(payload=json_values | st.fixed_dictionaries(
        {"v": st.just(1) | json_scalars, "d": st.just("dev") | json_scalars, "e": st.just(0) | json_scalars,
         "s": json_scalars | st.floats(), "t": json_scalars | st.floats()},
        optional={"p": json_values | st.fixed_dictionaries({"mode": json_scalars, "step": json_scalars,
                                                            "after": json_scalars})}))
    def signed(payload):
        raw = json.dumps(payload, allow_nan=True).encode()
        outcomes[_only_cursor_errors(_signed(raw))] += 1

    @settings(max_examples=CURSOR_EXAMPLES // 4, deadline=None, derandomize=True)
    @given(raw=st.binary(max_size=100))
    def signed_bytes(raw):
        outcomes[_only_cursor_errors(_signed(raw))] += 1

    any_text()
    altered()
    signed()
    signed_bytes()
    assert outcomes["invalid"] > 0
    figures(f"cursor parser fuzz: {sum(outcomes.values())} strings tried, outcomes {dict(outcomes)}")


def test_an_unreadable_cursor_over_http_is_400_invalid_cursor(world):
    tablet = world.tablet("m1")
    for token in ("", "a.b", "." * 50, "☃", base64.urlsafe_b64encode(b"{}").decode() + ".x", "x" * 3999):
        response = tablet.get("/api/v1/sync/pull", query_string={"cursor": token})
        if token == "":
            assert response.status_code in (200, 400), response.get_json()
            continue
        assert response.status_code == 400, (token, response.get_json())
        assert response.get_json()["error"]["code"] == "invalid_cursor"
