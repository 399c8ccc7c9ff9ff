"""The coordinators' console in headless Chromium (Debian's, through Playwright) against real gunicorn.

One coordinator's working session, start to end: log in, review a visit, assign and resolve a request and
see the task reach a simulated tablet's pull, resolve a conflict, revoke a tablet, download an export and
read it back. A screenshot of each main page goes to ``tests/artifacts/`` (git-ignored).
"""
from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest
import requests
from openpyxl import load_workbook

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
PASSWORD = "console-e2e-password"

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium before the tests")
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")


class Http:
    """A bearer-token caller of the live server's API."""

    def __init__(self, url: str, token: str | None = None):
        self.url, self.session = url, requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, body=None, expect: int | None = None):
        response = self.session.request(method, self.url + "/api/v1" + path, json=body, timeout=30)
        if expect is not None:
            assert response.status_code == expect, (method, path, response.status_code, response.text)
        return response

    @classmethod
    def login(cls, url: str, username: str, password: str) -> "Http":
        token = cls(url).call("POST", "/auth/token", {"username": username, "password": password}, 200)
        return cls(url, token.json()["token"])


class SimulatedTablet(Http):
    """A tablet that pushes ops and pulls until done, keeping the last version of each record."""

    def __init__(self, url: str, token: str):
        super().__init__(url, token)
        self.cursor = None
        self.replica: dict[tuple[str, str], dict] = {}

    def push(self, *ops):
        body = {"batch_id": str(uuid.uuid4()), "client_time": "2026-12-01T10:00:00+08:00", "ops": list(ops)}
        return [r["status"] for r in self.call("POST", "/sync/push", body, 200).json()["results"]]

    def pull_all(self) -> list[dict]:
        received = []
        while True:
            query = "/sync/pull?limit=500" + (f"&cursor={self.cursor}" if self.cursor else "")
            page = self.call("GET", query, expect=200).json()
            for change in page["changes"]:
                if change["action"] == "upsert":
                    self.replica[(change["entity"], change["id"])] = change["data"]
                else:
                    self.replica.pop((change["entity"], change["id"]), None)
            received += page["changes"]
            self.cursor = page["cursor"]
            if not page["has_more"]:
                return received


def op(entity, record_id, action="create", data=None, base_version=None, recorded_at="2026-12-01T09:30:00+08:00"):
    return {"op_id": str(uuid.uuid4()), "entity": entity, "id": record_id, "action": action,
            "base_version": base_version, "recorded_at": recorded_at, "data": data}


@pytest.fixture(scope="module")
def community(live_server):
    """A community of its own in the shared live database: a coordinator, a member with a tablet, and a
    household with a visit, a request and a conflict waiting for the coordinator."""
    url, tag = live_server["url"], uuid.uuid4().hex[:6]
    admin = Http.login(url, live_server["admin"], live_server["password"])
    area = lambda name, kind, parent: admin.call(  # noqa: E731
        "POST", "/areas", {"name": name, "kind": kind, "parent_id": parent}, 201).json()
    root = area(f"浏览器社区{tag}", "community", None)
    grid = area("第一网格", "grid", root["id"])
    building = area("3号楼", "building", grid["id"])
    user = lambda name, role, area_id: admin.call("POST", "/users", {  # noqa: E731
        "username": name, "display_name": name, "role": role, "area_id": area_id, "password": PASSWORD}, 201).json()
    coordinator = user(f"coord-{tag}", "coordinator", root["id"])
    member = user(f"member-{tag}", "member", grid["id"])
    desk = Http.login(url, coordinator["username"], PASSWORD)
    household = desk.call("POST", "/households", {"area_id": building["id"], "address": f"建设路{tag}号",
                                                  "head_name": "赵淑珍"}, 201).json()
    desk.call("PUT", f"/households/{household['id']}/pairing", {"member_id": member["id"]}, 200)
    code = desk.call("POST", f"/users/{member['id']}/enrollment-codes", expect=201).json()["code"]
    enrolled = Http(url).call("POST", "/devices/enroll", {"code": code, "name": f"平板{tag}"}, 201).json()
    tablet = SimulatedTablet(url, enrolled["token"])
    visit_id, request_id = str(uuid.uuid4()), str(uuid.uuid4())
    assert tablet.push(
        op("visit", visit_id, data={"household_id": household["id"], "kind": "routine",
                                    "visited_at": "2026-12-01T09:00:00+08:00", "summary": "老人腿脚不便，需要轮椅"}),
        op("request", request_id, data={"household_id": household["id"], "category": "辅具申请",
                                        "description": "申请一台轮椅", "urgency": "urgent"}),
    ) == ["applied", "applied"]
    tablet.pull_all()
    version = tablet.replica[("household", household["id"])]["version"]
    desk.call("PATCH", f"/households/{household['id']}", {"base_version": version, "phone": "13800001111"}, 200)
    assert tablet.push(op("household", household["id"], "update", {"phone": "13900002222"}, version,
                          recorded_at="2026-12-01T08:00:00+08:00")) == ["merged"]
    return {"url": url, "coordinator": coordinator, "member": member, "household": household, "desk": desk,
            "tablet": tablet, "device_id": enrolled["device_id"], "visit_id": visit_id, "request_id": request_id,
            "tag": tag}


@pytest.fixture(scope="module")
def browser():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def page(browser, community):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900}, locale="zh-CN")
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the "revoke this tablet?" question
    yield page
    context.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def test_log_in(page, community):
    page.goto(community["url"] + "/console/")
    assert "/console/login" in page.url
    shot(page, "login")
    page.fill("input[name=username]", community["coordinator"]["username"])
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit].primary")
    page.wait_for_url("**/console/dashboard")
    assert page.locator("h1").inner_text() == "概览"
    assert page.locator("#coverage svg").count() == 1
    shot(page, "dashboard")
    page.set_viewport_size({"width": 800, "height": 1200})  # a tablet held upright
    shot(page, "dashboard-tablet")
    page.set_viewport_size({"width": 1280, "height": 900})


def test_review_a_visit(page, community):
    page.goto(community["url"] + "/console/visits?review=pending")
    shot(page, "visits")
    page.click(f"tr[data-visit='{community['visit_id']}'] a")
    page.fill("textarea[name=comment]", "记录清楚，已联系残联")
    page.click("button[value=approved]")
    page.wait_for_selector("#review-state.s-approved")
    reviews = [c for c in community["tablet"].pull_all() if c["entity"] == "review"]
    assert reviews[-1]["data"]["decision"] == "approved"
    assert reviews[-1]["data"]["comment"] == "记录清楚，已联系残联"


def test_assign_and_resolve_a_request_reaches_the_tablet(page, community):
    page.goto(community["url"] + "/console/requests")
    shot(page, "requests")
    page.click(f"tr[data-request='{community['request_id']}'] a")
    page.fill("input[name=handler]", "民政科李科长")
    page.click("text=分派 >> nth=-1")
    page.wait_for_selector("#request-status.s-assigned")
    page.fill("textarea[name=resolution]", "轮椅已申请，周五送到")
    page.click("button.primary:has-text('办结')")
    page.wait_for_selector("#request-status.s-resolved")
    assert "待处理" in page.locator("#feedback-state").inner_text() or "任务" in page.locator("#feedback-state").inner_text()
    shot(page, "request")
    tasks = [c for c in community["tablet"].pull_all() if c["entity"] == "task"]
    assert tasks and tasks[-1]["data"]["kind"] == "deliver_feedback"
    assert "轮椅已申请，周五送到" in tasks[-1]["data"]["message"]


def test_resolve_a_conflict(page, community):
    page.goto(community["url"] + "/console/conflicts")
    shot(page, "conflicts")
    card = page.locator("section[data-conflict]", has_text="13900002222")
    card.locator("button[value=discarded]").click()
    page.wait_for_selector("text=冲突已处理")
    household = community["desk"].call("GET", f"/households/{community['household']['id']}", expect=200).json()
    assert household["phone"] == "13900002222"


def test_households_and_quarantine_pages(page, community):
    page.goto(community["url"] + f"/console/households?q={community['tag']}")
    shot(page, "households")
    page.click(f"text=建设路{community['tag']}号")
    assert "老人腿脚不便" in page.locator("ol.timeline").inner_text()
    shot(page, "household")
    page.goto(community["url"] + "/console/quarantine")
    shot(page, "quarantine")


def test_enrollment_code_and_revoke_a_tablet(page, community):
    page.goto(community["url"] + "/console/members")
    row = page.locator(f"tr[data-username='{community['member']['username']}']")
    row.locator("button:has-text('注册码')").click()
    assert page.locator(".qr svg").count() == 1
    assert len(page.locator("#enrollment-code").inner_text()) == 11
    shot(page, "enrollment-code")
    page.goto(community["url"] + "/console/members")
    shot(page, "members")
    device = page.locator(f"div[data-device='{community['device_id']}']")
    device.locator("button.danger").click()
    page.wait_for_selector(f"div[data-device='{community['device_id']}'].revoked")
    answer = community["tablet"].call("GET", "/sync/pull")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "device_revoked" and answer.json()["error"]["details"]["wipe"] is True


def test_download_an_export_and_read_it_back(page, community):
    page.goto(community["url"] + "/console/exports")
    shot(page, "exports")
    page.select_option("select[name=kind]", "visits")
    page.select_option("select[name=format]", "xlsx")
    page.fill("input[name=date_from]", "2026-12-01")
    page.fill("input[name=date_to]", "2026-12-01")
    with page.expect_download() as download_info:
        page.click("#export-form button[type=submit]")
    download = download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(Path(download.path()).read_bytes()), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("走访时间", "区域", "地址")
    assert [row[2] for row in rows[1:]] == [f"建设路{community['tag']}号"]
    assert rows[1][rows[0].index("审核")] == "approved"


def test_log_out(page, community):
    page.goto(community["url"] + "/console/dashboard")
    page.click("form.logout button")
    page.wait_for_url("**/console/login")
    page.goto(community["url"] + "/console/dashboard")
    assert "/console/login" in page.url
