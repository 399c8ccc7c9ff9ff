"""The OpenAPI document agrees with the routes and the protocol; docs, health and readiness answer."""
from __future__ import annotations

import re

import pytest
from openapi_spec_validator import validate

IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def spec(client):
    response = client.get("/api/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


def _api_routes(app):
    """{openapi path: {methods}} for every /api/v1 rule of the app."""
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[a-z]+:)?([a-z_][a-z0-9_]*)>", r"{\1}", rule.rule)
            routes.setdefault(path, set()).update(rule.methods - IGNORED_METHODS)
    return routes


def _resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = spec["components"][kind][name]
    return node


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if isinstance(operation, dict) and "responses" in operation:
                yield path, method, operation


def test_the_document_is_valid_openapi_3(spec):
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_every_api_route_and_method_is_documented(app, spec):
    routes = _api_routes(app)
    assert routes, "no /api/v1 routes found"
    for path, methods in routes.items():
        assert path in spec["paths"], path
        documented = {m.upper() for m in spec["paths"][path] if m.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}}
        assert methods <= documented, (path, methods - documented)
    assert set(spec["paths"]) <= set(routes)  # and nothing documented that does not exist


@pytest.mark.parametrize("path, method", [
    ("/api/v1/auth/token", "post"),
    ("/api/v1/areas", "get"), ("/api/v1/areas", "post"),
    ("/api/v1/users", "post"),
    ("/api/v1/users/{user_id}/enrollment-codes", "post"),
    ("/api/v1/devices/enroll", "post"), ("/api/v1/devices", "get"),
    ("/api/v1/devices/{device_id}/revoke", "post"),
    ("/api/v1/households", "post"), ("/api/v1/households", "get"),
    ("/api/v1/households/{household_id}", "get"), ("/api/v1/households/{household_id}", "patch"),
    ("/api/v1/households/{household_id}/pairing", "put"),
])
def test_every_protocol_call_of_accounts_and_households_is_documented(spec, path, method):
    operation = spec["paths"][path][method]
    assert operation.get("summary"), "the view's docstring becomes the summary"


def test_every_error_response_has_the_error_shape(spec):
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    body = _resolve(spec, error["properties"]["error"])
    assert set(body["properties"]) == {"code", "message", "details"}
    checked = 0
    for path, method, operation in _operations(spec):
        assert "default" in operation["responses"], (path, method)
        for status, response in operation["responses"].items():
            if status == "default" or int(status) >= 400:
                schema = _resolve(spec, response)["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)
                checked += 1
    assert checked > 20


def test_lists_are_documented_as_pages(spec):
    for path in ("/api/v1/areas", "/api/v1/users", "/api/v1/devices", "/api/v1/households"):
        answer = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert set(_resolve(spec, answer)["properties"]) == {"items", "page", "per_page", "total"}, path
    parameters = {p["name"]: p for p in spec["paths"]["/api/v1/households"]["get"]["parameters"]}
    assert {"area_id", "q", "page", "per_page"} <= set(parameters)
    assert parameters["per_page"]["schema"]["maximum"] == 1000 and parameters["per_page"]["schema"]["minimum"] == 1


def test_input_limits_are_in_the_document(spec):
    household = spec["components"]["schemas"]["HouseholdCreate"]["properties"]
    assert household["address"]["maxLength"] == 200
    assert household["notes"]["maxLength"] == 20000
    assert household["tags"]["maxItems"] == 50
    assert set(spec["components"]["schemas"]["HouseholdCreate"]["required"]) == {"area_id", "address"}


def test_bearer_tokens_are_the_security_scheme(spec):
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"bearer": []}]


def test_the_docs_page_is_html_without_outside_assets(client):
    response = client.get("/api/docs")
    assert response.status_code == 200 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "/api/openapi.json" in page
    assert not re.search(r"""(src|href)=["']https?://""", page)  # the machines may have no internet


def test_healthz_and_readyz_answer_200(client):
    for path in ("/healthz", "/readyz"):
        response = client.get(path)
        assert response.status_code == 200 and response.mimetype == "application/json", path
