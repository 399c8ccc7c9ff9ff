"""Compiled loaders and dumpers: marshmallow's results for the sync hot paths, in a fraction of the time.

``compile_loader(Schema)`` and ``compile_dumper(Schema)`` read a schema's fields (their classes, options and
validators) and write one plain Python function for it, so the field list stays in the schema alone::

    visit_loader = compile_loader(VisitData)
    visit_loader.load(raw, partial=False)      # == VisitData().load(raw, partial=False)
    record_dumper = compile_dumper(VisitRecord)
    record_dumper.dump(visit)                  # == VisitRecord().dump(visit)

Why this is faster: marshmallow decides everything on every call (which fields, which options, one closure
and one ``And`` validator per field, an error store, hooks). The compiled function has those decisions made
once, as straight-line code that checks each value's type and calls the field's own validators.

Why it answers the same:
- The loader's own code accepts only what it is sure of: exact JSON types (``str``, ``int``, ``float``,
  ``bool``, ``dict``, ``list``), the known field classes, and the field's validators passing. Anything
  else (a wrong type, a failing validator, an unknown key, a field class it does not know how to
  inline, partial given as a list of names) makes it decline, and ``load`` then calls marshmallow itself,
  which returns its result or raises its ``ValidationError`` with its own messages.
- The dumper never declines: it writes out the steps of marshmallow's ``dump`` (read the attribute, apply
  ``dump_default``, omit what is missing, serialize), so what it cannot inline it calls.
- Rules are not written twice: where a field class has a rule of its own (``DateTimeTZ``'s offset, range
  and ``Z`` spelling, ``UUIDStr``'s canonical form beyond the already canonical spelling, ``Boolean``), the
  compiled code calls that field's own ``_deserialize``/``_serialize``; every validator is the field's own
  object, called as marshmallow's ``And`` calls it.
- A field whose class overrides ``deserialize``/``serialize`` (or has ``pre_load``/``post_load``
  functions, or is a ``Method``/``Function`` field) is called through its public method, exactly as
  marshmallow's schema calls it. A schema with hooks, ``many``, ``unknown=INCLUDE``, another
  ``dict_class`` or overridden schema methods is not compiled at all: ``load``/``dump`` call marshmallow
  (``fallback_reason`` says why).

Compile once per schema (at import): each compile writes and keeps new code.

``tests/unit/test_compiled_schemas.py`` checks the equality with Hypothesis on valid and invalid inputs for
every sync schema; ``python -m bench.schemas_speed`` measures the gain.
"""
from __future__ import annotations

import contextlib
import itertools
import linecache
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import marshmallow as ma
from marshmallow import fields
from marshmallow.decorators import POST_DUMP, POST_LOAD, PRE_DUMP, PRE_LOAD, VALIDATES, VALIDATES_SCHEMA
from marshmallow.utils import get_value, set_value
from sqlalchemy.orm.attributes import InstrumentedAttribute

from . import base

MISSING = ma.missing

__all__ = ["Dumper", "Loader", "compile_dumper", "compile_loader"]


class _Declined(Exception):
    """The compiled code is not sure about this input: marshmallow decides."""


# str(uuid.UUID(text)) == text for exactly this spelling, so it needs no parsing.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").fullmatch

# A marshmallow schema method that a subclass overrides could change anything: such a schema is not compiled.
_LOAD_METHODS = ("load", "_do_load", "_deserialize", "_invoke_field_validators", "_invoke_schema_validators",
                 "_invoke_load_processors", "_call_and_store")
_DUMP_METHODS = ("dump", "_serialize", "get_attribute", "_invoke_dump_processors")

_counter = itertools.count()


class _Source:
    """One generated function: its lines, and the objects its code refers to by name."""

    def __init__(self, function_name: str, arguments: str):
        self.function_name = function_name
        self.lines = [f"def {function_name}({arguments}):"]
        self.namespace: dict[str, Any] = {"MISSING": MISSING, "Declined": _Declined}
        self._depth = 1
        self._names = itertools.count()

    def line(self, text: str) -> None:
        self.lines.append("    " * self._depth + text)

    @contextlib.contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.line(header)
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def name(self, hint: str) -> str:
        """A fresh local or global name, readable in the generated source."""
        return f"{re.sub(r'[^0-9a-zA-Z_]', '_', hint)}_{next(self._names)}"

    def const(self, obj: Any, hint: str) -> str:
        name = self.name(hint)
        self.namespace[name] = obj
        return name

    def build(self) -> tuple[Callable, str]:
        source = "\n".join(self.lines) + "\n"
        # A file name of its own, registered with linecache, so a traceback through the code shows its lines.
        filename = f"<compiled {self.function_name} #{next(_counter)}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        exec(compile(source, filename, "exec"), self.namespace)
        return self.namespace[self.function_name], source


def _schema_instance(schema: type[ma.Schema] | ma.Schema) -> ma.Schema:
    return schema if isinstance(schema, ma.Schema) else schema()


def _overridden(obj: Any, names: tuple[str, ...], base_class: type) -> list[str]:
    return [name for name in names if getattr(type(obj), name) is not getattr(base_class, name)]


# --- loaders -------------------------------------------------------------------------------------------------


class Loader:
    """``load(data, partial=False)``: what ``schema.load(data, partial=partial)`` answers, faster when valid.

    ``fast_load(data, partial)`` is the compiled function alone (``None`` when the schema is not compiled);
    it raises on anything it is not sure of, and is exposed for the tests. ``source`` is its code.
    """

    def __init__(self, schema: ma.Schema, fast_load: Callable | None, source: str | None,
                 fallback_reason: str | None):
        self.schema = schema
        self.fast_load = fast_load
        self.source = source
        self.fallback_reason = fallback_reason

    def load(self, data: Any, partial: Any = False) -> Any:
        if partial is None:
            partial = self.schema.partial
        if self.fast_load is not None and (partial is None or partial is True or partial is False):
            try:
                return self.fast_load(data, partial)
            except Exception:  # declined, or not valid: marshmallow gives the answer and its messages
                pass
        return self.schema.load(data, partial=partial)

    def __repr__(self) -> str:
        state = "compiled" if self.fast_load else f"marshmallow ({self.fallback_reason})"
        return f"<Loader {type(self.schema).__name__}: {state}>"


def compile_loader(schema: type[ma.Schema] | ma.Schema) -> Loader:
    """A `Loader` for a schema class (or a configured instance, whose ``only``/``exclude``/... it keeps)."""
    return _compile_loader(_schema_instance(schema), unknown=None, compiling=())


def _schema_fallback_reason(schema: ma.Schema, hook_tags: tuple[str, ...], methods: tuple[str, ...]) -> str | None:
    """Why a schema is left to marshmallow in one direction: what loaders and dumpers both refuse."""
    if schema.many:
        return "many=True"
    hooks = [tag for tag in hook_tags if schema._hooks[tag]]
    if hooks:
        return "hooks: " + ", ".join(hooks)
    overridden = _overridden(schema, methods, ma.Schema)
    if overridden:
        return "overrides " + ", ".join(overridden)
    if schema.dict_class is not dict:
        return f"dict_class {schema.dict_class.__name__}"
    return None


def _loader_fallback_reason(schema: ma.Schema, unknown: str) -> str | None:
    reason = _schema_fallback_reason(schema, (PRE_LOAD, POST_LOAD, VALIDATES, VALIDATES_SCHEMA), _LOAD_METHODS)
    if reason:
        return reason
    if unknown not in (ma.RAISE, ma.EXCLUDE):
        return f"unknown={unknown}"
    if schema.partial is not None and not isinstance(schema.partial, bool):
        return "partial given as field names"
    return None


def _compile_loader(schema: ma.Schema, unknown: str | None, compiling: tuple[type, ...]) -> Loader:
    unknown = unknown or schema.unknown
    reason = _loader_fallback_reason(schema, unknown)
    if reason is not None:
        return Loader(schema, None, None, reason)
    compiling = (*compiling, type(schema))
    src = _Source(f"load_{type(schema).__name__}", "data, partial")
    with src.block("if data.__class__ is not dict:"):
        src.line("raise Declined")
    if unknown == ma.RAISE:
        known = frozenset(f.data_key if f.data_key is not None else name for name, f in schema.load_fields.items())
        with src.block(f"if not {src.const(known, 'known_keys')}.issuperset(data):"):
            src.line("raise Declined")
    if schema.partial is not None:
        # Schema(partial=...) decides when load() is given partial=None; marshmallow resolves it the same way.
        with src.block("if partial is None:"):
            src.line(f"partial = {schema.partial!r}")
    src.line("out = {}")
    for name, field in schema.load_fields.items():
        _LoadField(src, field, name, compiling).emit()
    src.line("return out")
    function, source = src.build()
    return Loader(schema, function, source, None)


def _plain_deserialize(field: fields.Field) -> bool:
    """True when the field's ``deserialize`` is marshmallow's own: its steps can be written out."""
    cls = type(field)
    return (cls.deserialize is fields.Field.deserialize and cls._validate is fields.Field._validate
            and cls._validate_missing is fields.Field._validate_missing
            and cls._validate_all is fields.Field._validate_all
            and not field.pre_load and not field.post_load)


class _LoadField:
    """Writes the code of one field of a compiled loader, its list items included (a nested schema gets a
    loader of its own, which this code calls)."""

    def __init__(self, src: _Source, field: fields.Field, name: str, compiling: tuple[type, ...]):
        self.src, self.field, self.name, self.compiling = src, field, name, compiling
        self.key = field.data_key if field.data_key is not None else name
        self._nested_loaders: dict[int, Loader | None] = {}

    def emit(self) -> None:
        src, field, key = self.src, self.field, self.key
        src.line(f"# {self.name}: {type(field).__name__}")
        src.line(f"raw = data.get({key!r}, MISSING)")
        if not self._convertible(field):
            # Called the way marshmallow's schema calls it: missing, None, defaults and validators are its own.
            with src.block("if raw is not MISSING or partial is not True:"):
                call = self._deserialize_call(field, "raw", repr(key), "data")
                src.line(f"value = {call}")
                with src.block("if value is not MISSING:"):
                    self._store("value")
            return
        with src.block("if raw is MISSING:"):
            if field.required:
                with src.block("if partial is not True:"):
                    src.line("raise Declined")
            elif field.load_default is MISSING:
                src.line("pass")
            else:
                default = src.const(field.load_default, f"{self.name}_default")
                with src.block("if partial is not True:"):
                    self._store(f"{default}()" if callable(field.load_default) else default)
        with src.block("elif raw is None:"):
            if field.allow_none:
                self._store("None")
            else:
                src.line("raise Declined")
        with src.block("else:"):
            self._convert(field, "raw", "value", repr(key), "data")
            self._store("value")

    def _store(self, expression: str) -> None:
        target = self.field.attribute or self.name
        if "." in target:
            self.src.line(f"{self.src.const(set_value, 'set_value')}(out, {target!r}, {expression})")
        else:
            self.src.line(f"out[{target!r}] = {expression}")

    def _deserialize_call(self, field: fields.Field, value: str, attr: str, data: str) -> str:
        """``field.deserialize(...)``, with ``partial`` passed only when given, as marshmallow does."""
        method = self.src.const(field.deserialize, f"{self.name}_deserialize")
        return (f"{method}({value}, {attr}, {data}) if partial is None "
                f"else {method}({value}, {attr}, {data}, partial=partial)")

    def _convertible(self, field: fields.Field) -> bool:
        return _plain_deserialize(field) and self._converter(field) is not None

    def _converter(self, field: fields.Field) -> Callable[[str, str, str, str], None] | None:
        """The writer of ``field._deserialize`` for a non-None value, or None for a class not known here."""
        cls = type(field)
        own = cls._deserialize
        if own is fields.String._deserialize:
            return self._string
        if own is base.UUIDStr._deserialize:
            return self._uuid
        if own in (base.DateTimeTZ._deserialize, fields.Boolean._deserialize):
            return self._own
        if own is base.Bool._deserialize:
            return self._strict_bool
        if own is fields.Field._deserialize:
            return self._raw
        if own is fields.Number._deserialize and cls._format_num is fields.Number._format_num:
            if field.num_type is int and cls._validated in (fields.Integer._validated, base.StrictInteger._validated):
                return self._integer
            if field.num_type is float and cls._validated is fields.Float._validated:
                return self._float
            return None
        if own is fields.Mapping._deserialize:
            if field.key_field is None and field.value_field is None and field.mapping_type is dict:
                return self._mapping
            return None
        if own is fields.List._deserialize:
            return self._list
        if own is base.StrList._deserialize:
            return self._str_list
        if own is fields.Nested._deserialize:
            return self._nested if self._nested_loader(field) is not None else None
        return None

    def _convert(self, field: fields.Field, raw: str, value: str, attr: str, data: str) -> None:
        """Code turning the non-None ``raw`` into ``value`` and running the field's validators on it."""
        self._converter(field)(field, raw, value, attr, data)
        for validator in field.validators:
            self.src.line(f"{self.src.const(validator, f'{self.name}_validator')}({value})")

    def _require_type(self, raw: str, type_name: str) -> None:
        with self.src.block(f"if {raw}.__class__ is not {type_name}:"):
            self.src.line("raise Declined")

    def _string(self, field, raw, value, attr, data) -> None:
        self._require_type(raw, "str")
        self.src.line(f"{value} = {raw}")

    def _uuid(self, field, raw, value, attr, data) -> None:
        canonical = self.src.const(_CANONICAL_UUID, "canonical_uuid")
        with self.src.block(f"if {raw}.__class__ is str and {canonical}({raw}) is not None:"):
            self.src.line(f"{value} = {raw}")
        with self.src.block("else:"):
            self._own(field, raw, value, attr, data)

    def _own(self, field, raw, value, attr, data) -> None:
        method = self.src.const(field._deserialize, f"{self.name}_own_deserialize")
        self.src.line(f"{value} = {method}({raw}, {attr}, {data})")

    def _strict_bool(self, field, raw, value, attr, data) -> None:
        self._require_type(raw, "bool")
        self.src.line(f"{value} = {raw}")

    def _raw(self, field, raw, value, attr, data) -> None:
        self.src.line(f"{value} = {raw}")

    def _integer(self, field, raw, value, attr, data) -> None:
        # int(x) is x for an int; bool is a class of its own, so True and False decline here.
        self._require_type(raw, "int")
        self.src.line(f"{value} = {raw}")

    def _float(self, field, raw, value, attr, data) -> None:
        src = self.src
        with src.block(f"if {raw}.__class__ is float:"):
            src.line(f"{value} = {raw}")
        with src.block(f"elif {raw}.__class__ is int:"):
            src.line(f"{value} = float({raw})")
        with src.block("else:"):
            src.line("raise Declined")
        if not field.allow_nan:
            with src.block(f"if not {src.const(math.isfinite, 'isfinite')}({value}):"):
                src.line("raise Declined")

    def _mapping(self, field, raw, value, attr, data) -> None:
        self._require_type(raw, "dict")
        self.src.line(f"{value} = dict({raw})")

    def _items(self, field: fields.List, raw: str, items: str) -> None:
        """``items``: each element of the list ``raw`` loaded by the list's inner field."""
        src, inner = self.src, field.inner
        each, loaded = src.name("each"), src.name("loaded")
        src.line(f"{items} = []")
        with src.block(f"for {each} in {raw}:"):
            if not self._convertible(inner):
                # List calls inner.deserialize(each, partial=...) without attr or data.
                method = src.const(inner.deserialize, f"{self.name}_item_deserialize")
                src.line(f"{loaded} = {method}({each}) if partial is None else {method}({each}, partial=partial)")
            else:
                with src.block(f"if {each} is None:"):
                    if inner.allow_none:
                        src.line(f"{loaded} = None")
                    else:
                        src.line("raise Declined")
                with src.block("else:"):
                    self._convert(inner, each, loaded, "None", "None")
            src.line(f"{items}.append({loaded})")

    def _list(self, field, raw, value, attr, data) -> None:
        self._require_type(raw, "list")
        self._items(field, raw, value)

    def _str_list(self, field, raw, value, attr, data) -> None:
        # StrList refuses more than MAX_LIST items before dropping duplicates; those inputs are marshmallow's.
        with self.src.block(f"if {raw}.__class__ is not list or len({raw}) > {base.MAX_LIST}:"):
            self.src.line("raise Declined")
        items = self.src.name("items")
        self._items(field, raw, items)
        self.src.line(f"{value} = list(dict.fromkeys({items}))")

    def _nested_loader(self, field: fields.Nested) -> Loader | None:
        if id(field) not in self._nested_loaders:
            self._nested_loaders[id(field)] = self._compile_nested(field)
        return self._nested_loaders[id(field)]

    def _compile_nested(self, field: fields.Nested) -> Loader | None:
        if type(field.schema) in self.compiling:
            return None  # a schema nested in itself: marshmallow's field handles the recursion
        if field.schema.many or field.many:
            return None
        loader = _compile_loader(field.schema, field.unknown, self.compiling)
        return loader if loader.fast_load is not None else None

    def _nested(self, field, raw, value, attr, data) -> None:
        nested = self.src.const(self._nested_loader(field).fast_load, f"{self.name}_load")
        self.src.line(f"{value} = {nested}({raw}, partial)")


# --- dumpers -------------------------------------------------------------------------------------------------

# How many object classes a dumper writes a function of its own for (ORM models, plain objects); others
# are dumped by the function that reads every attribute with getattr.
_CLASSES_PER_DUMPER = 32


class Dumper:
    """``dump(obj)``: what ``schema.dump(obj)`` answers, for ORM objects, plain objects and dicts.

    marshmallow reads a dict by key (by attribute when the key is absent) and anything else by attribute;
    an object whose class has ``__getitem__`` (other than a plain dict) it reads by key first, so such
    objects are dumped by marshmallow. Each class of object gets a function of its own on its first dump,
    which reads a loaded SQLAlchemy column (or a plain instance attribute) straight from the instance's
    ``__dict__``, the way the attribute itself would.
    """

    def __init__(self, schema: ma.Schema, compiling: tuple[type, ...] = ()):
        self.schema = schema
        self.fallback_reason = _dumper_fallback_reason(schema)
        self._compiling = (*compiling, type(schema))
        self._by_class: dict[type, Callable] = {}
        self._nested: dict[int, Dumper] = {}
        self.from_attributes: Callable | None = None
        self.sources: dict[str, str] = {}
        if self.fallback_reason is None:
            self.from_attributes = self._write(lambda attribute: "getattr", "attributes")
            self._by_class[dict] = self._write(lambda attribute: "key", "dict")

    def dump(self, obj: Any) -> Any:
        try:
            function = self._by_class[obj.__class__]
        except KeyError:
            function = self._for_class(obj.__class__)
        return function(obj)

    def __repr__(self) -> str:
        state = "compiled" if self.from_attributes else f"marshmallow ({self.fallback_reason})"
        return f"<Dumper {type(self.schema).__name__}: {state}>"

    def _for_class(self, cls: type) -> Callable:
        if self.from_attributes is None or hasattr(cls, "__getitem__"):
            return self._remember(cls, self.schema.dump)
        if (len(self._by_class) >= _CLASSES_PER_DUMPER or not cls.__dictoffset__
                or cls.__getattribute__ is not object.__getattribute__):
            return self._remember(cls, self.from_attributes)
        modes = {attribute: _attribute_read(cls, attribute) for attribute in self._attributes()}
        if None in modes.values():
            return self.from_attributes  # a mapper not configured yet: decided again on a later dump
        return self._remember(cls, self._write(modes.__getitem__, cls.__name__))

    def _remember(self, cls: type, function: Callable) -> Callable:
        if len(self._by_class) < _CLASSES_PER_DUMPER:
            self._by_class[cls] = function
        return function

    def _attributes(self) -> list[str]:
        return [field.attribute if field.attribute is not None else name
                for name, field in self.schema.dump_fields.items()]

    def _write(self, read_mode: Callable[[str], str | None], kind: str) -> Callable:
        src = _Source(f"dump_{type(self.schema).__name__}_from_{kind}", "obj")
        if kind not in ("attributes", "dict"):
            src.line("state = obj.__dict__")
        src.line("out = {}")
        for name, field in self.schema.dump_fields.items():
            _DumpField(src, self, field, name, read_mode).emit()
        src.line("return out")
        function, self.sources[kind] = src.build()
        return function


def compile_dumper(schema: type[ma.Schema] | ma.Schema) -> Dumper:
    """A `Dumper` for a schema class (or a configured instance, whose ``only``/``exclude``/... it keeps)."""
    return Dumper(_schema_instance(schema))


def _dumper_fallback_reason(schema: ma.Schema) -> str | None:
    return _schema_fallback_reason(schema, (PRE_DUMP, POST_DUMP), _DUMP_METHODS)


def _attribute_read(cls: type, attribute: str) -> str | None:
    """How ``getattr(obj, attribute)`` can be read for instances of ``cls``: ``"state"`` when the instance's
    ``__dict__`` entry, if there is one, is what getattr answers; ``"getattr"`` otherwise; None while a
    SQLAlchemy attribute is not set up yet."""
    if "." in attribute:
        return "getattr"
    for klass in cls.__mro__:
        if attribute in klass.__dict__:
            found = klass.__dict__[attribute]
            break
    else:
        return "state"  # no class attribute: the instance's own value, else AttributeError
    if not (hasattr(type(found), "__set__") or hasattr(type(found), "__delete__")):
        return "state"  # a plain class attribute or a method: an instance value shadows it
    if isinstance(found, InstrumentedAttribute):
        # InstrumentedAttribute.__get__ answers instance.__dict__[key] when the attribute supports population
        # and is loaded, and loads it otherwise (what getattr does then).
        if found.impl is None:
            return None
        return "state" if found.impl.supports_population and found.key == attribute else "getattr"
    return "getattr"  # a property or another data descriptor decides for itself


def _plain_serialize(field: fields.Field) -> bool:
    """True when the field's ``serialize`` is marshmallow's own and reads the object's attribute."""
    cls = type(field)
    return (cls.serialize is fields.Field.serialize and cls.get_value is fields.Field.get_value
            and field._CHECK_ATTRIBUTE)


class _DumpField:
    """Writes the code of one field of a compiled dumper."""

    def __init__(self, src: _Source, dumper: Dumper, field: fields.Field, name: str,
                 read_mode: Callable[[str], str | None]):
        self.src, self.dumper, self.field, self.name, self.read_mode = src, dumper, field, name, read_mode
        self.key = field.data_key if field.data_key is not None else name

    def emit(self) -> None:
        src, field = self.src, self.field
        src.line(f"# {self.name}: {type(field).__name__}")
        if not _plain_serialize(field):
            method = src.const(field.serialize, f"{self.name}_serialize")
            accessor = src.const(self.dumper.schema.get_attribute, "get_attribute")
            src.line(f"value = {method}({self.name!r}, obj, accessor={accessor})")
            with src.block("if value is not MISSING:"):
                src.line(f"out[{self.key!r}] = value")
            return
        self._read("value")
        if field.dump_default is not MISSING:
            default = src.const(field.dump_default, f"{self.name}_default")
            with src.block("if value is MISSING:"):
                src.line(f"value = {default}()" if callable(field.dump_default) else f"value = {default}")
        with src.block("if value is not MISSING:"):
            src.line(f"out[{self.key!r}] = {self._serialized(field, 'value')}")

    def _read(self, value: str) -> None:
        """``value = marshmallow.utils.get_value(obj, attribute, MISSING)``, written for the kind of object."""
        attribute = self.field.attribute if self.field.attribute is not None else self.name
        mode = self.read_mode(attribute)
        if "." in attribute:
            self.src.line(f"{value} = {self.src.const(get_value, 'get_value')}(obj, {attribute!r}, MISSING)")
        elif mode == "key":
            self.src.line(f"{value} = obj[{attribute!r}] if {attribute!r} in obj "
                          f"else getattr(obj, {attribute!r}, MISSING)")
        elif mode == "state":
            self.src.line(f"{value} = state[{attribute!r}] if {attribute!r} in state "
                          f"else getattr(obj, {attribute!r}, MISSING)")
        else:
            self.src.line(f"{value} = getattr(obj, {attribute!r}, MISSING)")

    def _serialized(self, field: fields.Field, value: str) -> str:
        """An expression: ``field._serialize(value, name, obj)``, with the common cases written out."""
        cls = type(field)
        own = cls._serialize
        call = f"{self.src.const(field._serialize, f'{self.name}_own_serialize')}({value}, {self.name!r}, obj)"
        if own is fields.Field._serialize:
            return value
        if own is fields.String._serialize:
            return f"({value} if {value}.__class__ is str or {value} is None else {call})"
        if own is fields.Number._serialize and not field.as_string and cls._format_num is fields.Number._format_num:
            if field.num_type in (int, float):
                return f"({value} if {value}.__class__ is {field.num_type.__name__} or {value} is None else {call})"
        if own is fields.Mapping._serialize and field.key_field is None and field.value_field is None:
            if field.mapping_type is dict:
                return f"(None if {value} is None else dict({value}))"
        if own is fields.List._serialize:
            each = self.src.name("each")
            return f"(None if {value} is None else [{self._serialized(field.inner, each)} for {each} in {value}])"
        if own is fields.Nested._serialize:
            nested = self._nested_dumper(field)
            if nested is not None:
                return f"(None if {value} is None else {self.src.const(nested.dump, f'{self.name}_dump')}({value}))"
        return call

    def _nested_dumper(self, field: fields.Nested) -> Dumper | None:
        if type(field.schema) in self.dumper._compiling or field.schema.many or field.many:
            return None
        nested = self.dumper._nested.get(id(field))
        if nested is None:
            nested = self.dumper._nested[id(field)] = Dumper(field.schema, self.dumper._compiling)
        return nested if nested.from_attributes is not None else None
