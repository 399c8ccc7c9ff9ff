"""The console's errors are pages in its layout and language with the API's status, while every other path keeps
the one JSON error shape; and the session cookie is ``Secure`` exactly when ``SESSION_COOKIE_SECURE`` says so."""
from __future__ import annotations

import logging
import uuid

import pytest
from sqlalchemy.exc import OperationalError

from server import config as config_module
from tests.api.roles import assert_error
from tests.api.test_console import Console, text

DASHBOARD_LINK = 'href="/console/dashboard"'
LAYOUT = 'href="/console/static/console.css"'


@pytest.fixture
def console(app):
    return Console(app.test_client())


def assert_page(response, status: int, *words: str) -> str:
    """An HTML page of the console's layout, with the status and words asked for, and never the JSON shape."""
    body = text(response)
    assert response.status_code == status, body[:300]
    assert response.mimetype == "text/html", response.mimetype
    assert body.lstrip().startswith("<!doctype html>") and '"error":' not in body
    assert LAYOUT in body and DASHBOARD_LINK in body, body[:500]
    for word in words:
        assert word in body, (word, body[:800])
    return body


# --- pages, not JSON ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/console/nope", "/console/households/not-a-uuid", "/console/static/nope.css",
                                  f"/console/households/{uuid.uuid4()}/nope"])
def test_an_unknown_console_url_is_a_404_page_in_chinese(world, console, path):
    body = assert_page(console.get(path), 404, 'lang="zh-CN"', "<title>页面未找到 · 联户工作台</title>",
                       "未找到，或不在您的管辖范围内。", "返回概览")
    assert "not_found" in body and "请求编号" not in body  # the request id is for server failures


def test_a_logged_in_coordinator_gets_the_404_page_too(world, console):
    console.login()
    response = console.get("/console/no-such-page")
    assert_page(response, 404, "页面未找到")
    assert response.headers["Cache-Control"] == "no-store" and response.headers["X-Frame-Options"] == "DENY"


def test_a_404_raised_inside_a_console_view_is_a_page(world, console):
    console.login()
    assert_page(console.get("/console/import/reports/not-this-sessions.csv"), 404, "页面未找到")  # abort(404)
    assert_page(console.get(f"/console/households/{uuid.uuid4()}"), 404, "未找到")  # the service's NotFoundError


def test_a_wrong_method_is_a_405_page_with_an_allow_header(world, console):
    console.login()
    response = console.get("/console/logout")
    assert_page(response, 405, "不允许此操作", "此页面不能这样使用")
    assert "POST" in {m.strip() for m in response.headers["Allow"].split(",")}


def test_a_form_without_its_csrf_token_is_a_403_page(world, console):
    console.login()
    response = console.post("/console/logout", csrf=False)
    assert_page(response, 403, "不允许此操作", "您无权进行此操作。")


def test_the_page_speaks_the_chosen_language(world, console):
    body = assert_page(console.get("/console/nope?lang=en"), 404, "Page not found", 'lang="en"')
    assert "页面未找到" not in body


def test_an_unexpected_exception_is_a_500_page_with_the_request_id_and_no_internals(world, console, monkeypatch,
                                                                                    caplog):
    from server.services import households

    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    console.login()
    monkeypatch.setattr(households, "search", explode)
    with caplog.at_level(logging.ERROR, logger="lianhu.errors"):
        response = console.get("/console/households", headers={"X-Request-Id": "req-console-500"})
    body = assert_page(response, 500, "服务器错误", "请把下面的请求编号告诉管理员", "req-console-500")
    assert "secret internals" not in body and "Traceback" not in body
    assert response.headers["X-Request-Id"] == "req-console-500"
    assert 'action="/console/logout"' not in body  # a failed server draws no menu (it would ask the database)
    assert any("req-console-500" in record.getMessage() and record.exc_info for record in caplog.records)


def test_a_database_that_is_away_is_a_503_page_with_retry_after(world, console, monkeypatch):
    from server.services import households

    def away(*args, **kwargs):
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))

    console.login()
    monkeypatch.setattr(households, "search", away)
    response = console.get("/console/households")
    assert_page(response, 503, "暂时无法使用", "无法连接数据库", "请求编号")
    assert int(response.headers["Retry-After"]) > 0


def test_a_fixable_form_error_still_goes_back_to_the_form(world, console):
    console.login()
    response = console.post("/console/members", {"username": "has space", "display_name": "x",
                                                 "area_id": world.grid["id"], "back": "/console/members"})
    assert response.status_code == 303 and response.headers["Location"] == "/console/members"
    assert "部分输入无效" in text(console.get("/console/members"))


def test_a_page_that_cannot_be_drawn_falls_back_to_the_json_shape(world, console, monkeypatch, caplog):
    from server.console import error_pages

    def broken(*args, **kwargs):
        raise RuntimeError("template is broken")

    monkeypatch.setattr(error_pages, "render_template", broken)
    with caplog.at_level(logging.ERROR, logger="lianhu.errors"):
        assert_error(console.get("/console/nope"), 404, "not_found")
    assert any("error page" in record.getMessage() for record in caplog.records)


# --- the API keeps the one JSON shape ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nope", "/consoles", "/console-nope", "/nope/console/x",
                                  "/api/v1/console/nope"])
def test_paths_outside_the_console_keep_the_json_shape(world, console, path):
    console.login()  # a console session does not change what the API answers
    response = console.get(path)
    assert_error(response, 404, "not_found")
    assert "<html" not in text(response).lower()


def test_the_api_shape_is_unchanged_for_405_and_500(world, monkeypatch):
    from server.services import households

    assert_error(world.client.get("/api/v1/devices/enroll"), 405, "method_not_allowed")
    monkeypatch.setattr(households, "search", lambda *a, **k: 1 / 0)
    details = assert_error(world.coordinator.get("/api/v1/households", headers={"X-Request-Id": "req-api"}), 500,
                           "internal_error")
    assert details == {"request_id": "req-api"}


# --- SESSION_COOKIE_SECURE ---------------------------------------------------------------------------


def _login_cookie(app) -> str:
    console = Console(app.test_client())
    console.get("/console/login")
    response = console.post("/console/login", {"username": "coord", "password": "password-123"})
    assert response.status_code == 303, text(response)[:300]
    return response.headers["Set-Cookie"]


def _attributes(cookie: str) -> set[str]:
    return {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}


def test_the_session_cookie_is_secure_when_the_setting_is_on(world, app, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", True)
    attributes = _attributes(_login_cookie(app))
    assert {"secure", "httponly", "samesite"} <= attributes, attributes


def test_the_session_cookie_is_not_secure_when_the_setting_is_off(world, app, monkeypatch):
    monkeypatch.setitem(app.config, "SESSION_COOKIE_SECURE", False)
    attributes = _attributes(_login_cookie(app))
    assert "secure" not in attributes and "httponly" in attributes, attributes


def _load(tmp_path, monkeypatch, value: str | None) -> dict:
    if value is None:
        monkeypatch.delenv("SESSION_COOKIE_SECURE", raising=False)
    else:
        monkeypatch.setenv("SESSION_COOKIE_SECURE", value)
    return config_module.load({"INSTANCE_PATH": str(tmp_path), "SECRET_KEY": "test-secret-key-0123456789abcdef",
                               "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}"})


@pytest.mark.parametrize("value, expected", [(None, False), ("", False), ("false", False), ("0", False),
                                             ("true", True), ("TRUE", True), ("1", True), ("yes", True)])
def test_the_setting_is_read_from_the_environment(tmp_path, monkeypatch, value, expected):
    assert _load(tmp_path, monkeypatch, value)["SESSION_COOKIE_SECURE"] is expected


def test_a_misspelt_setting_stops_the_app_instead_of_leaving_the_cookie_plain(tmp_path, monkeypatch):
    with pytest.raises(RuntimeError, match="SESSION_COOKIE_SECURE"):
        _load(tmp_path, monkeypatch, "ture")
