"""A realistic demo community: grids, buildings, members, households with residents, visits, requests."""
from __future__ import annotations

import datetime as dt
import random

from sqlalchemy.orm import Session

from sync.apply import Change, apply_change, set_pairing
from sync.models import new_id, utcnow
from sync.policy import Actor, actor_for

from .services import accounts
from .services.common import sync_settings

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
GIVEN = "秀英桂兰玉兰明华建国建华志强海燕红梅国强淑珍凤英丽娟德明春生秋菊文斌晓东金凤永福淑华振华"
STREETS = ["幸福路", "和平里", "光明街", "建设路", "团结巷"]
CATEGORIES = ["楼道照明", "加装电梯", "养老金咨询", "医疗报销", "房屋漏水", "垃圾清运", "邻里纠纷", "低保申请"]
TAGS = [["独居老人"], ["残疾人"], ["低保户"], ["独居老人", "低保户"], [], [], []]
SUMMARIES = ["老人身体状况良好，精神不错。", "了解生活困难，已记录需求。", "协助联系社区医生上门。",
             "检查燃气安全，提醒注意用电。", "送去米面油慰问品。"]


def _name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.sample(GIVEN, rng.choice([1, 2])))


def seed(session: Session, household_count: int, code_ttl_minutes: int) -> dict:
    rng = random.Random(20261201)
    root = Actor("seed", "admin")
    from sync.policy import Scope

    password = "lianhu-demo-2026"
    admin = accounts.create_user(session, Scope(root), {"username": "admin", "display_name": "系统管理员",
                                                        "role": "admin", "area_id": None, "password": password})
    scope = Scope(actor_for(session, admin))
    community = accounts.create_area(session, scope, "幸福里社区", "community", None)
    grids = [accounts.create_area(session, scope, f"第{i}网格", "grid", community.id) for i in range(1, 4)]
    buildings = [accounts.create_area(session, scope, f"{rng.choice(STREETS)}{n}号楼", "building", g.id)
                 for g in grids for n in range(1, 5)]
    coordinator = accounts.create_user(session, scope, {
        "username": "shuji", "display_name": "社区书记 李红", "role": "coordinator",
        "area_id": community.id, "password": password})
    members = [accounts.create_user(session, scope, {
        "username": f"member{i}", "display_name": f"党员 {_name(rng)}", "role": "member",
        "area_id": grids[(i - 1) % len(grids)].id, "password": password}) for i in range(1, 9)]
    coordinator_actor = actor_for(session, coordinator)
    settings = sync_settings()
    now = utcnow()
    for n in range(household_count):
        building = buildings[n % len(buildings)]
        head = _name(rng)
        household_id = new_id()
        tags = rng.choice(TAGS)
        data = {"area_id": building.id, "address": f"{building.name}{n % 6 + 1}单元{rng.randint(1, 18)}0{rng.randint(1, 4)}室",
                "head_name": head, "phone": f"13{rng.randint(100000000, 999999999)}", "tags": tags,
                "offline_served": rng.random() < 0.7, "sms_consent": rng.random() < 0.4}
        household = apply_change(session, coordinator_actor, Change("household", household_id, "create", data, None, now),
                                 settings).record
        member = members[n % len(members)]
        set_pairing(session, coordinator_actor, household, member.id, now)
        member_actor = actor_for(session, member)
        for r in range(rng.randint(1, 3)):
            apply_change(session, coordinator_actor, Change("resident", new_id(), "create", {
                "household_id": household_id, "name": head if r == 0 else _name(rng),
                "gender": rng.choice(["F", "M"]), "birth_year": rng.randint(1935, 2015),
                "relation": "户主" if r == 0 else rng.choice(["配偶", "子女", "孙辈"]), "tags": tags if r == 0 else [],
                "status": "active"}, None, now), settings)
        if rng.random() < 0.6:
            visited = now - dt.timedelta(days=rng.randint(0, 40), hours=rng.randint(0, 8))
            apply_change(session, member_actor, Change("visit", new_id(), "create", {
                "household_id": household_id, "visited_at": visited, "kind": "routine",
                "summary": rng.choice(SUMMARIES), "duration_minutes": rng.randint(10, 60)}, None, visited), settings)
        if rng.random() < 0.15:
            apply_change(session, member_actor, Change("request", new_id(), "create", {
                "household_id": household_id, "category": rng.choice(CATEGORIES),
                "description": "居民在走访中反映，需要社区协调解决。", "urgency": rng.choice(["low", "normal", "urgent"])},
                None, now - dt.timedelta(days=rng.randint(0, 10))), settings)
    code = accounts.issue_enrollment_code(session, scope, members[0].id, code_ttl_minutes)
    return {"community": community.name, "coordinator": coordinator.username, "admin": admin.username,
            "password": password, "member": members[0].username, "code": code["code"]}
