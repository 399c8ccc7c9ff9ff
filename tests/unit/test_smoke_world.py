from tests.conftest import op


def test_world_builds_and_a_tablet_pulls_its_household(world):
    household = world.household(member="m1")
    tablet = world.tablet("m1")
    tablet.pull_all()
    assert ("household", household["id"]) in tablet.replica
    result = tablet.push([op("visit", "00000000-0000-4000-8000-000000000001", data={
        "household_id": household["id"], "visited_at": "2026-12-01T09:00:00+08:00", "kind": "routine"})])
    assert result["results"][0]["status"] == "applied"
