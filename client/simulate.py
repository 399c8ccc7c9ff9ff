"""A fleet of tablets against real servers, with faults, then the checker.

    python -m client.simulate --server http://127.0.0.1:8000 --admin-user admin --admin-password PW

It builds its own community through the API (a coordinator, members, paired households), enrolls the
tablets, and runs rounds in which every tablet records visits, assistance, requests and edits, goes
offline for a few rounds now and then, and syncs through a flaky network with a skewed clock; meanwhile
the coordinator edits households online, re-pairs some midway and, where the server has the route,
resolves requests. Then the network heals, every tablet syncs, and the checker compares each replica with
the server's view of its scope. Exit status 0 only when the checker finds no breach.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import os
import random
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import checker
from .attachments import Answer, Uploader
from .store import Store
from .tablet import Backoff, DeviceRevoked, SyncUnavailable, Tablet
from .transport import ApiError, NetworkError, Transport

NOTES = ["独居老人，需每周探访", "子女在外地工作", "行动不便，轮椅出行", "低保户", "已安装紧急呼叫器", "楼道灯坏了"]
TAGS = ["独居", "残疾", "低保", "高龄", "空巢", "重点关注"]
CATEGORIES = ["生活照料", "政策咨询", "医疗协助", "维修", "心理疏导"]


@dataclass
class SimConfig:
    servers: list[str]
    admin_user: str
    admin_password: str
    tablets: int = 6
    members: int = 3
    households_per_member: int = 4
    rounds: int = 8
    offline_chance: float = 0.25
    skew_hours: float = 6.0
    drop_request: float = 0.08
    drop_response: float = 0.08
    slow: float = 0.1
    slow_seconds: float = 0.3
    photo_chance: float = 0.3
    """How often a visit or an assistance log carries photos."""
    cut_upload: float = 0.25
    """How often a piece of an upload is cut at a random byte (the server keeps what arrived)."""
    piece_bytes: int = 32 * 1024
    seed: int | None = None
    workdir: str | None = None
    verbose: bool = False


class FlakyTransport(Transport):
    """A network that drops requests, drops answers after the server acted on them, and crawls.

    Each call goes to one of several servers, as a load balancer would send it.
    """

    def __init__(self, servers: list[str], rng: random.Random, config: SimConfig, timeout: float = 30.0):
        super().__init__(servers[0], timeout)
        self.servers, self.rng, self.config = servers, rng, config
        self.faults = True
        self.counts = {"requests": 0, "dropped requests": 0, "dropped answers": 0, "slowed": 0,
                       "upload pieces": 0, "cut uploads": 0, "lost upload answers": 0}
        self.on_lost_push_answer = None
        """Called with a push answer the tablet never saw: the ledger keeps it to compare with the replay."""

    def request(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        self.counts["requests"] += 1
        base = self.rng.choice(self.servers)
        if self.faults and self.rng.random() < self.config.drop_request:
            self.counts["dropped requests"] += 1
            raise NetworkError("request lost on the way")
        if self.faults and self.rng.random() < self.config.slow:
            self.counts["slowed"] += 1
            time.sleep(self.rng.uniform(0, self.config.slow_seconds))
        answer = Transport(base, self.timeout).request(method, path, body, token)
        if self.faults and self.rng.random() < self.config.drop_response:
            self.counts["dropped answers"] += 1
            if path.startswith("/api/v1/sync/push") and self.on_lost_push_answer:
                self.on_lost_push_answer(answer)
            raise NetworkError("answer lost on the way back (the server acted on it)")
        return answer


class FlakyUploader(Uploader):
    """Uploads over the same flaky network as the tablet's other calls: requests lost, pieces cut at a
    random byte after part of the body went out (the connection closes under the server), answers
    lost after the server stored the piece."""

    def __init__(self, network: FlakyTransport, token: str):
        super().__init__(network.servers[0], token, timeout=network.timeout, piece_bytes=network.config.piece_bytes,
                         attempts=10, sleep=lambda seconds: time.sleep(min(seconds, 4) / 40))
        self.network = network

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Answer:
        net, rng = self.network, self.network.rng
        net.counts["requests"] += 1
        self.base_url = rng.choice(net.servers)
        if net.faults and rng.random() < net.config.drop_request:
            net.counts["dropped requests"] += 1
            raise NetworkError("request lost on the way")
        if method == "PUT" and body:
            net.counts["upload pieces"] += 1
            if net.faults and rng.random() < net.config.cut_upload:
                net.counts["cut uploads"] += 1
                self._send_cut(path, body, headers or {}, rng.randrange(0, len(body)))
                raise NetworkError("connection cut during the upload")
        answer = super().request(method, path, body, headers)
        if net.faults and method == "PUT" and rng.random() < net.config.drop_response:
            net.counts["lost upload answers"] += 1
            raise NetworkError("answer lost on the way back (the server stored the piece)")
        return answer

    def _send_cut(self, path: str, body: bytes, headers: dict[str, str], arrived: int) -> None:
        """Declare the whole piece, send only ``arrived`` bytes of it, and close the connection."""
        url = urllib.parse.urlsplit(self.base_url)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=self.timeout)
        try:
            conn.putrequest("PUT", path)
            for name, value in {"Authorization": f"Bearer {self.token}", **headers,
                                "Content-Length": str(len(body))}.items():
                conn.putheader(name, value)
            conn.endheaders()
            conn.send(body[:arrived])
        except OSError:
            pass  # the cut came early: all the same to the tablet
        finally:
            conn.close()


def photo_png(rng: random.Random) -> bytes:
    """A small PNG of noise (a real image, unique, and as incompressible as a photo), 14 to 130 KB."""
    width, height = rng.randint(80, 240), rng.randint(60, 180)
    raw = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


class Ledger:
    """Every op the tablets recorded and every answer they got, for the checker."""

    def __init__(self):
        self.lock = threading.Lock()
        self.recorded: dict[str, dict] = {}
        self.answers: dict[str, list[dict]] = {}
        self.lost_push_answers = 0

    def hooks(self, device_id: str):
        def on_record(op):
            with self.lock:
                self.recorded[op["op_id"]] = {**op, "device_id": device_id}

        def on_answer(op, result):
            with self.lock:
                self.answers.setdefault(op["op_id"], []).append(result)

        def on_lost_push_answer(answer):
            with self.lock:
                self.lost_push_answers += 1
                for result in answer["results"]:
                    self.answers.setdefault(result["op_id"], []).append(result)

        return on_record, on_answer, on_lost_push_answer


class Coordinator:
    """Online calls with a user token (no faults: a desk with a cable)."""

    def __init__(self, servers: list[str], token: str):
        self.transports = [Transport(s) for s in servers]
        self.token = token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        return random.choice(self.transports).request(method, "/api/v1" + path, body, self.token)

    def pages(self, path: str) -> list[dict]:
        items, page = [], 1
        sep = "&" if "?" in path else "?"
        while True:
            answer = self.call("GET", f"{path}{sep}page={page}&per_page=1000")
            items += answer["items"]
            if len(items) >= answer["total"] or not answer["items"]:
                return items
            page += 1


@dataclass
class SimTablet:
    name: str
    member: dict
    tablet: Tablet
    transport: FlakyTransport
    rng: random.Random
    skew: dt.timedelta
    offline_until: int = -1
    stats: dict[str, int] = field(default_factory=lambda: {"syncs": 0, "failed syncs": 0, "offline rounds": 0})

    def step(self, round_no: int, config: SimConfig) -> None:
        for _ in range(self.rng.randint(1, 4)):
            self.act(config)
        if round_no < self.offline_until:
            self.stats["offline rounds"] += 1
            return
        if self.rng.random() < config.offline_chance:
            self.offline_until = round_no + self.rng.randint(1, 3)
            self.stats["offline rounds"] += 1
            return
        self.sync()

    def sync(self) -> bool:
        self.stats["syncs"] += 1
        try:
            self.tablet.sync()
            return True
        except SyncUnavailable:
            self.stats["failed syncs"] += 1
            return False

    def photos(self, config: SimConfig) -> list:
        if self.rng.random() >= config.photo_chance:
            return []
        return [(photo_png(self.rng), "image/png", f"照片{self.rng.randint(1, 99)}.png")
                for _ in range(self.rng.randint(1, 2))]

    def act(self, config: SimConfig) -> None:
        """One thing a member does on the tablet, chosen among what the tablet shows."""
        store, rng, t = self.tablet.store, self.rng, self.tablet
        households = store.view_all("household")
        if not households:
            return
        household = rng.choice(households)
        hid = household["id"]
        mine = lambda entity: [r for r in store.view_all(entity)  # noqa: E731
                               if r.get("household_id") == hid and r.get("author_id") in (None, self.member["id"])]
        choice = rng.choices(
            ["visit", "assistance", "request", "edit_household", "resident", "edit_resident", "edit_visit",
             "delete_visit", "comment", "new_household", "add_photo"],
            weights=[4, 2, 1, 3, 1, 1, 1, 0.5, 0.5, 0.3, 0.5])[0]
        try:
            if choice == "visit":
                t.record_visit(hid, rng.choice(["routine", "assistance", "follow_up"]), f"探访{rng.randint(1, 999)}：身体状况良好",
                               duration_minutes=rng.randint(5, 90), observations={"血压": f"{rng.randint(110, 150)}/80"},
                               photos=self.photos(config))
            elif choice == "assistance":
                t.record_assistance(hid, rng.choice(CATEGORIES), "帮忙代购药品", minutes=rng.randint(10, 60),
                                    photos=self.photos(config))
            elif choice == "add_photo":
                visits = mine("visit")
                if visits:
                    t.add_photos("visit", rng.choice(visits)["id"], [(photo_png(rng), "image/png", "补拍.png")])
            elif choice == "request":
                t.raise_request(hid, rng.choice(CATEGORIES), f"居民反映：{rng.choice(NOTES)}",
                                urgency=rng.choice(["low", "normal", "urgent"]))
            elif choice == "edit_household":
                tags = set(household.get("tags") or [])
                tags ^= {rng.choice(TAGS)}
                t.edit("household", hid, notes=f"{rng.choice(NOTES)}（{self.name}）", tags=sorted(tags),
                       **({"phone": f"138{rng.randint(10000000, 99999999)}"} if rng.random() < 0.3 else {}))
            elif choice == "resident":
                t.create("resident", {"household_id": hid, "name": rng.choice(["李桂兰", "张建国", "刘淑芬", "陈志强"]),
                                      "gender": rng.choice(["F", "M"]), "birth_year": rng.randint(1930, 1960),
                                      "status": "active", "tags": [rng.choice(TAGS)]})
            elif choice == "edit_resident":
                residents = [r for r in store.view_all("resident") if r.get("household_id") == hid]
                if residents:
                    t.edit("resident", rng.choice(residents)["id"], phone=f"139{rng.randint(10000000, 99999999)}",
                           relation=rng.choice(["户主", "配偶", "子女"]))
            elif choice == "edit_visit":
                visits = mine("visit")
                if visits:
                    t.edit("visit", rng.choice(visits)["id"], summary=f"补充记录{rng.randint(1, 99)}")
            elif choice == "delete_visit":
                visits = mine("visit")
                if visits:
                    t.delete("visit", rng.choice(visits)["id"])
            elif choice == "comment":
                requests = [r for r in store.view_all("request") if r.get("household_id") == hid]
                if requests:
                    t.add_request_event(rng.choice(requests)["id"], "comment", "已电话联系", channel="phone")
            elif choice == "new_household":
                t.create("household", {"area_id": household["area_id"], "address": f"新迁入{rng.randint(1, 999)}号",
                                       "head_name": "赵新民", "tags": ["新迁入"]})
        except LookupError:
            pass  # the record vanished from the view (evicted, deleted): nothing to do
        self.deliver_feedback()

    def deliver_feedback(self) -> None:
        """Bring each resolution back to the household in person: closes the loop."""
        store = self.tablet.store
        delivered = {r.get("request_id") for r in store.view_all("request_event") if r.get("action") == "feedback_delivered"}
        for task in store.view_all("task"):
            if task.get("kind") == "deliver_feedback" and task.get("status") == "open" \
                    and task.get("request_id") not in delivered:
                self.tablet.add_request_event(task["request_id"], "feedback_delivered", "已当面告知处理结果",
                                              channel="in_person", satisfaction=self.rng.randint(3, 5))


def server_view(servers: list[str], coordinator: Coordinator, member: dict) -> dict:
    """What a brand-new tablet of ``member`` gets from a full pull: the server's view of the scope."""
    code = coordinator.call("POST", f"/users/{member['id']}/enrollment-codes")["code"]
    transport = Transport(servers[0])
    device = transport.request("POST", "/api/v1/devices/enroll", {"code": code, "name": "checker", "platform": "check"})
    view: dict = {}
    cursor = None
    while True:
        query = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = transport.request("GET", "/api/v1/sync/pull?" + urllib.parse.urlencode(query), token=device["token"])
        for change in page["changes"]:
            key = (change["entity"], change["id"])
            if change["action"] == "upsert":
                if key not in view or view[key]["version"] < change["version"]:
                    view[key] = {"version": change["version"], "data": change["data"]}
            else:
                view.pop(key, None)
        cursor = page["cursor"]
        if not page["has_more"]:
            return view


class Simulation:
    def __init__(self, config: SimConfig):
        self.config = config
        self.rng = random.Random(config.seed)
        self.ledger = Ledger()
        self.workdir = Path(config.workdir or tempfile.mkdtemp(prefix="lianhu-sim-"))
        self.tablets: list[SimTablet] = []
        self.known_records: set = set()
        self.resolved: dict[str, str] = {}
        self.events: dict[str, int] = {"online edits": 0, "online edit errors": 0, "re-pairings": 0,
                                       "resolves": 0, "resyncs": 0}
        self.log = print if config.verbose else (lambda *a, **k: None)

    # --- the world --------------------------------------------------------------------------------

    def setup(self) -> None:
        c = self.config
        login = Transport(c.servers[0]).request("POST", "/api/v1/auth/token",
                                                {"username": c.admin_user, "password": c.admin_password})
        admin = Coordinator(c.servers, login["token"])
        run = uuid.uuid4().hex[:6]
        community = admin.call("POST", "/areas", {"name": f"模拟社区{run}", "kind": "community", "parent_id": None})
        grid = admin.call("POST", "/areas", {"name": "第一网格", "kind": "grid", "parent_id": community["id"]})
        self.buildings = [admin.call("POST", "/areas", {"name": f"{n}号楼", "kind": "building", "parent_id": grid["id"]})
                          for n in (1, 2)]
        password = uuid.uuid4().hex
        admin.call("POST", "/users", {"username": f"coord-{run}", "display_name": "社区书记", "role": "coordinator",
                                      "area_id": community["id"], "password": password})
        login = Transport(c.servers[0]).request("POST", "/api/v1/auth/token",
                                                {"username": f"coord-{run}", "password": password})
        self.coordinator = Coordinator(c.servers, login["token"])
        self.coordinator_id = login["user"]["id"]
        self.members = [self.coordinator.call("POST", "/users", {
            "username": f"m{i}-{run}", "display_name": f"党员{i}", "role": "member", "area_id": grid["id"],
            "password": uuid.uuid4().hex}) for i in range(c.members)]
        for member in self.members:
            for _ in range(c.households_per_member):
                household = self.coordinator.call("POST", "/households", {
                    "area_id": self.rng.choice(self.buildings)["id"], "address": f"幸福路{self.rng.randint(1, 999)}号",
                    "head_name": "王秀英", "tags": [self.rng.choice(TAGS)], "phone": "13800000000"})
                self.coordinator.call("PUT", f"/households/{household['id']}/pairing", {"member_id": member["id"]})
                self.known_records.add(("household", household["id"]))
        for i in range(c.tablets):
            member = self.members[i % len(self.members)]  # members with more tablets than one collide
            self.tablets.append(self._enroll(f"tablet{i}", member))
        paths = Transport(c.servers[0]).request("GET", "/api/openapi.json").get("paths", {})
        self.has_resolve = any(p.startswith("/api/v1/requests/") and p.endswith("/resolve") for p in paths)
        self.has_quarantine = "/api/v1/quarantine" in paths
        self.has_attachments = "/api/v1/attachments/{sha256}" in paths

    def _enroll(self, name: str, member: dict) -> SimTablet:
        code = self.coordinator.call("POST", f"/users/{member['id']}/enrollment-codes")["code"]
        rng = random.Random(self.rng.random())
        skew = dt.timedelta(hours=rng.uniform(-self.config.skew_hours, self.config.skew_hours))
        transport = FlakyTransport(self.config.servers, rng, self.config)
        transport.faults = False  # enrollment happens at the office
        store = Store(str(self.workdir / f"{name}.db"))
        tablet = Tablet.enroll(store, transport, code, name,
                               clock=lambda: dt.datetime.now(dt.timezone.utc) + skew,
                               backoff=Backoff(attempts=5, base=0.05, cap=0.5),
                               uploader=lambda _server, token: FlakyUploader(transport, token))
        tablet.on_record, tablet.on_answer, transport.on_lost_push_answer = self.ledger.hooks(tablet.device_id)
        transport.faults = True
        return SimTablet(name, member, tablet, transport, rng, skew)

    # --- the rounds ---------------------------------------------------------------------------------

    def run(self) -> checker.Report:
        self.setup()
        with ThreadPoolExecutor(len(self.tablets) + 1) as pool:
            list(pool.map(lambda t: t.sync(), self.tablets))
            for round_no in range(self.config.rounds):
                jobs = [pool.submit(t.step, round_no, self.config) for t in self.tablets]
                jobs.append(pool.submit(self.coordinate, round_no))
                for job in jobs:
                    job.result()
                self.log(f"round {round_no + 1}/{self.config.rounds} done")
        return self.finish()

    def coordinate(self, round_no: int) -> None:
        """The desk: online edits every round, re-pairings midway, a resync, resolutions."""
        rng = self.rng
        households = self.coordinator.pages("/households")
        for household in rng.sample(households, min(2, len(households))):
            current = self.coordinator.call("GET", f"/households/{household['id']}")
            tags = set(current.get("tags") or []) ^ {rng.choice(TAGS)}
            try:
                self.coordinator.call("PATCH", f"/households/{household['id']}", {
                    "base_version": current["version"], "notes": f"社区备注：{rng.choice(NOTES)}", "tags": sorted(tags)})
                self.events["online edits"] += 1
            except ApiError:
                self.events["online edit errors"] += 1
        if round_no in (self.config.rounds // 3, 2 * self.config.rounds // 3) and len(self.members) > 1:
            for household in rng.sample(households, min(2, len(households))):
                others = [m for m in self.members if m["id"] != household.get("member_id")]
                self.coordinator.call("PUT", f"/households/{household['id']}/pairing",
                                      {"member_id": rng.choice(others)["id"]})
                self.events["re-pairings"] += 1
        if round_no == self.config.rounds // 2:
            victim = rng.choice(self.tablets)
            self.coordinator.call("POST", f"/devices/{victim.tablet.device_id}/resync")
            self.events["resyncs"] += 1
        if self.has_resolve and round_no < self.config.rounds - 1:
            for request in self.coordinator.pages("/requests?status=open")[:2]:
                try:
                    self.coordinator.call("POST", f"/requests/{request['id']}/resolve", {"resolution": "已联系物业修复"})
                    self.resolved[request["id"]] = request["household_id"]
                    self.events["resolves"] += 1
                except ApiError:
                    pass

    # --- the end ------------------------------------------------------------------------------------

    def finish(self) -> checker.Report:
        for t in self.tablets:
            t.transport.faults = False
        for _ in range(2):  # the first pass pushes everything; the second brings what others pushed after
            for t in self.tablets:
                t.tablet.sync()
        evidence = self.gather()
        report = checker.check(evidence)
        report.stats.update(self.events)
        for key in ("requests", "dropped requests", "dropped answers", "slowed", "upload pieces", "cut uploads",
                    "lost upload answers"):
            report.stats[f"network {key}"] = sum(t.transport.counts[key] for t in self.tablets)
        for key in ("syncs", "failed syncs", "offline rounds"):
            report.stats[f"tablet {key}"] = sum(t.stats[key] for t in self.tablets)
        report.stats["tablets"] = len(self.tablets)
        report.stats["push answers lost after commit"] = self.ledger.lost_push_answers
        codes = [a[-1]["error"]["code"] for a in self.ledger.answers.values() if a[-1]["status"] == "rejected"]
        for code in set(codes):
            report.stats[f"rejected {code}"] = codes.count(code)
        report.stats["largest clock skew (minutes)"] = int(max(abs(t.skew.total_seconds()) for t in self.tablets) // 60)
        return report

    def gather(self) -> checker.Evidence:
        households = self.coordinator.pages("/households")
        pairings = {h["id"]: h.get("member_id") for h in households}
        members_with_tablets = {t.member["id"]: t.member for t in self.tablets}
        views = {mid: server_view(self.config.servers, self.coordinator, m) for mid, m in members_with_tablets.items()}
        quarantine = None
        if self.has_quarantine:
            quarantine = []
            for status in ("open", "retried", "discarded"):
                for item in self.coordinator.pages(f"/quarantine?status={status}"):
                    op = item.get("op") if isinstance(item.get("op"), dict) else {}
                    quarantine.append({"op_id": item.get("op_id") or op.get("op_id"), "device_id": item.get("device_id")})
        known = set(self.known_records)
        for view in views.values():  # what the desk made (resolutions, office requests) no tablet op accounts for
            known |= {k for k, r in view.items() if (r["data"] or {}).get("author_id") == self.coordinator_id}
        tablets = [checker.TabletState(t.name, t.tablet.device_id, t.member["id"], t.tablet.store.replica(),
                                       [op.op_id for op in t.tablet.store.outbox()]) for t in self.tablets]
        return checker.Evidence(tablets, views, pairings, dict(self.ledger.recorded),
                                {k: list(v) for k, v in self.ledger.answers.items()}, quarantine, known,
                                dict(self.resolved) if self.has_resolve else None,
                                self.photo_states() if self.has_attachments else None)

    def photo_states(self) -> list[checker.PhotoState]:
        """Ask the server, with each recording tablet's own token, about every file the tablet holds."""
        states = []
        for t in self.tablets:
            reader = Uploader(self.config.servers[0], t.tablet.token)
            for sha, state in t.tablet.store.file_states().items():
                path = f"/api/v1/attachments/{sha}"
                held = reader.request("HEAD", path).status == 200
                answer = reader.request("GET", path)
                fetched = hashlib.sha256(answer.body).hexdigest() if answer.status == 200 else None
                states.append(checker.PhotoState(sha, t.name, t.member["id"], held, fetched, state))
        return states


def parse(argv: list[str] | None) -> SimConfig:
    p = argparse.ArgumentParser(prog="python -m client.simulate", description=__doc__.split("\n\n")[0])
    p.add_argument("--server", action="append", required=True, help="a server URL; repeat for several")
    p.add_argument("--admin-user", default=os.environ.get("LIANHU_SIM_ADMIN", "admin"))
    p.add_argument("--admin-password", default=os.environ.get("LIANHU_SIM_ADMIN_PASSWORD"),
                   help="(env LIANHU_SIM_ADMIN_PASSWORD)")
    p.add_argument("--tablets", type=int, default=6)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--households-per-member", type=int, default=4)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--offline-chance", type=float, default=0.25)
    p.add_argument("--skew-hours", type=float, default=6.0)
    p.add_argument("--drop-request", type=float, default=0.08)
    p.add_argument("--drop-response", type=float, default=0.08)
    p.add_argument("--slow", type=float, default=0.1)
    p.add_argument("--photo-chance", type=float, default=0.3, help="share of visits and assistance logs with photos")
    p.add_argument("--cut-upload", type=float, default=0.25, help="share of upload pieces cut at a random byte")
    p.add_argument("--no-faults", action="store_true", help="a perfect network (for comparison)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workdir", default=None, help="where the tablets' SQLite files go (default: a temp folder)")
    p.add_argument("-v", "--verbose", action="store_true")
    a = p.parse_args(argv)
    if not a.admin_password:
        p.error("--admin-password (or LIANHU_SIM_ADMIN_PASSWORD) is required")
    faults = 0 if a.no_faults else 1
    return SimConfig(a.server, a.admin_user, a.admin_password, a.tablets, a.members, a.households_per_member,
                     a.rounds, a.offline_chance, a.skew_hours, a.drop_request * faults, a.drop_response * faults,
                     a.slow * faults, photo_chance=a.photo_chance, cut_upload=a.cut_upload * faults,
                     seed=a.seed, workdir=a.workdir, verbose=a.verbose)


def main(argv: list[str] | None = None) -> int:
    config = parse(argv)
    started = time.monotonic()
    try:
        report = Simulation(config).run()
    except DeviceRevoked:
        print("a tablet was revoked during the simulation", file=sys.stderr)
        return 2
    print(report.render())
    print(f"simulation took {time.monotonic() - started:.1f}s")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
