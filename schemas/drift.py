"""Model drift: the pydantic models of :mod:`schemas.models` against the current ``.avsc``.

A reader resolves every message into the *current* version of its entity and hands the
dict to that entity's model. A new BACKWARD-compatible version (say, an optional field
added) therefore changes every decoded record, old or new; if the model was not changed
with it, ``extra="forbid"`` refuses each one and ingest dead-letters 100 % of the feed.
:func:`check_models` finds such drift before it ships: field names, optionality and
defaults, enum symbols and types, each problem naming the entity and field. It is a step
of ``omm schemas check`` and of ``python -m schemas.compat``.

Pure (imports neither Beam nor Kafka).
"""

from __future__ import annotations

import types
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
from pydantic import AwareDatetime, BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from schemas.models import ENTITY_MODELS
from schemas.registry import DEFAULT_ROOT, SchemaLoadError, load_version, scan_versions

__all__ = ["ModelDrift", "check_models"]

_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "long": (int,),
    "int": (int,),
    "double": (float,),
    "float": (float,),
    "boolean": (bool,),
    "bytes": (bytes,),
}
_TIMESTAMPS = ("timestamp-millis", "timestamp-micros")
_INT_MAX = {"int": 2**31 - 1, "long": 2**63 - 1}


@dataclass(frozen=True)
class ModelDrift:
    """One difference between a model and the current schema version of its entity."""

    entity: str
    version: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.entity} v{self.version}"
        if self.field:
            where += f" field '{self.field}'"
        return f"{where}: {self.message}"


def check_models(root: Path | None = None) -> list[ModelDrift]:
    """Compare each feed model with the current version of its entity under ``root``."""
    root = Path(root) if root is not None else DEFAULT_ROOT
    try:
        tree = scan_versions(root)
    except SchemaLoadError:
        return []  # the compatibility check reports an unreadable tree
    out: list[ModelDrift] = []
    for entity, model in ENTITY_MODELS.items():
        if entity not in tree:
            out.append(ModelDrift(entity, 0, None, f"{model.__name__} has no schema in {root}"))
            continue
        n, path = tree[entity][-1]
        try:
            schema = load_version(entity, n, path).schema
        except SchemaLoadError:
            continue  # reported by the compatibility check
        out.extend(ModelDrift(entity, n, f, msg) for f, msg in _record_drift(model, schema, "", {}))
    return out


def _record_drift(
    model: type[BaseModel], schema: Mapping[str, Any], prefix: str, named: dict[str, Any]
) -> Iterator[tuple[str | None, str]]:
    named[str(schema.get("name"))] = schema
    fields = {str(f["name"]): f for f in schema.get("fields", [])}
    model_fields = model.model_fields
    for name, f in fields.items():
        path = prefix + name
        info = model_fields.get(name)
        if info is None:
            yield (
                path,
                f"is in the schema but not in model {model.__name__}: every record would be "
                f"refused as an unknown field; add `{name}` to the model",
            )
            continue
        yield from _field_drift(model, path, f, info, named)
    for name in model_fields:
        if name not in fields:
            yield (
                prefix + name,
                f"is in model {model.__name__} but not in the schema: remove it from the "
                "model, or add it to a new schema version",
            )


def _field_drift(
    model: type[BaseModel],
    path: str,
    f: Mapping[str, Any],
    info: FieldInfo,
    named: dict[str, Any],
) -> Iterator[tuple[str | None, str]]:
    avro_type = f["type"]
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    nullable = "null" in branches
    non_null = [b for b in branches if b != "null"]
    py_types = _flatten(info.annotation)
    model_nullable = type(None) in py_types
    py_non_null = [t for t in py_types if t is not type(None)]
    if nullable != model_nullable:
        want = "optional (null allowed)" if nullable else "required (never null)"
        yield path, f"the schema makes it {want} but model {model.__name__} does not"
    has_default = "default" in f
    model_default = _default_of(info)
    if has_default and model_default is PydanticUndefined:
        yield (
            path,
            f"the schema gives it default {f['default']!r} but model {model.__name__} requires it",
        )
    elif not has_default and model_default is not PydanticUndefined:
        yield (
            path,
            f"model {model.__name__} gives it default {model_default!r} but the schema has "
            "no default",
        )
    elif has_default and _plain(model_default) != f["default"]:
        yield (
            path,
            f"default differs: schema {f['default']!r}, model {model.__name__} "
            f"{_plain(model_default)!r}",
        )
    if len(non_null) != 1 or len(py_non_null) != 1:
        if len(non_null) != len(py_non_null):
            yield path, f"union types differ: schema {non_null}, model {py_non_null}"
        return
    avro = _resolve(non_null[0], named)
    if isinstance(avro, str) and avro in _INT_MAX:  # plain int/long (not a timestamp)
        kind = avro
        bounds: list[int] = [_INT_MAX[kind] + 1]
        for m in info.metadata:
            if isinstance(m, annotated_types.Le) and isinstance(m.le, int):
                bounds.append(m.le)
            elif isinstance(m, annotated_types.Lt) and isinstance(m.lt, int):
                bounds.append(m.lt - 1)
        upper = min(bounds)
        if upper > _INT_MAX[kind]:
            yield (
                path,
                f"model {model.__name__} accepts integers above the Avro {kind} maximum "
                f"{_INT_MAX[kind]}: a valid record could not be written; bound it (le=)",
            )
    yield from _type_drift(model, path, avro, py_non_null[0], named)


def _type_drift(
    model: type[BaseModel], path: str, avro: Any, py: Any, named: dict[str, Any]
) -> Iterator[tuple[str | None, str]]:
    if isinstance(avro, str) and avro in _PRIMITIVES:
        if not (isinstance(py, type) and issubclass(py, _PRIMITIVES[avro])) or (
            avro != "boolean" and py is bool
        ):
            yield path, f"type differs: schema {avro}, model {model.__name__} {_name(py)}"
        return
    if not isinstance(avro, Mapping):
        yield path, f"schema type {avro!r} is not understood by the drift check"
        return
    kind = avro.get("type")
    if avro.get("logicalType") in _TIMESTAMPS:
        if py not in (datetime, AwareDatetime):
            yield path, f"type differs: schema timestamp, model {model.__name__} {_name(py)}"
        return
    if kind == "enum":
        if not (isinstance(py, type) and issubclass(py, Enum)):
            yield path, f"type differs: schema enum {avro.get('name')}, model {_name(py)}"
            return
        schema_symbols = list(avro.get("symbols", []))
        model_symbols = [m.value for m in py]
        missing = [s for s in schema_symbols if s not in model_symbols]
        extra = [s for s in model_symbols if s not in schema_symbols]
        if missing:
            yield (
                path,
                f"enum {avro.get('name')} symbol(s) {', '.join(missing)} are missing from "
                f"{py.__name__}: records holding them would be refused",
            )
        if extra:
            yield path, f"{py.__name__} has symbol(s) {', '.join(extra)} the schema lacks"
        return
    if kind == "array":
        if get_origin(py) is not list or len(get_args(py)) != 1:
            yield path, f"type differs: schema array, model {_name(py)}"
            return
        yield from _type_drift(
            model, path + "[]", _resolve(avro["items"], named), get_args(py)[0], named
        )
        return
    if kind == "record":
        if not (isinstance(py, type) and issubclass(py, BaseModel)):
            yield path, f"type differs: schema record {avro.get('name')}, model {_name(py)}"
            return
        yield from _record_drift(py, avro, path + ".", named)
        return
    if isinstance(kind, str) and kind in _PRIMITIVES:
        yield from _type_drift(model, path, kind, py, named)
        return
    yield path, f"schema type {kind!r} is not understood by the drift check"


def _resolve(avro: Any, named: dict[str, Any]) -> Any:
    """A reference to an already defined named type -> its definition."""
    if isinstance(avro, str) and avro not in _PRIMITIVES:
        return named.get(avro) or named.get(avro.rsplit(".", 1)[-1], avro)
    if isinstance(avro, Mapping) and avro.get("type") in ("enum", "record", "fixed"):
        named[str(avro.get("name"))] = avro
    return avro


def _flatten(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _flatten(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in get_args(annotation):
            out.extend(_flatten(arg))
        return out
    return [annotation]


def _default_of(info: FieldInfo) -> Any:
    if info.default_factory is not None:
        return info.default_factory()  # type: ignore[call-arg]
    return info.default


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _name(py: Any) -> str:
    return getattr(py, "__name__", None) or repr(py)
