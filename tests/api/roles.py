"""Callers of every role, and checks of the one error shape, shared by the API tests."""
from __future__ import annotations

from tests.conftest import Api

# What a call for coordinators answers to each caller that is not an admin or a coordinator.
DENIED = {
    "member": (403, "forbidden"),
    "device": (403, "forbidden"),
    "revoked_device": (401, "device_revoked"),
    "anonymous": (401, "unauthenticated"),
}


def callers(world) -> dict[str, Api]:
    """admin, coordinator (of m1's community), other_coordinator, member (m1's user token), device (m1's
    tablet), revoked_device (m2's tablet, revoked), anonymous (no token)."""
    device = world.tablet("m1")
    revoked = world.tablet("m2")
    response = world.coordinator.post(f"/api/v1/devices/{revoked.device_id}/revoke")
    assert response.status_code == 200, response.get_json()
    return {
        "admin": world.admin,
        "coordinator": world.coordinator,
        "other_coordinator": world.other_coordinator,
        "member": world.login("m1"),
        "device": device,
        "revoked_device": revoked,
        "anonymous": Api(world.client, None),
    }


def assert_error(response, status: int, code: str) -> dict:
    """The answer is the protocol's one error shape with this status and code; returns ``details``."""
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    if code == "device_revoked":
        assert body["error"]["details"].get("wipe") is True, body
    return body["error"]["details"]


def assert_denied(response, role: str) -> None:
    status, code = DENIED[role]
    assert_error(response, status, code)


def assert_page(body: dict, page: int = 1, per_page: int = 50) -> list:
    """A list answer: exactly ``{items, page, per_page, total}``; returns the items."""
    assert set(body) == {"items", "page", "per_page", "total"}, body
    assert body["page"] == page and body["per_page"] == per_page
    assert isinstance(body["total"], int) and len(body["items"]) <= body["total"]
    return body["items"]
