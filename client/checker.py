"""The end-of-simulation checker: does what every tablet holds agree with the server, op for op?

Pure functions over plain data, so unit tests can hand it a broken world and watch it complain. The
simulator gathers the ``Evidence`` over HTTP (``client.simulate``).
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

Key = tuple[str, str]

HOUSEHOLD_SCOPED = ("resident", "visit", "assistance_log", "request", "request_event")
EXPECTED_REJECTIONS = frozenset({"forbidden", "not_found", "stale_delete", "invalid_transition"})
"""What a correct tablet can provoke when the world moved while it was offline (a household re-paired
away, a record deleted by others, a request whose status changed). Anything else is a client or server bug."""


@dataclass
class TabletState:
    name: str
    device_id: str
    member_id: str
    replica: dict[Key, dict]
    """``{(entity, id): {"version": int, "data": dict}}``: the live records the tablet holds."""
    outbox: list[str] = field(default_factory=list)
    """op_ids still waiting to be sent."""


@dataclass
class PhotoState:
    """One file a tablet recorded, as the server answered for it after the last sync."""
    sha256: str
    tablet: str
    member_id: str
    held: bool
    """``HEAD /attachments/{sha256}`` answered 200 (the whole file is there)."""
    fetched_sha256: str | None
    """SHA-256 of what ``GET`` with the recording tablet's token returned; None when it was refused (404)."""
    state_on_tablet: str = "uploaded"
    """The tablet's own view: ``pending``, ``uploaded`` or ``refused``."""


@dataclass
class Evidence:
    tablets: list[TabletState]
    server_views: dict[str, dict[Key, dict]]
    """member_id → the server's view of that member's scope (a fresh device's full pull)."""
    pairings: dict[str, str | None]
    """household_id → member_id, from the coordinators' API."""
    recorded: dict[str, dict]
    """op_id → the op as recorded (with ``device_id``): everything the tablets ever put in an outbox."""
    answers: dict[str, list[dict]]
    """op_id → every answer received for it (a resent batch answers again)."""
    quarantine: list[dict] | None = None
    """``[{op_id, device_id}]`` from ``GET /quarantine``, or None where the server has no such route."""
    known_records: set[Key] = field(default_factory=set)
    """Records made outside the tablets (set-up, coordinators), which no op accounts for."""
    resolved_requests: dict[str, str] | None = None
    """request_id → household_id for requests a coordinator resolved, or None where resolve is absent."""
    photos: list[PhotoState] | None = None
    """Every file the tablets recorded, or None where the server has no attachments."""


@dataclass
class Breach:
    kind: str
    detail: str


@dataclass
class Report:
    breaches: list[Breach] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.breaches

    def add(self, kind: str, detail: str) -> None:
        self.breaches.append(Breach(kind, detail))

    def kinds(self) -> set[str]:
        return {b.kind for b in self.breaches}

    def render(self, limit: int = 40) -> str:
        lines = ["checker: " + ("PASSED" if self.ok else f"FAILED with {len(self.breaches)} breach(es)")]
        lines += [f"  {k}: {v}" for k, v in sorted(self.stats.items())]
        for kind, count in sorted(Counter(b.kind for b in self.breaches).items()):
            lines.append(f"  breach {kind}: {count}")
        lines += [f"    - {b.kind}: {b.detail}" for b in self.breaches[:limit]]
        return "\n".join(lines)


def household_of(key: Key, data: dict | None) -> str | None:
    entity, record_id = key
    if entity == "household":
        return record_id
    return (data or {}).get("household_id")


def check(evidence: Evidence) -> Report:
    report = Report()
    _check_replicas(evidence, report)
    _check_scope(evidence, report)
    _check_ops(evidence, report)
    _check_records_accounted(evidence, report)
    _check_feedback(evidence, report)
    _check_photos(evidence, report)
    return report


def _check_replicas(evidence: Evidence, report: Report) -> None:
    """Each tablet holds exactly the server's view of its member's scope, at the same versions."""
    for tablet in evidence.tablets:
        server = evidence.server_views.get(tablet.member_id, {})
        for key in sorted(server.keys() - tablet.replica.keys()):
            report.add("missing", f"{tablet.name} lacks {key[0]} {key[1]} (server version {server[key]['version']})")
        for key in sorted(tablet.replica.keys() - server.keys()):
            report.add("extra", f"{tablet.name} holds {key[0]} {key[1]} the server's view of its scope lacks")
        for key in sorted(tablet.replica.keys() & server.keys()):
            mine, theirs = tablet.replica[key], server[key]
            if mine["version"] != theirs["version"] or mine["data"] != theirs["data"]:
                fields = sorted(k for k in set(mine["data"] or {}) | set(theirs["data"] or {})
                                if (mine["data"] or {}).get(k) != (theirs["data"] or {}).get(k))
                report.add("stale", f"{tablet.name} holds {key[0]} {key[1]} at version {mine['version']}, "
                                    f"the server at {theirs['version']}; fields differ: {fields}")
        if tablet.outbox:
            report.add("unsent", f"{tablet.name} still has {len(tablet.outbox)} op(s) in its outbox")
    report.stats["records compared"] = sum(len(t.replica) for t in evidence.tablets)


def _check_scope(evidence: Evidence, report: Report) -> None:
    """Nothing outside the member's scope, on a tablet or in the server's own view of that scope."""
    holders = [(t.name, t.member_id, t.replica) for t in evidence.tablets]
    holders += [(f"server view of {member}", member, view) for member, view in evidence.server_views.items()]
    for name, member, records in holders:
        for key, record in records.items():
            data = record["data"] or {}
            entity = key[0]
            if entity == "task":
                owner = data.get("member_id")
            elif entity == "review":
                continue  # addressed to the visit's author, in scope or not (the protocol says so)
            else:
                owner = evidence.pairings.get(household_of(key, data), "unknown household")
            if owner != member:
                report.add("out_of_scope", f"{name} holds {entity} {key[1]}, which belongs to {owner}")
    for member, view in evidence.server_views.items():
        paired = {h for h, m in evidence.pairings.items() if m == member}
        for household_id in sorted(paired - {key[1] for key in view if key[0] == "household"}):
            report.add("missing", f"household {household_id} is paired with {member} but not in its scope's pull")
    # a household's records live in one member's scope at a time
    seen: dict[Key, list[str]] = defaultdict(list)
    for member, view in evidence.server_views.items():
        for key in view:
            if key[0] != "review":
                seen[key].append(member)
    for key, members in seen.items():
        if len(members) > 1:
            report.add("out_of_scope", f"{key[0]} {key[1]} is in the scopes of {len(members)} members")


def _check_ops(evidence: Evidence, report: Report) -> None:
    """Every op recorded got an answer, one meaning for all of its answers, and rejected ones are kept."""
    statuses: Counter[str] = Counter()
    rejected: dict[str, dict] = {}
    for op_id, op in evidence.recorded.items():
        answers = evidence.answers.get(op_id, [])
        if not answers:
            report.add("unanswered", f"op {op_id} ({op['entity']} {op['action']}) was never answered")
            continue
        outcomes = {(a["status"] == "rejected", a.get("version") if a["status"] != "rejected"
                     else (a.get("error") or {}).get("code")) for a in answers}
        if len(outcomes) > 1:
            report.add("duplicated_op", f"op {op_id} ({op['entity']} {op['action']}) was answered "
                                        f"{sorted(map(str, outcomes))}: applied more than once or inconsistently")
        first = answers[0]
        statuses[first["status"]] += 1
        if first["status"] == "rejected":
            rejected[op_id] = op
            code = (first.get("error") or {}).get("code")
            if code not in EXPECTED_REJECTIONS:
                report.add("unexpected_rejection", f"op {op_id} ({op['entity']} {op['action']}) rejected: {code}")
    for op_id in evidence.answers.keys() - evidence.recorded.keys():
        report.add("unknown_op", f"an answer came for op {op_id}, which no tablet recorded")
    held: Counter[str] = Counter()
    if evidence.quarantine is not None:
        held = Counter(q["op_id"] for q in evidence.quarantine if q["op_id"] in evidence.recorded)
        for op_id in rejected:
            if held[op_id] == 0:
                report.add("lost", f"rejected op {op_id} is not in quarantine")
        for op_id, count in held.items():
            if count > 1:
                report.add("duplicated_op", f"op {op_id} is in quarantine {count} times")
            if op_id not in rejected and evidence.answers.get(op_id):
                status = evidence.answers[op_id][0]["status"]
                report.add("duplicated_op", f"op {op_id} is in quarantine but was answered {status}")
    report.stats["ops recorded"] = len(evidence.recorded)
    report.stats["ops found in quarantine"] = -1 if evidence.quarantine is None else sum(held.values())
    for status, count in statuses.items():
        report.stats[f"ops {status}"] = count
    report.stats["ops answered more than once"] = sum(1 for a in evidence.answers.values() if len(a) > 1)


def _check_records_accounted(evidence: Evidence, report: Report) -> None:
    """Every record in a scope was made by exactly one acknowledged create, or outside the tablets."""
    created = Counter()
    for op_id, op in evidence.recorded.items():
        answers = evidence.answers.get(op_id, [])
        if op["action"] == "create" and answers and answers[0]["status"] != "rejected":
            created[(op["entity"], op["id"])] += 1
    for key, count in created.items():
        if count > 1:
            report.add("duplicate_record", f"{key[0]} {key[1]} was created by {count} acknowledged ops")
    for member, view in evidence.server_views.items():
        for key in view:
            if key[0] in ("task", "review"):
                continue
            if key not in created and key not in evidence.known_records:
                report.add("duplicate_record", f"{key[0]} {key[1]} in {member}'s scope was made by no known op")


def _check_feedback(evidence: Evidence, report: Report) -> None:
    """Each resolved request's deliver_feedback task reached a tablet of the member it is addressed to.

    An open task follows its household to a new member; a done one stays with the member who delivered it.
    """
    if evidence.resolved_requests is None:
        report.stats["feedback loop"] = -1  # not checked: the server has no resolve route yet
        return
    for request_id, household_id in evidence.resolved_requests.items():
        addressed = {(rec["data"] or {}).get("member_id")
                     for view in evidence.server_views.values() for key, rec in view.items()
                     if key[0] == "task" and (rec["data"] or {}).get("request_id") == request_id
                     and (rec["data"] or {}).get("kind") == "deliver_feedback"}
        if not addressed:
            if evidence.pairings.get(household_id) in evidence.server_views:
                report.add("feedback_missing", f"request {request_id} was resolved but no member's scope "
                                               "holds its deliver_feedback task")
            continue
        for member in addressed:
            if not any(t.member_id == member and any(
                    key[0] == "task" and (rec["data"] or {}).get("request_id") == request_id
                    for key, rec in t.replica.items()) for t in evidence.tablets):
                report.add("feedback_missing", f"request {request_id}'s deliver_feedback task is addressed to "
                                               f"{member}, but no tablet of that member holds it")
    report.stats["feedback loop"] = len(evidence.resolved_requests)


def _check_photos(evidence: Evidence, report: Report) -> None:
    """Every photo a tablet recorded reached the server whole; its author reads back the same bytes
    wherever the author's scope holds a record that refers to it (and only there); no record, on a
    tablet or in the server's views, still lists a file as missing."""
    if evidence.photos is None:
        report.stats["photos recorded"] = -1  # not checked: the server has no attachments
        return
    fetched = 0
    for photo in evidence.photos:
        if not photo.held:
            report.add("photo_not_held", f"{photo.tablet} recorded {photo.sha256} ({photo.state_on_tablet} on the "
                                         "tablet), but the server does not hold it whole")
        view = evidence.server_views.get(photo.member_id, {})
        referred = any(photo.sha256 in _attachment_hashes(record["data"]) for record in view.values())
        if referred and photo.fetched_sha256 != photo.sha256:
            got = "a refusal" if photo.fetched_sha256 is None else f"other bytes ({photo.fetched_sha256})"
            report.add("photo_unreadable", f"{photo.tablet}'s {photo.sha256} is referred to in its scope, "
                                           f"but reading it back gave {got}")
        elif not referred and photo.fetched_sha256 is not None:
            report.add("photo_leaked", f"{photo.tablet} could read {photo.sha256}, which no record in its "
                                       "member's scope refers to")
        fetched += photo.fetched_sha256 == photo.sha256
    holders = [(t.name, t.replica) for t in evidence.tablets]
    holders += [(f"server view of {member}", view) for member, view in evidence.server_views.items()]
    for name, records in holders:
        for key, record in sorted(records.items()):
            missing = (record["data"] or {}).get("missing_attachments") or []
            if missing:
                report.add("photo_missing", f"{name}: {key[0]} {key[1]} still lists {len(missing)} attachment(s) "
                                            f"as missing: {missing}")
    report.stats["photos recorded"] = len(evidence.photos)
    report.stats["photos read back"] = fetched


def _attachment_hashes(data: dict | None) -> set[str]:
    return {ref.get("sha256") for ref in (data or {}).get("attachments") or () if isinstance(ref, dict)}
