"""Compiled loaders and dumpers answer exactly what marshmallow answers, on valid and invalid input alike.

The inputs are generated from the schemas' own fields (their classes, options and validators), so a field
added to a schema is covered without touching this file.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid
from types import SimpleNamespace

import marshmallow as ma
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import fields, validate

from bench.workload import op, visit_data
from schemas import base, entities
from schemas.compiled import compile_dumper, compile_loader
from schemas.entities import DATA_SCHEMAS, RECORD_SCHEMAS, AttachmentRef, Location
from schemas.sync import ClientInfo, OpSchema, PushEnvelope
from sync import models

LOAD_SCHEMAS = {**DATA_SCHEMAS, "op": OpSchema, "location": Location, "attachment_ref": AttachmentRef,
                "client_info": ClientInfo, "push_envelope": PushEnvelope}
MODELS = {"household": models.Household, "resident": models.Resident, "visit": models.Visit,
          "assistance_log": models.AssistanceLog, "request": models.Request, "request_event": models.RequestEvent,
          "task": models.Task, "review": models.Review}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def exact(value):
    """A form of a value that tells apart what ``==`` does not: types, key order, offsets, NaN."""
    if isinstance(value, dict):
        return ("dict", [(exact(k), exact(v)) for k, v in value.items()])
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [exact(v) for v in value])
    if isinstance(value, float):
        return ("float", repr(value))
    if isinstance(value, dt.datetime):
        return ("datetime", value.isoformat(), repr(value.tzinfo))
    return (type(value).__name__, value)


def load_outcome(load, data, partial):
    try:
        return "loaded", exact(load(data, partial=partial))
    except ma.ValidationError as error:
        return "invalid", error.messages
    except Exception as error:  # noqa: BLE001 - whatever marshmallow raises, the compiled loader must too
        return "raised", type(error).__name__, str(error)


def dump_outcome(dump, obj):
    try:
        return "dumped", exact(dump(obj))
    except Exception as error:  # noqa: BLE001
        return "raised", type(error).__name__, str(error)


# --- inputs, from the fields --------------------------------------------------------------------------------

# Valid text has no NUL and no lone surrogate (a surrogate in observations makes the schema's own check
# raise UnicodeEncodeError: compared below as junk, never expected to load).
VALID_CHARACTERS = st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
SAFE_TEXT = st.text(VALID_CHARACTERS, max_size=12)
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
JUNK = st.recursive(JSON_SCALARS | st.just(b"bytes"),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                    max_leaves=6)
SAFE_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | SAFE_TEXT,
                         lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SAFE_TEXT, inner, max_size=3),
                         max_leaves=8)
OFFSETS = st.just(dt.timezone.utc) | st.builds(
    lambda minutes: dt.timezone(dt.timedelta(minutes=minutes)), st.integers(-23 * 60 - 59, 23 * 60 + 59))
# Offsets with seconds and microseconds: ISO 8601 has no such thing, but Python writes and reads them.
ODD_OFFSETS = st.builds(dt.timezone, st.timedeltas(min_value=-dt.timedelta(hours=23, minutes=59),
                                                   max_value=dt.timedelta(hours=23, minutes=59)))
ISO_SPELLINGS = [
    lambda d: d.isoformat(),
    lambda d: d.isoformat().removesuffix("+00:00") + "Z" if d.isoformat().endswith("+00:00") else d.isoformat(),
    lambda d: d.isoformat(sep=" "),
    lambda d: d.isoformat(timespec="minutes"),
    lambda d: d.isoformat(timespec="milliseconds"),
    lambda d: d.strftime("%Y%m%dT%H%M%S%z"),
]


def _validators(field, kind):
    return [v for v in field.validators if isinstance(v, kind)]


def _bounds(field, kind, default_min, default_max):
    low, high = default_min, default_max
    for v in _validators(field, kind):
        low = v.min if v.min is not None else low
        high = v.max if v.max is not None else high
    return low, high


def valid_value(field) -> st.SearchStrategy:
    """Values the field accepts (None excluded)."""
    if isinstance(field, base.UUIDStr):
        spellings = st.sampled_from([str, lambda u: str(u).upper(), lambda u: u.hex, lambda u: "{%s}" % u,
                                     lambda u: f"urn:uuid:{u}"])
        return st.builds(lambda spell, u: spell(u), spellings, st.uuids())
    if isinstance(field, base.DateTimeTZ):
        moments = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 12, 31, 23, 59),
                               timezones=OFFSETS)
        return st.builds(lambda spell, d: spell(d), st.sampled_from(ISO_SPELLINGS), moments)
    if isinstance(field, base.StrList):
        return st.lists(st.sampled_from(["a", "b", "楼道灯"]) | SAFE_TEXT, max_size=base.MAX_LIST)
    if isinstance(field, fields.List):
        return st.lists(valid_value(field.inner), max_size=3)
    if isinstance(field, fields.Nested):
        return valid_data(type(field.schema))
    if isinstance(field, fields.String):
        one_of = _validators(field, validate.OneOf)
        if one_of:
            return st.sampled_from(list(one_of[0].choices))
        regexp = _validators(field, validate.Regexp)
        if regexp:
            return st.from_regex(regexp[0].regex, fullmatch=True)
        if entities.PHONE in field.validators:
            return st.from_regex(r"\+?[0-9]{7,15}", fullmatch=True)
        low, high = _bounds(field, validate.Length, 0, base.SHORT)
        return st.text(VALID_CHARACTERS, min_size=low, max_size=min(high, 30)) | st.just("x" * high)
    if isinstance(field, fields.Boolean):
        return st.booleans()
    if isinstance(field, fields.Integer):
        low, high = _bounds(field, validate.Range, -(2**63), 2**63)
        return st.integers(low, high)
    if isinstance(field, fields.Float):
        low, high = _bounds(field, validate.Range, -1e300, 1e300)
        return st.floats(low, high) | st.integers(int(low), int(high))
    if isinstance(field, fields.Dict):
        return st.dictionaries(SAFE_TEXT, SAFE_JSON, max_size=4)
    return SAFE_JSON.filter(lambda value: value is not None)


def invalid_value(field) -> st.SearchStrategy:
    """Values the field refuses, or that only marshmallow's own code should judge."""
    if isinstance(field, base.UUIDStr):
        return st.uuids().map(lambda u: str(u)[:-1]) | st.uuids().map(lambda u: f"{u}\x00") | SAFE_TEXT
    if isinstance(field, base.DateTimeTZ):
        naive = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2200, 1, 1)).map(
            dt.datetime.isoformat)
        far = st.datetimes(timezones=OFFSETS).filter(lambda d: not 1900 <= d.year <= 2200).map(dt.datetime.isoformat)
        odd = st.builds(lambda spell, d: spell(d), st.sampled_from(ISO_SPELLINGS), st.datetimes(timezones=ODD_OFFSETS))
        return naive | far | odd | st.sampled_from(
            ["2026-11-05", "2026-11-05T25:00:00Z", "2026-11-05T09:54:00+08:00\x00", "yesterday", "",
             "2026-W45-4T10:00Z", "2026-11-05T09:54:00+24:00"]) | st.integers() | SAFE_TEXT
    if isinstance(field, base.StrList):
        return (st.lists(SAFE_TEXT, min_size=base.MAX_LIST + 1, max_size=base.MAX_LIST + 5)
                | st.lists(st.sampled_from(["a", "a", "b"]), min_size=base.MAX_LIST + 1, max_size=base.MAX_LIST + 3)
                | st.lists(JUNK | st.just("nul\x00") | st.just("x" * (base.SHORT + 1)), min_size=1, max_size=3)
                | st.tuples(SAFE_TEXT) | SAFE_TEXT)
    if isinstance(field, fields.List):
        return (st.lists(JUNK | invalid_value(field.inner), min_size=1, max_size=3)
                | st.lists(valid_value(field.inner), min_size=base.MAX_LIST + 1, max_size=base.MAX_LIST + 1)
                | st.tuples(valid_value(field.inner)) | SAFE_TEXT)
    if isinstance(field, fields.Nested):
        return any_data(type(field.schema)) | st.lists(valid_data(type(field.schema)), max_size=1)
    if isinstance(field, fields.String):
        low, high = _bounds(field, validate.Length, 0, base.SHORT)
        return (SAFE_TEXT.map(lambda s: s + "\x00") | st.just("x" * (high + 1)) | st.just("")
                | st.just(b"bytes") | st.integers() | SAFE_TEXT)
    if isinstance(field, fields.Boolean):
        return st.sampled_from([0, 1, "true", "false", 1.0, "yes"])
    if isinstance(field, fields.Integer):
        low, high = _bounds(field, validate.Range, None, None)
        outside = [v for v in (low - 1 if low is not None else None, high + 1 if high is not None else None)
                   if v is not None]
        return (st.sampled_from([*outside, True, False, 1.0, 2.5, "7", 10**30]) | st.floats() | st.text(max_size=3))
    if isinstance(field, fields.Float):
        return st.sampled_from([float("nan"), float("inf"), -float("inf"), 1e308 * 10, 10**400, True, "1.5",
                                -1000, 1000])
    if isinstance(field, fields.Dict):
        return (st.dictionaries(SAFE_TEXT, st.just("nul\x00"), min_size=1, max_size=2)
                | st.just({"big": "x" * entities.OBSERVATIONS_MAX_BYTES})
                | st.lists(SAFE_JSON, max_size=2) | SAFE_TEXT)
    return JUNK


def any_value(field) -> st.SearchStrategy:
    return st.one_of(valid_value(field), invalid_value(field), JUNK)


_STRATEGIES: dict[tuple[type, str], st.SearchStrategy] = {}


def _cached(schema_cls, kind, build):
    if (schema_cls, kind) not in _STRATEGIES:
        _STRATEGIES[schema_cls, kind] = st.deferred(lambda: build(schema_cls))
    return _STRATEGIES[schema_cls, kind]


def _keyed_fields(schema_cls):
    return [(f.data_key or name, f) for name, f in schema_cls().load_fields.items()]


def valid_data(schema_cls) -> st.SearchStrategy:
    """Input the schema accepts: every required field, any of the others, None where allowed."""
    def build(cls):
        required, optional = {}, {}
        for key, f in _keyed_fields(cls):
            value = valid_value(f) | st.none() if f.allow_none else valid_value(f)
            (required if f.required else optional)[key] = value
        return st.fixed_dictionaries(required, optional=optional)
    return _cached(schema_cls, "valid", build)


def any_data(schema_cls) -> st.SearchStrategy:
    """Any of the schema's keys with any value, and sometimes keys it does not know."""
    def build(cls):
        known = st.fixed_dictionaries({}, optional={key: any_value(f) | st.none() for key, f in _keyed_fields(cls)})
        unknown = st.dictionaries(st.sampled_from(["zzz", "id", "version", "created_at", ""]), JUNK, max_size=2)
        return st.builds(lambda a, b: {**a, **b}, known, unknown | st.just({}))
    return _cached(schema_cls, "any", build)


def one_fault(schema_cls) -> st.SearchStrategy:
    """Valid input with one thing wrong: a bad value, a missing key, an unknown key or a None."""
    keyed = _keyed_fields(schema_cls)

    @st.composite
    def build(draw):
        data = dict(draw(valid_data(schema_cls)))
        key, f = draw(st.sampled_from(keyed))
        fault = draw(st.sampled_from(["value", "missing", "unknown", "none"]))
        if fault == "value":
            data[key] = draw(invalid_value(f))
        elif fault == "missing":
            data.pop(key, None)
        elif fault == "unknown":
            data[draw(st.sampled_from(["zzz", "id", "author_id"]))] = draw(JUNK)
        else:
            data[key] = None
        return data
    return build()


def load_input(schema_cls) -> st.SearchStrategy:
    return st.one_of(valid_data(schema_cls), one_fault(schema_cls), any_data(schema_cls), JUNK)


# --- loaders ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(LOAD_SCHEMAS))
@SETTINGS
@given(data=st.data(), partial=st.booleans())
def test_compiled_loader_answers_what_marshmallow_answers(name, data, partial):
    schema_cls = LOAD_SCHEMAS[name]
    raw = data.draw(load_input(schema_cls), label="input")
    compiled = compile_loader(schema_cls)
    assert load_outcome(compiled.load, raw, partial) == load_outcome(schema_cls().load, raw, partial)


@pytest.mark.parametrize("name", sorted(LOAD_SCHEMAS))
@SETTINGS
@given(data=st.data(), partial=st.booleans())
def test_valid_input_takes_the_compiled_path(name, data, partial):
    """On valid input the compiled function answers by itself (the speed is there, not in the fallback)."""
    schema_cls = LOAD_SCHEMAS[name]
    raw = data.draw(valid_data(schema_cls), label="input")
    expected = schema_cls().load(raw, partial=partial)
    assert exact(compile_loader(schema_cls).fast_load(raw, partial)) == exact(expected)


@pytest.mark.parametrize("schema_cls", [*LOAD_SCHEMAS.values()], ids=[*LOAD_SCHEMAS])
def test_every_sync_schema_compiles(schema_cls):
    loader = compile_loader(schema_cls)
    assert loader.fallback_reason is None and loader.fast_load is not None, loader


def test_a_visit_op_from_the_benchmark_loads_the_same():
    rng = random.Random(7)
    data = visit_data(str(uuid.uuid4()), rng)
    raw_op = op("visit", str(uuid.uuid4()), "create", data, None)
    loaded_op = compile_loader(OpSchema).fast_load(raw_op, False)
    assert exact(loaded_op) == exact(OpSchema().load(raw_op))
    loaded = compile_loader(entities.VisitData).fast_load(loaded_op["data"], False)
    assert exact(loaded) == exact(entities.VisitData().load(data))
    assert loaded["visited_at"].tzinfo is dt.timezone.utc
    assert loaded["visited_at"] == dt.datetime.fromisoformat(data["visited_at"])


@pytest.mark.parametrize("value, messages", [
    (True, {"duration_minutes": ["Not a valid integer."]}),
    (30.0, {"duration_minutes": ["Not a valid integer."]}),
    (24 * 60 + 1, {"duration_minutes": ["Must be greater than or equal to 0 and less than or equal to 1440."]}),
])
def test_an_invalid_value_gets_marshmallows_messages(value, messages):
    raw = {"household_id": str(uuid.uuid4()), "visited_at": "2026-11-05T09:54:00+08:00", "kind": "routine",
           "duration_minutes": value}
    with pytest.raises(ma.ValidationError) as caught:
        compile_loader(entities.VisitData).load(raw)
    assert caught.value.messages == messages


def test_a_naive_time_and_an_unknown_key_are_refused_as_marshmallow_refuses_them():
    raw = {"op_id": str(uuid.uuid4()), "entity": "visit", "id": str(uuid.uuid4()), "action": "update",
           "base_version": 1, "recorded_at": "2026-11-28T15:02:00", "data": {}, "extra": 1}
    with pytest.raises(ma.ValidationError) as caught:
        compile_loader(OpSchema).load(raw)
    assert caught.value.messages == {"recorded_at": ["Must carry a UTC offset (e.g. +08:00 or Z)."],
                                     "extra": ["Unknown field."]}


def test_a_partial_update_loads_only_what_was_sent_and_dedupes_tags():
    loader = compile_loader(entities.HouseholdData)
    raw = {"tags": ["独居", "低保", "独居"], "phone": None}
    assert loader.fast_load(raw, True) == {"phone": None, "tags": ["独居", "低保"]}
    with pytest.raises(ma.ValidationError) as caught:
        loader.load(raw, partial=False)
    assert set(caught.value.messages) == {"area_id", "address"}


class _WithHook(base.BaseSchema):
    start = fields.Integer(required=True)
    end = fields.Integer(required=True)

    @ma.validates_schema
    def _ordered(self, data, **kwargs):
        if data["end"] < data["start"]:
            raise ma.ValidationError("end before start", "end")


class _Shout(fields.String):
    """A field class the compiler does not know."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).upper()

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else value.lower()


class _Options(base.BaseSchema):
    """data_key, attribute, defaults, load_only, a field class the compiler does not know, Function, Method."""

    title = _Shout(data_key="Title", attribute="heading", validate=validate.Length(max=5))
    count = base.Int(load_default=lambda: 3, dump_default=0)
    secret = fields.String(load_only=True)
    stamp = base.DateTimeTZ(allow_none=True, load_default=None)
    doubled = fields.Function(lambda obj: obj.count * 2)
    label = fields.Method("make_label")
    where = fields.Nested(Location, allow_none=True)

    def make_label(self, obj):
        return f"#{obj.count}"


def test_a_schema_with_hooks_is_left_to_marshmallow():
    loader = compile_loader(_WithHook)
    assert loader.fast_load is None and "validates_schema" in loader.fallback_reason
    assert loader.load({"start": 1, "end": 2}) == {"start": 1, "end": 2}
    with pytest.raises(ma.ValidationError) as caught:
        loader.load({"start": 2, "end": 1})
    assert caught.value.messages == {"end": ["end before start"]}


@pytest.mark.parametrize("raw", [
    {"Title": "abc", "secret": "s", "stamp": "2026-11-05T09:54:00+08:00", "where": {"lat": 1, "lng": 2.5}},
    {"Title": "abc"},
    {"Title": "abcdef"},
    {"title": "abc"},
    {"Title": "abc", "count": True},
    {"Title": "abc", "where": {"lat": 100, "lng": 0}},
])
@pytest.mark.parametrize("partial", [False, True])
def test_keys_attributes_defaults_and_unknown_field_classes(raw, partial):
    assert load_outcome(compile_loader(_Options).load, raw, partial) == load_outcome(_Options().load, raw, partial)


def test_the_unknown_field_class_is_called_on_the_compiled_path():
    loaded = compile_loader(_Options).fast_load({"Title": "abc"}, False)
    assert loaded == {"heading": "ABC", "count": 3, "stamp": None}


# --- dumpers ------------------------------------------------------------------------------------------------


class Plain:
    """An object with a __dict__ and ordinary attribute access (compiled to read the __dict__)."""

    def __init__(self, **attributes):
        self.__dict__.update(attributes)


class WithProperty(Plain):
    """A property wins over the instance's __dict__, as getattr has it."""

    @property
    def kind(self):
        return "from the property"

    @property
    def version(self):
        raise AttributeError("not there")


def dump_value(field) -> st.SearchStrategy:
    if isinstance(field, base.DateTimeTZ):
        return st.datetimes(min_value=dt.datetime(1900, 1, 2), max_value=dt.datetime(2200, 1, 1),
                            timezones=OFFSETS) | st.datetimes(min_value=dt.datetime(1900, 1, 2))
    if isinstance(field, fields.List):
        return st.lists(dump_value(field.inner) | st.none(), max_size=3)
    if isinstance(field, fields.Nested):
        return dump_object(type(field.schema))
    if isinstance(field, fields.String):
        return SAFE_TEXT | st.text(max_size=4) | st.uuids() | st.integers()
    if isinstance(field, fields.Boolean):
        return st.booleans() | st.integers(0, 2)
    if isinstance(field, fields.Integer):
        return st.integers() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False) | st.just("12")
    if isinstance(field, fields.Float):
        return st.floats() | st.integers(-1000, 1000)
    if isinstance(field, fields.Dict):
        return st.dictionaries(SAFE_TEXT, SAFE_JSON, max_size=3)
    return SAFE_JSON


def dump_attributes(schema_cls) -> st.SearchStrategy:
    def build(cls):
        optional = {}
        for name, f in cls().dump_fields.items():
            optional[f.attribute or name] = dump_value(f) | st.none()
        return st.fixed_dictionaries({}, optional=optional)
    return _cached(schema_cls, "dump", build)


def dump_object(schema_cls) -> st.SearchStrategy:
    """The same attributes as a dict, a SimpleNamespace, a plain object or one with properties."""
    return st.builds(lambda make, attributes: make(attributes),
                     st.sampled_from([dict, lambda a: SimpleNamespace(**a), lambda a: Plain(**a),
                                      lambda a: WithProperty(**a)]),
                     dump_attributes(schema_cls))


def orm_object(model, attributes: dict):
    """A transient ORM object with the attributes that can be set (not the read-only properties)."""
    record = model()
    for name, value in attributes.items():
        if not isinstance(getattr(model, name, None), property):
            setattr(record, name, value)
    return record


@pytest.mark.parametrize("entity", sorted(RECORD_SCHEMAS))
@SETTINGS
@given(data=st.data())
def test_compiled_dumper_answers_what_marshmallow_answers(entity, data):
    schema_cls = RECORD_SCHEMAS[entity]
    dumper = compile_dumper(schema_cls)
    assert dumper.fallback_reason is None
    obj = data.draw(dump_object(schema_cls), label="object")
    assert dump_outcome(dumper.dump, obj) == dump_outcome(schema_cls().dump, obj)
    record = orm_object(MODELS[entity], data.draw(dump_attributes(schema_cls), label="record"))
    assert dump_outcome(dumper.dump, record) == dump_outcome(schema_cls().dump, record)


def test_a_visit_record_dumps_the_same_from_the_orm():
    now = dt.datetime(2026, 12, 1, 1, 2, 3, 456789, tzinfo=dt.timezone.utc)
    visit = models.Visit(id=str(uuid.uuid4()), household_id=str(uuid.uuid4()), version=2, created_at=now,
                         updated_at=now, visited_at=dt.datetime(2026, 11, 5, 9, 54, tzinfo=dt.timezone(
                             dt.timedelta(hours=8))), kind="routine", summary="ok",
                         observations={"mood": "calm"}, duration_minutes=20, location={"lat": 31.2, "lng": 121.4},
                         attachments=[{"sha256": "a" * 64, "mime": "image/jpeg", "name": None}],
                         review_state="pending")
    dumped = compile_dumper(entities.VisitRecord).dump(visit)
    assert exact(dumped) == exact(entities.VisitRecord().dump(visit))
    assert dumped["visited_at"] == "2026-11-05T01:54:00Z"
    assert dumped["missing_attachments"] == ["a" * 64]


def test_a_household_without_its_pairing_read_omits_member_id():
    household = models.Household(id=str(uuid.uuid4()), address="1 Road", tags=["a"])
    dumped = compile_dumper(entities.HouseholdRecord).dump(household)
    assert "member_id" not in dumped and dumped == entities.HouseholdRecord().dump(household)
    household.member_id = None
    assert compile_dumper(entities.HouseholdRecord).dump(household)["member_id"] is None


@pytest.mark.parametrize("obj", [
    Plain(heading="Abc", count=2, secret="s", stamp=None, where={"lat": 1.0, "lng": 2}),
    SimpleNamespace(heading=None, count=5, where=None),
    Plain(count=1),
])
def test_dump_keys_attributes_defaults_functions_and_methods(obj):
    dumped = compile_dumper(_Options).dump(obj)
    assert exact(dumped) == exact(_Options().dump(obj))
    assert "secret" not in dumped and dumped["label"] == f"#{obj.count}"
