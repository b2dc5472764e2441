"""Platform push client: validate a file of records line by line, send the good ones.

The same record rules as ingest run here first, so a platform learns at push
time which line is wrong and why; rejected lines are not sent, the rest are,
keyed. Usable from code (``push_records``/``push_file``) and from ``omm push``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connectors import kafka_client
from connectors.security import KafkaSecurity
from omm.config import PlatformRegistry, RulesConfig
from omm.topics import FEED_ENTITIES, REGULATOR_ENTITIES, TopicNames
from pipelines.rules.record_rules import RuleViolation, Violation, check_record, rule_context
from schemas.models import utc_now
from schemas.registry import SchemaRegistry

# CSV cells are text; these columns hold JSON (lists of objects).
_JSON_COLUMNS = {"failed_items"}


@dataclass(frozen=True)
class LineRejection:
    line: int
    violations: list[Violation]

    def describe(self) -> str:
        return f"line {self.line}: " + "; ".join(v.describe() for v in self.violations)


@dataclass
class PushReport:
    topic: str
    sent: int = 0
    rejected: list[LineRejection] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.sent + len(self.rejected)

    @property
    def all_accepted(self) -> bool:
        return not self.rejected


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | Violation]]:
    """(line number, parsed object or why it did not parse), for .jsonl/.json or .csv files."""
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path)
    else:
        yield from _read_jsonl(path)


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any] | Violation]]:
    with path.open(encoding="utf-8") as handle:
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
    with path.open(encoding="utf-8", newline="") as handle:
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
    rules: RulesConfig,
    platforms: PlatformRegistry,
    topics: TopicNames | None = None,
    registry: SchemaRegistry | None = None,
    on_line: Callable[[], None] | None = None,
    security: KafkaSecurity | None = None,
) -> PushReport:
    """Validate each line with the record rules, send the valid ones keyed, report the rest."""
    topics = topics or TopicNames()
    registry = registry or SchemaRegistry.load()
    topic, entity = topic_for(feed, platform, topics)
    if platform is not None and platform not in platforms:
        raise ValueError(f"platform {platform!r} is not registered (config/platforms.yaml)")
    ctx = rule_context(rules, platforms, utc_now(), topic_platform=platform)
    report = PushReport(topic=topic)
    producer = kafka_client.producer(bootstrap, security)
    failures: list[BaseException] = []
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
            producer.send(
                topic,
                key=record.kafka_key.encode("utf-8"),
                value=registry.encode(entity, record.to_record()),
            ).add_errback(failures.append)
            report.sent += 1
        producer.flush()
    finally:
        producer.close()
    if failures:
        raise RuntimeError(f"{len(failures)} records could not be sent: {failures[0]!r}")
    return report


def push_file(path: Path, **kwargs: Any) -> PushReport:
    return push_records(read_lines(path), **kwargs)
