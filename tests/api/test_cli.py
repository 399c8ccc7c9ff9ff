"""The command line: create-user and seed-demo."""
from __future__ import annotations

import re

from sqlalchemy import func, select

from server.extensions import db
from sync.models import Household, Resident, User


def test_create_user_makes_an_admin_who_can_log_in(runner, client):
    result = runner.invoke(args=["create-user", "root", "--role", "admin", "--password", "password-123"])
    assert result.exit_code == 0, result.output
    assert "created admin root" in result.output
    response = client.post("/api/v1/auth/token", json={"username": "root", "password": "password-123"})
    assert response.status_code == 200 and response.get_json()["user"]["role"] == "admin"
    assert "password-123" not in db.session.scalar(select(User.password_hash).where(User.username == "root"))


def test_a_duplicate_username_fails_cleanly(runner):
    assert runner.invoke(args=["create-user", "root", "--password", "password-123"]).exit_code == 0
    result = runner.invoke(args=["create-user", "root", "--password", "another-password"])
    assert result.exit_code == 1
    assert "username_taken" in result.output and "Traceback" not in result.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_create_user_with_an_area_by_name(world, runner):
    result = runner.invoke(args=["create-user", "grid.leader", "--role", "coordinator", "--password",
                                 "password-123", "--area", world.grid["name"], "--display-name", "网格长 刘"])
    assert result.exit_code == 0, result.output
    user = db.session.scalar(select(User).where(User.username == "grid.leader"))
    assert user.area_id == world.grid["id"] and user.display_name == "网格长 刘"


def test_create_user_refuses_bad_input(runner):
    unknown_area = runner.invoke(args=["create-user", "x", "--role", "member", "--password", "password-123",
                                       "--area", "无此社区"])
    assert unknown_area.exit_code != 0 and "no area" in unknown_area.output
    no_area = runner.invoke(args=["create-user", "x", "--role", "member", "--password", "password-123"])
    assert no_area.exit_code != 0 and "validation_failed" in no_area.output
    bad_role = runner.invoke(args=["create-user", "x", "--role", "king", "--password", "password-123"])
    assert bad_role.exit_code != 0
    bad_name = runner.invoke(args=["create-user", "has space", "--password", "password-123"])
    assert bad_name.exit_code != 0 and "Traceback" not in bad_name.output
    short_password = runner.invoke(args=["create-user", "root", "--password", "short"])
    assert short_password.exit_code != 0 and "password" in short_password.output
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_seed_demo_loads_a_community_whose_login_and_code_work(runner, client):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(Household)) == 200
    names = list(db.session.scalars(select(Resident.name)))
    assert len(names) >= 200
    assert all(re.fullmatch(r"[\u4e00-\u9fff]{2,3}", name) for name in names), names[:5]

    login = re.search(r"coordinator login: (\S+) / (\S+)", result.output)
    code = re.search(r"enrollment code for member (\S+): ([A-Z0-9-]+)", result.output)
    assert login and code, result.output
    token = client.post("/api/v1/auth/token", json={"username": login[1], "password": login[2]})
    assert token.status_code == 200 and token.get_json()["user"]["role"] == "coordinator"
    coordinator = {"Authorization": f"Bearer {token.get_json()['token']}"}
    assert client.get("/api/v1/households?per_page=1", headers=coordinator).get_json()["total"] == 200

    enrolled = client.post("/api/v1/devices/enroll", json={"code": code[2], "name": "演示平板"})
    assert enrolled.status_code == 201 and enrolled.get_json()["user"]["username"] == code[1]
    tablet = {"Authorization": f"Bearer {enrolled.get_json()['token']}"}
    pull = client.get("/api/v1/sync/pull?limit=1000", headers=tablet).get_json()
    households = [c for c in pull["changes"] if c["entity"] == "household"]
    assert households and len(households) < 200  # the member sees its own households only


def test_seed_demo_if_empty_loads_once(runner):
    first = runner.invoke(args=["seed-demo", "--if-empty", "--households", "20"])
    assert first.exit_code == 0 and "coordinator login" in first.output
    second = runner.invoke(args=["seed-demo", "--if-empty", "--households", "20"])
    assert second.exit_code == 0 and "coordinator login" not in second.output
    assert db.session.scalar(select(func.count()).select_from(Household)) == 20
