"""Platform push client: validate a file of records line by line, send the good ones.

The same record rules as ingest run here first, so a platform learns at push
time which line is wrong and why; rejected lines are not sent, the rest are,
keyed. Usable from code (``push_records``/``push_file``) and from ``omm push``.
"""

from __future__ import annotations

import contextlib
import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka.errors import KafkaError
from kafka.producer.future import FutureRecordMetadata

from connectors import kafka_client
from connectors.probe import Cluster, probe
from connectors.security import KafkaSecurity
from connectors.topics import TopicNames
from pipelines.rules.platforms import PlatformRegistry
from pipelines.rules.record_rules import (
    RecordRulesConfig,
    RuleViolation,
    Violation,
    check_record,
    rule_context,
)
from schemas.feeds import FEED_ENTITIES, REGULATOR_ENTITIES
from schemas.models import utc_now
from schemas.registry import SchemaRegistry

# CSV cells are text; these columns hold JSON (lists of objects).
_JSON_COLUMNS = {"failed_items"}
# utf-8-sig: a spreadsheet's "CSV UTF-8" (and Notepad's UTF-8) starts with a byte-order
# mark, which plain utf-8 would glue onto the first column's name.
_ENCODING = "utf-8-sig"
_ACK_MARGIN_S = kafka_client.ACK_MARGIN_S


class FileNotUtf8(ValueError):
    """The file is not UTF-8 text (typically a GBK or "ANSI" export): refused as a whole."""

    def __init__(self, path: Path, line: int, byte: int) -> None:
        self.path, self.line, self.byte = path, line, byte
        super().__init__(
            f"{path} is not UTF-8 text (line {line} has byte 0x{byte:02x}, as in a GBK or "
            'ANSI export): save it as UTF-8 ("CSV UTF-8" in a spreadsheet) and push it again'
        )


@dataclass(frozen=True)
class LineRejection:
    line: int
    violations: list[Violation]

    def describe(self) -> str:
        return f"line {self.line}: " + "; ".join(v.describe() for v in self.violations)


@dataclass(frozen=True)
class LineFailure:
    """A valid line the broker did not acknowledge (after the producer's retries)."""

    line: int
    error: str

    def describe(self) -> str:
        return f"line {self.line}: {self.error}"


@dataclass
class PushReport:
    topic: str
    sent: int = 0  # acknowledged by the broker
    rejected: list[LineRejection] = field(default_factory=list)
    failed: list[LineFailure] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.sent + len(self.rejected) + len(self.failed)

    @property
    def all_accepted(self) -> bool:
        return not self.rejected

    @property
    def all_delivered(self) -> bool:
        return not self.failed


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | Violation]]:
    """(line number, parsed object or why it did not parse), for .jsonl/.json or .csv files.

    Raises :class:`FileNotUtf8` naming the first line that is not UTF-8.
    """
    try:
        if path.suffix.lower() == ".csv":
            yield from _read_csv(path)
        else:
            yield from _read_jsonl(path)
    except UnicodeDecodeError as exc:
        line, byte = _first_undecodable_line(path)
        raise FileNotUtf8(path, line, byte) from exc


def _first_undecodable_line(path: Path) -> tuple[int, int]:
    """(line number, offending byte). A newline byte never occurs inside a UTF-8
    sequence, so decoding line by line finds the same error as decoding the whole."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return number, raw[exc.start]
    return 0, 0


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | Violation]]:
    with path.open(encoding=_ENCODING) as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                yield number, Violation(None, None, "json_syntax", f"not valid JSON: {exc.msg}")
                continue
            if not isinstance(obj, dict):
                yield (
                    number,
                    Violation(None, None, "json_object", "each line must be a JSON object"),
                )
                continue
            yield number, obj


def _read_csv(path: Path) -> Iterator[tuple[int, dict[str, Any] | Violation]]:
    with path.open(encoding=_ENCODING, newline="") as handle:
        reader = csv.DictReader(handle)
        for row in reader:
            number = reader.line_num
            obj: dict[str, Any] = {}
            for column, cell in row.items():
                if column is None:
                    obj = {}
                    break
                value: Any = None if cell in ("", None) else cell
                if column in _JSON_COLUMNS and value is not None:
                    try:
                        value = json.loads(value)
                    except json.JSONDecodeError:
                        yield number, Violation(column, cell, "json_syntax", "cell must hold JSON")
                        break
                obj[column] = value
            else:
                yield number, obj
                continue
            if not obj:
                yield number, Violation(None, None, "csv_columns", "more cells than header columns")


def topic_for(feed: str, platform: str | None, topics: TopicNames) -> tuple[str, str]:
    """(topic, entity) for a feed name such as 'listings' or 'inspections'."""
    if feed in FEED_ENTITIES:
        if platform is None:
            raise ValueError(f"pushing {feed} needs --platform")
        return topics.feed(platform, feed), FEED_ENTITIES[feed]
    if feed in REGULATOR_ENTITIES:
        return topics.regulator(feed), REGULATOR_ENTITIES[feed]
    raise ValueError(
        f"unknown feed {feed!r}; expected one of {[*FEED_ENTITIES, *REGULATOR_ENTITIES]}"
    )


def push_records(
    lines: Iterable[tuple[int, dict[str, Any] | Violation]],
    *,
    feed: str,
    platform: str | None,
    bootstrap: str,
    rules: RecordRulesConfig,
    platforms: PlatformRegistry,
    topics: TopicNames | None = None,
    registry: SchemaRegistry | None = None,
    on_line: Callable[[], None] | None = None,
    cluster: Cluster | None = None,
    security: KafkaSecurity | None = None,
) -> PushReport:
    """Validate each line with the record rules, send the valid ones keyed, report the rest.

    Every sent line is followed to its broker acknowledgement: a line the broker
    did not acknowledge (after the producer's retries) is in ``report.failed``
    with its error, not in ``report.sent``. ``cluster``: an earlier probe of the
    bootstrap (one is made otherwise), used to refuse a missing topic at once.
    """
    topics = topics or TopicNames()
    registry = registry or SchemaRegistry.load()
    topic, entity = topic_for(feed, platform, topics)
    if platform is not None and platform not in platforms:
        raise ValueError(f"platform {platform!r} is not registered (config/platforms.yaml)")
    # a producer would wait a minute for a topic that does not exist, then fail
    (cluster or probe(bootstrap, security=security)).require([topic], topics.prefix)
    ctx = rule_context(rules, platforms, utc_now(), topic_platform=platform)
    report = PushReport(topic=topic)
    pending: list[tuple[int, FutureRecordMetadata]] = []
    producer = kafka_client.producer(bootstrap, security)
    try:
        for number, parsed in lines:
            if on_line:
                on_line()
            if isinstance(parsed, Violation):
                report.rejected.append(LineRejection(number, [parsed]))
                continue
            try:
                record = check_record(entity, parsed, ctx)
            except RuleViolation as exc:
                report.rejected.append(LineRejection(number, exc.violations))
                continue
            try:
                future = producer.send(
                    topic,
                    key=record.kafka_key.encode("utf-8"),
                    value=registry.encode(entity, record.to_record()),
                )
            except KafkaError as exc:  # refused before it left, e.g. larger than a request
                report.failed.append(LineFailure(number, _describe(exc)))
                continue
            pending.append((number, future))
        with contextlib.suppress(KafkaError):
            # kafka-python 3.0.12's flush() raises UnknownError("Future not done") when
            # a batch was split after MESSAGE_TOO_LARGE while its halves are still in
            # flight; each line's own future (below) follows them to the end.
            producer.flush()
        # the sender fails a record at the latest when its delivery timeout expires
        bound_s = producer.config["delivery_timeout_ms"] / 1000 + _ACK_MARGIN_S
        for number, future in pending:
            try:
                future.get(timeout=bound_s)
            except KafkaError as exc:
                report.failed.append(LineFailure(number, _describe(exc)))
            else:
                report.sent += 1
    finally:
        producer.close()
    report.failed.sort(key=lambda f: f.line)
    return report


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def push_file(path: Path, **kwargs: Any) -> PushReport:
    # read the whole file first: an encoding error found halfway must not leave half sent
    return push_records(list(read_lines(path)), **kwargs)
