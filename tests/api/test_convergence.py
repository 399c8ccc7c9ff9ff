"""Property: random offline edits from several tablets of one member, online coordinator edits, lost
answers and resends, in random push and pull orders, always end with every tablet holding exactly the
server's state of its scope, every op answered once, nothing duplicated and nothing lost.

The simulated tablet keeps the server's copy (from pulls) apart from its pending edits, as a careful client
does (docs/protocol.md): an acknowledged op leaves the outbox, and the next pull brings the merged result.
"""
import itertools
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from server.extensions import db
from server.services.households import attach_pairings
from server.services.sync_service import serialize_record
from sync.models import Household, OpLog, Pairing, QuarantinedOp, Resident
from tests.conftest import op

_members = itertools.count(1)

FIELDS = {"notes": st.sampled_from(["甲", "乙", "丙", None]),
          "head_name": st.sampled_from(["王秀英", "李桂兰", "张建国"]),
          "phone": st.sampled_from(["13800000001", "13800000002", None]),
          "tags": st.lists(st.sampled_from(["独居老人", "残疾人", "低保户", "高龄"]), unique=True, max_size=3)}

action = st.one_of(
    st.tuples(st.just("edit"), st.integers(0, 2), st.sampled_from(sorted(FIELDS))).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1]), st.just(t[2]), FIELDS[t[2]])),
    st.tuples(st.just("online"), st.sampled_from(["notes", "head_name", "tags"])).flatmap(
        lambda t: st.tuples(st.just(t[0]), st.just(t[1]), FIELDS[t[1]])),
    st.tuples(st.just("add_resident"), st.integers(0, 2)),
    st.tuples(st.just("edit_resident"), st.integers(0, 2), st.integers(0, 5), st.sampled_from(["F", "M", None])),
    st.tuples(st.just("delete_resident"), st.integers(0, 2), st.integers(0, 5)),
    st.tuples(st.just("push"), st.integers(0, 2)),
    st.tuples(st.just("push_answer_lost"), st.integers(0, 2)),
    st.tuples(st.just("pull"), st.integers(0, 2)),
)


class SimTablet:
    def __init__(self, tablet):
        self.t = tablet
        self.outbox: list[dict] = []
        self.in_flight: tuple[str, list[dict]] | None = None
        self.answered: dict[str, dict] = {}
        self.created_residents: list[str] = []

    def version_of(self, entity, record_id):
        held = self.t.replica.get((entity, record_id))
        return held["version"] if held else 1

    def record(self, entity, record_id, action_name, data=None):
        base = None if action_name == "create" else self.version_of(entity, record_id)
        self.outbox.append(op(entity, record_id, action_name, data, base_version=base))

    def push(self, lose_answer=False):
        if self.in_flight is None:
            if not self.outbox:
                return
            self.in_flight, self.outbox = (str(uuid.uuid4()), self.outbox), []
        batch_id, ops = self.in_flight
        answer = self.t.push(ops, batch_id=batch_id)
        if lose_answer:
            return  # the server committed, the tablet never heard: it resends the same batch later
        for result in answer["results"]:
            previous = self.answered.get(result["op_id"])
            assert previous is None or previous == result, "a resent batch must answer its original results"
            self.answered[result["op_id"]] = result
        self.in_flight = None


def server_view(member_id):
    households = db.session.scalars(select(Household).where(
        Household.id.in_(select(Pairing.household_id).where(Pairing.member_id == member_id)))).all()
    attach_pairings(db.session, households)
    view = {("household", h.id): serialize_record("household", h) for h in households}
    for r in db.session.scalars(select(Resident).where(Resident.household_id.in_([h.id for h in households]),
                                                        Resident.deleted_at.is_(None))):
        view[("resident", r.id)] = serialize_record("resident", r)
    return view


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(actions=st.lists(action, min_size=1, max_size=25))
def test_every_tablet_converges_to_the_server(world, actions):
    name = f"conv{next(_members)}"
    member = world.add_member(name)
    household = world.household(address=f"{name}的家", member=name)
    tablets = [SimTablet(world.tablet(name)) for _ in range(3)]
    for tablet in tablets:
        tablet.t.pull_all()
    for step in actions:
        kind = step[0]
        if kind == "edit":
            _, i, field, value = step
            tablets[i].record("household", household["id"], "update", {field: value})
        elif kind == "online":
            _, field, value = step
            current = world.coordinator.get(f"/api/v1/households/{household['id']}").get_json()
            response = world.coordinator.patch(f"/api/v1/households/{household['id']}",
                                               {"base_version": current["version"], field: value})
            assert response.status_code == 200, response.get_json()
        elif kind == "add_resident":
            rid = str(uuid.uuid4())
            tablets[step[1]].created_residents.append(rid)
            tablets[step[1]].record("resident", rid, "create", {"household_id": household["id"], "name": "新居民"})
        elif kind in ("edit_resident", "delete_resident"):
            tablet = tablets[step[1]]
            known = sorted(k[1] for k in tablet.t.replica if k[0] == "resident")
            if known:
                rid = known[step[2] % len(known)]
                if kind == "edit_resident":
                    tablet.record("resident", rid, "update", {"gender": step[3]})
                else:
                    tablet.record("resident", rid, "delete")
        elif kind == "push":
            tablets[step[1]].push()
        elif kind == "push_answer_lost":
            tablets[step[1]].push(lose_answer=True)
        else:
            tablets[step[1]].t.pull_all(limit=3)

    for tablet in tablets:  # everyone comes back online: resend what is in flight, push the rest
        tablet.push()
        tablet.push()
    for tablet in tablets:
        tablet.t.pull_all(limit=4)

    expected = server_view(member["id"])
    for tablet in tablets:
        assert tablet.t.replica == expected
    sent = {o["op_id"] for t in tablets for o in [] + t.outbox} | {i for t in tablets for i in t.answered}
    assert all(not t.outbox and t.in_flight is None for t in tablets)
    device_ids = [t.t.device_id for t in tablets]
    logged = db.session.scalar(select(func.count()).select_from(OpLog).where(OpLog.device_id.in_(device_ids)))
    assert logged == len(sent), "every op answered exactly once"
    rejected = sum(r["status"] == "rejected" for t in tablets for r in t.answered.values())
    quarantined = db.session.scalar(select(func.count()).select_from(QuarantinedOp).where(
        QuarantinedOp.device_id.in_(device_ids)))
    assert quarantined == rejected, "every rejected op is kept"
    created = [rid for t in tablets for rid in t.created_residents]
    assert db.session.scalar(select(func.count()).select_from(Resident).where(Resident.id.in_(created))) == len(created)
