"""Avro schema registry and single-object codec for omm.

The ``.avsc`` files under ``schemas/avro/<entity>/v<N>.avsc`` are the contract. Every
version ever released stays there; :mod:`schemas.compat` proves each new version
BACKWARD compatible with all earlier ones.

Wire format: Avro *single-object encoding* (Avro specification, "Single object encoding")::

    C3 01 | 8-byte CRC-64-AVRO fingerprint, little-endian | Avro binary body

The fingerprint is the 64-bit Rabin fingerprint of the schema's Parsing Canonical Form,
written little-endian exactly as Java's ``BinaryMessageEncoder`` does (it writes
``SchemaNormalization.parsingFingerprint("CRC-64-AVRO", schema)``, which is documented as
little-endian). A reader looks the fingerprint up among *all* versions of *all* entities to
find the writer schema, then resolves the body into the *current* version of that entity.

This module is pure (imports neither Beam nor Kafka) and is on the hot path: everything that
can be is computed once in :meth:`SchemaRegistry.load`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from io import BytesIO
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint as _fastavro_fingerprint
from fastavro.schema import to_parsing_canonical_form
from fastavro.validation import ValidationError, validate

__all__ = [
    "DEFAULT_ROOT",
    "HEADER_LEN",
    "MAGIC",
    "CodecError",
    "CorruptBody",
    "EmptyValue",
    "InvalidRecord",
    "NotSingleObjectEncoded",
    "SchemaLoadError",
    "SchemaRegistry",
    "SchemaVersion",
    "UnknownEntity",
    "UnknownFingerprint",
    "WrongEntity",
    "crc64_avro",
    "load_version",
    "scan_versions",
]

#: Single-object encoding marker (format version 1).
MAGIC = b"\xc3\x01"
#: Marker (2 bytes) + fingerprint (8 bytes).
HEADER_LEN = 10
#: Default schema root: ``schemas/avro`` next to this file.
DEFAULT_ROOT = Path(__file__).resolve().parent / "avro"

# epoch milliseconds of 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z
_MIN_MILLIS = -62_135_596_800_000
_MAX_MILLIS = 253_402_300_799_999
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")
_MAX_SHOWN = 16  # bytes of a bad message shown in error reasons


def _hexdump(data: bytes | bytearray | memoryview, limit: int = _MAX_SHOWN) -> str:
    raw = bytes(data[:limit])
    shown = raw.hex(" ")
    return shown + (" ..." if len(data) > limit else "")


# --------------------------------------------------------------------------- errors


class CodecError(ValueError):
    """Base class of encode/decode failures.

    ``reason`` is a human-readable sentence naming what is wrong and where (which bytes,
    which field), suitable for a dead-letter header or a platform's feedback record.
    ``error_class`` is the class name, the value used in ``Rejection.error_class``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    @property
    def error_class(self) -> str:
        return type(self).__name__


class EmptyValue(CodecError):
    """The message has no value at all (a Kafka tombstone): nothing to decode."""


class NotSingleObjectEncoded(CodecError):
    """The bytes are not Avro single-object encoded: too short or wrong C3 01 marker."""


class UnknownFingerprint(CodecError):
    """The header's fingerprint matches no schema version of any entity in the registry."""

    def __init__(self, reason: str, fingerprint: str) -> None:
        super().__init__(reason)
        #: The 8 fingerprint bytes as they appear on the wire (little-endian), in hex.
        self.fingerprint = fingerprint


class WrongEntity(CodecError):
    """The fingerprint belongs to a different entity than the caller expected."""

    def __init__(self, reason: str, expected: str, actual: str) -> None:
        super().__init__(reason)
        self.expected = expected
        self.actual = actual


class CorruptBody(CodecError):
    """The header is fine but the body does not decode against the writer schema."""

    def __init__(self, reason: str, entity: str, version: int) -> None:
        super().__init__(reason)
        self.entity = entity
        self.version = version


class InvalidRecord(CodecError):
    """:meth:`SchemaRegistry.encode` was given a record that does not fit the schema."""

    def __init__(self, reason: str, entity: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.entity = entity
        #: Offending field paths, when they could be determined (e.g. ``("omm.Listing.gtin",)``).
        self.fields = fields


class UnknownEntity(KeyError):
    """An entity name that has no schema directory (a programming error, not bad data)."""


class SchemaLoadError(ValueError):
    """The schema tree is malformed (bad file name, unparsable schema, fingerprint clash)."""


# --------------------------------------------------------------------------- versions


def crc64_avro(data: bytes) -> bytes:
    """CRC-64-AVRO (64-bit Rabin) fingerprint of ``data`` as 8 little-endian bytes.

    ``data`` is normally the UTF-8 Parsing Canonical Form of a schema. fastavro returns the
    little-endian bytes as hex, the same byte order Java writes in the single-object header.
    """
    return bytes.fromhex(_fastavro_fingerprint(data.decode("utf-8"), "CRC-64-AVRO"))


@dataclass(frozen=True)
class SchemaVersion:
    """One released version of one entity's schema."""

    entity: str
    version: int
    path: Path
    #: fastavro-parsed schema, ready for schemaless_reader/-writer.
    parsed: Any = field(compare=False, hash=False, repr=False)
    #: 8 bytes, little-endian, exactly as they appear in the single-object header.
    fingerprint: bytes = b""
    #: Parsing Canonical Form (what the fingerprint is computed over).
    canonical: str = field(default="", repr=False)
    #: The schema JSON as written in the .avsc file (docs, defaults and all).
    schema: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def header(self) -> bytes:
        """The 10-byte single-object header for this version."""
        return MAGIC + self.fingerprint

    @property
    def fingerprint_hex(self) -> str:
        return self.fingerprint.hex()

    @property
    def name(self) -> str:
        """Full name of the top-level record, e.g. ``omm.Listing``."""
        name = str(self.schema.get("name", ""))
        ns = self.schema.get("namespace")
        return name if "." in name or not ns else f"{ns}.{name}"


def load_version(entity: str, version: int, path: Path) -> SchemaVersion:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaLoadError(f"{path}: not readable JSON: {exc}") from exc
    if not isinstance(raw, dict) or raw.get("type") != "record":
        raise SchemaLoadError(f"{path}: top level must be an Avro record schema")
    try:
        parsed = parse_schema(raw)
        canonical = to_parsing_canonical_form(raw)
    except Exception as exc:  # fastavro raises several types for bad schemas
        raise SchemaLoadError(f"{path}: invalid Avro schema: {exc}") from exc
    return SchemaVersion(
        entity=entity,
        version=version,
        path=path,
        parsed=parsed,
        fingerprint=crc64_avro(canonical.encode("utf-8")),
        canonical=canonical,
        schema=raw,
    )


def scan_versions(root: Path) -> dict[str, list[tuple[int, Path]]]:
    """Map each entity directory under ``root`` to its ``(version, path)`` list, sorted.

    Raises :class:`SchemaLoadError` for files that do not follow ``v<N>.avsc``.
    """
    if not root.is_dir():
        raise SchemaLoadError(f"schema root {root} is not a directory")
    found: dict[str, list[tuple[int, Path]]] = {}
    for entity_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if entity_dir.name.startswith((".", "_")):
            continue
        versions: list[tuple[int, Path]] = []
        for path in sorted(entity_dir.iterdir()):
            if path.suffix != ".avsc":
                continue
            m = _VERSION_FILE.match(path.name)
            if not m:
                raise SchemaLoadError(
                    f"{path}: schema files must be named v<N>.avsc with N = 1, 2, ..."
                )
            versions.append((int(m.group(1)), path))
        if versions:
            found[entity_dir.name] = sorted(versions)
    return found


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Reader:
    """Everything decode needs for one fingerprint, precomputed."""

    entity: str
    writer: SchemaVersion
    writer_parsed: Any
    reader_parsed: Any  # None when the writer is the current version


@dataclass(frozen=True)
class _Writer:
    version: SchemaVersion
    header: bytes
    parsed: Any
    timestamp_fields: tuple[str, ...]


def _top_level_timestamp_fields(schema: Mapping[str, Any]) -> tuple[str, ...]:
    names = []
    for f in schema.get("fields", []):
        types = f["type"] if isinstance(f["type"], list) else [f["type"]]
        for t in types:
            if isinstance(t, dict) and t.get("logicalType") in (
                "timestamp-millis",
                "timestamp-micros",
            ):
                names.append(f["name"])
    return tuple(names)


class SchemaRegistry:
    """All schema versions of all entities, and the single-object codec over them.

    Thread-safe after construction (nothing is mutated by encode/decode).
    """

    def __init__(self, versions: Mapping[str, list[SchemaVersion]], root: Path) -> None:
        self.root = root
        self._versions: dict[str, list[SchemaVersion]] = {
            e: sorted(vs, key=lambda v: v.version) for e, vs in sorted(versions.items())
        }
        self._writers: dict[str, _Writer] = {}
        self._writer_versions: dict[tuple[str, int], _Writer] = {}
        self._by_fp: dict[bytes, _Reader] = {}
        for entity, vs in self._versions.items():
            current = vs[-1]
            for v in vs:
                w = _Writer(v, v.header, v.parsed, _top_level_timestamp_fields(v.schema))
                self._writer_versions[(entity, v.version)] = w
                other = self._by_fp.get(v.fingerprint)
                if other is not None and other.entity != entity:
                    raise SchemaLoadError(
                        f"{v.path} and {other.writer.path} have the same Parsing Canonical Form "
                        f"fingerprint {v.fingerprint.hex()}: readers could not tell them apart"
                    )
                if other is not None:
                    # Same canonical form within one entity (e.g. a doc-only new version):
                    # the bytes are identical, keep the earlier version as the writer.
                    continue
                reader = None if v.fingerprint == current.fingerprint else current.parsed
                self._by_fp[v.fingerprint] = _Reader(entity, v, v.parsed, reader)
            self._writers[entity] = self._writer_versions[(entity, current.version)]

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(cls, root: Path | None = None) -> SchemaRegistry:
        """Load every ``<root>/<entity>/v<N>.avsc`` (default root: ``schemas/avro``)."""
        root = Path(root) if root is not None else DEFAULT_ROOT
        versions = {
            entity: [load_version(entity, n, path) for n, path in paths]
            for entity, paths in scan_versions(root).items()
        }
        if not versions:
            raise SchemaLoadError(f"no schemas found under {root}")
        return cls(versions, root)

    # ------------------------------------------------------------------ lookup

    def entities(self) -> list[str]:
        return list(self._versions)

    def versions(self, entity: str) -> list[SchemaVersion]:
        try:
            return list(self._versions[entity])
        except KeyError:
            raise self._unknown(entity) from None

    def current(self, entity: str) -> SchemaVersion:
        try:
            return self._versions[entity][-1]
        except KeyError:
            raise self._unknown(entity) from None

    def by_fingerprint(self, fingerprint: bytes) -> SchemaVersion | None:
        """The schema version with this (little-endian, 8-byte) fingerprint, if any."""
        r = self._by_fp.get(bytes(fingerprint))
        return r.writer if r is not None else None

    def writer_of(self, data: bytes | bytearray | memoryview) -> SchemaVersion:
        """Identify the writer schema of a message from its header, without decoding the body."""
        return self._resolve(data).writer

    def _unknown(self, entity: str) -> UnknownEntity:
        return UnknownEntity(f"unknown entity {entity!r}; known: {', '.join(self._versions)}")

    # ------------------------------------------------------------------ codec

    def encode(
        self, entity: str, record: Mapping[str, Any], *, version: int | None = None
    ) -> bytes:
        """Single-object encode ``record`` with the current (or the given) version of ``entity``.

        Timestamps may be timezone-aware datetimes or epoch milliseconds (int). Naive
        datetimes are refused: fastavro would silently read them as *local* time.
        Raises :class:`InvalidRecord` when the record does not fit the schema.
        """
        try:
            key = (entity, version) if version is not None else None
            w = self._writers[entity] if key is None else self._writer_versions[key]
        except KeyError:
            if entity in self._versions:
                raise UnknownEntity(f"{entity} has no schema version v{version}") from None
            raise self._unknown(entity) from None
        for name in w.timestamp_fields:
            value = record.get(name)
            if (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and not _MIN_MILLIS <= value <= _MAX_MILLIS
            ):
                # fastavro writes any long, but no reader could turn it back into a
                # date: the message would be unreadable once written
                raise InvalidRecord(
                    f"{entity}.{name}: {value} epoch milliseconds is outside the years "
                    f"1-9999 a timestamp can hold ({_MIN_MILLIS} to {_MAX_MILLIS})",
                    entity,
                    (name,),
                )
            if isinstance(value, datetime) and value.utcoffset() is None:
                raise InvalidRecord(
                    f"{entity}.{name}: naive datetime {value.isoformat()} has no timezone; "
                    "pass a timezone-aware UTC datetime or epoch milliseconds",
                    entity,
                    (name,),
                )
        out = BytesIO()
        out.write(w.header)
        try:
            schemaless_writer(out, w.parsed, record, strict_allow_default=True)
        except Exception as exc:  # fastavro raises ValueError/TypeError/KeyError/...
            raise self._diagnose(entity, w, record, exc) from exc
        return out.getvalue()

    def decode(
        self, data: bytes | bytearray | memoryview, expected_entity: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Decode a single-object encoded message into the current version of its entity.

        Returns ``(entity, record)``. With ``expected_entity``, a message of any other entity
        raises :class:`WrongEntity`. Timestamps come out as timezone-aware UTC datetimes.
        """
        r = self._resolve(data)
        if expected_entity is not None and r.entity != expected_entity:
            if expected_entity not in self._versions:
                raise self._unknown(expected_entity)
            raise WrongEntity(
                f"expected a {expected_entity} record but the fingerprint "
                f"{r.writer.fingerprint_hex} is {r.entity} v{r.writer.version}",
                expected_entity,
                r.entity,
            )
        buf = BytesIO(data)
        buf.seek(HEADER_LEN)
        try:
            record = schemaless_reader(buf, r.writer_parsed, r.reader_parsed)
        except Exception as exc:  # EOFError, UnicodeDecodeError, IndexError, ValueError, ...
            raise CorruptBody(
                f"{r.entity} v{r.writer.version} body does not decode against its writer "
                f"schema: {_body_failure(bytes(data), r.writer, exc)}",
                r.entity,
                r.writer.version,
            ) from exc
        end = buf.tell()
        if end != len(data):
            raise CorruptBody(
                f"{r.entity} v{r.writer.version} body decoded after {end - HEADER_LEN} bytes but "
                f"{len(data) - end} trailing bytes remain (at offset {end}: "
                f"{_hexdump(memoryview(data)[end:])}); the bytes were not written with this schema",
                r.entity,
                r.writer.version,
            )
        if not isinstance(record, dict):  # pragma: no cover - top level is always a record
            raise CorruptBody(f"{r.entity}: body is not a record", r.entity, r.writer.version)
        return r.entity, record

    def _resolve(self, data: bytes | bytearray | memoryview) -> _Reader:
        n = len(data)
        if n < HEADER_LEN or data[:2] != MAGIC:
            if n < 2 or data[:2] != MAGIC:
                raise NotSingleObjectEncoded(
                    f"not Avro single-object encoded: expected marker c3 01 at offset 0, got "
                    f"{_hexdump(data) or 'no bytes'} ({n} bytes)"
                )
            raise NotSingleObjectEncoded(
                f"truncated single-object header: {n} bytes, need at least {HEADER_LEN} "
                f"(c3 01 + 8-byte fingerprint): {_hexdump(data)}"
            )
        fp = bytes(data[2:HEADER_LEN])
        r = self._by_fp.get(fp)
        if r is None:
            raise UnknownFingerprint(
                f"unknown schema fingerprint {fp.hex()} (bytes 2-9, CRC-64-AVRO little-endian): "
                f"no version of any of the {len(self._versions)} entities in {self.root} has it; "
                "the writer used a schema that is not in schemas/avro",
                fp.hex(),
            )
        return r

    def _diagnose(
        self, entity: str, w: _Writer, record: Mapping[str, Any], exc: Exception
    ) -> InvalidRecord:
        """Turn a fastavro write failure into a message naming the offending fields."""
        head = f"{entity} v{w.version.version}: record does not fit the schema"
        if not isinstance(record, Mapping):
            return InvalidRecord(f"{head}: expected a dict, got {type(record).__name__}", entity)
        known = {f["name"] for f in w.version.schema.get("fields", [])}
        extra = sorted(set(record) - known)
        if extra:
            return InvalidRecord(
                f"{head}: unknown field(s) {', '.join(extra)} (not in {w.version.path.name})",
                entity,
                tuple(extra),
            )
        try:
            validate(record, w.parsed, raise_errors=True)
        except ValidationError as verr:
            parts = []
            fields = []
            prefix = w.version.name + "."
            for e in verr.errors:
                name = str(e.field)
                name = name[len(prefix) :] if name.startswith(prefix) else name
                fields.append(name)
                if e.datum is None:
                    parts.append(f"{name} is missing or null, expected {_short_type(e.schema)}")
                else:
                    parts.append(f"{name} = {e.datum!r} does not match {_short_type(e.schema)}")
            return InvalidRecord(f"{head}: {'; '.join(parts)}", entity, tuple(fields))
        except Exception:  # validation itself failed: fall back to the writer's error
            pass
        return InvalidRecord(f"{head}: {type(exc).__name__}: {exc}", entity)


def _body_failure(data: bytes, writer: SchemaVersion, exc: Exception) -> str:
    """Say which field failed, at which byte offset, and why, for a body fastavro refused.

    fastavro's own errors name neither (a truncated body is a bare ``EOFError``, a cut
    varint an ``IndexError``), so the body is decoded again one top-level field at a time,
    each with the record schema cut after that field: the first cut that fails names the
    field, and the previous cut's end is where that field's bytes start. A field that
    decodes once zero bytes are appended was cut short. Only runs for bad messages.
    """
    total = len(data)
    fields = list(writer.schema.get("fields", []))
    start = HEADER_LEN
    for i, f in enumerate(fields):
        cut = parse_schema({**writer.schema, "fields": fields[: i + 1]})
        end = _read_to(data, cut)
        if isinstance(end, int):
            start = end
            continue
        where = (
            f"field '{f['name']}' ({_short_type(f['type'])}) starting at byte offset "
            f"{start} of a {total}-byte message"
        )
        if isinstance(end, EOFError) or isinstance(_read_to(data + _PADDING, cut), int):
            return f"{where}: {_truncation(data, start, f['type'])}"
        return f"{where}: {_explain_read_error(end, f['type'])}"
    return f"{type(exc).__name__}: {exc or 'no detail'} ({total} bytes in all)"


_PADDING = b"\x00" * 64


def _read_to(data: bytes, schema: Any) -> int | Exception:
    """Where decoding ``schema`` from the body start ends, or the error it raised."""
    buf = BytesIO(data)
    buf.seek(HEADER_LEN)
    try:
        schemaless_reader(buf, schema, None)
    except Exception as exc:  # every fastavro read failure; the caller explains it
        return exc
    return buf.tell()


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    """Zig-zag varint at ``pos``: (value, next position), None when cut short."""
    shift = acc = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        pos += 1
        acc |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (acc >> 1) ^ -(acc & 1), pos
        shift += 7
    return None


def _truncation(data: bytes, start: int, ftype: Any) -> str:
    left = len(data) - start
    head = (
        f"the message ends {left} byte(s) into it: the body is truncated"
        if left
        else "the message ends where this field should start: the body is truncated"
    )
    # For a (possibly optional) string or bytes field, also say how long it claims to be.
    branch: Any = ftype
    pos = start
    if isinstance(ftype, list):
        idx = _varint(data, pos)
        if idx is None or not 0 <= idx[0] < len(ftype):
            return head
        branch, pos = ftype[idx[0]], idx[1]
    if branch in ("string", "bytes"):
        length = _varint(data, pos)
        if length is not None:
            have = len(data) - length[1]
            return f"{head}; its {branch} declares {length[0]} byte(s) but only {have} remain"
    return head


def _explain_read_error(exc: Exception, ftype: Any) -> str:
    if isinstance(exc, OverflowError | ValueError) and "timestamp" in _short_type(ftype):
        return (
            f"the timestamp is outside the years 1-9999 a reader can represent "
            f"({type(exc).__name__}: {exc})"
        )
    if isinstance(exc, UnicodeDecodeError):
        return (
            f"a string is not valid UTF-8 ({exc.reason} at byte {exc.start} of the "
            f"{len(exc.object)}-byte string)"
        )
    if isinstance(exc, IndexError):
        return f"an enum symbol or union branch index is out of range ({exc or 'no detail'})"
    return f"{type(exc).__name__}: {exc or 'no detail'}"


def _short_type(schema: Any) -> str:
    if isinstance(schema, dict):
        if "logicalType" in schema:
            return f"{schema['type']} ({schema['logicalType']})"
        if schema.get("type") == "enum":
            return f"enum {schema.get('name')} {schema.get('symbols')}"
        return str(schema.get("name") or schema.get("type"))
    if isinstance(schema, list):
        return " | ".join(_short_type(s) for s in schema)
    return str(schema)
