"""The guides in docs/ stay true to the code. No Kafka, no Beam.

- every line of every file in docs/examples/ passes the record rules `omm push` /
  `omm publish` apply, and encodes;
- the story those files tell issues the tasks and the review item the guides name,
  and the takedown notices answer tasks that exist;
- the worked single-object encoding, the CRC-64-AVRO code and the deadline table of
  the platform guide are what the codec and the calendar compute;
- the operator guide lists every OMM_* setting; every path and command the guides
  name exists (bar the commands the compliance work adds).
"""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command

from connectors.push import read_lines
from omm.cli import app
from omm.config import load_enforcement, load_platforms, load_rules
from omm.settings import Settings
from pipelines.rules.enforcement import (
    TASK,
    fold_in_event_order,
    listing_fact,
    listing_keys,
    result_fact,
    result_keys,
    task_id,
)
from pipelines.rules.record_rules import RuleViolation, Violation, check_record, rule_context
from schemas.feeds import FEED_ENTITIES, REGULATOR_ENTITIES
from schemas.models import ENTITY_MODELS, utc_now
from schemas.registry import SchemaRegistry

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
PLATFORM_GUIDE = DOCS / "platform-guide.md"
REGULATOR_GUIDE = DOCS / "regulator-guide.md"
OPERATOR_GUIDE = DOCS / "operator-guide.md"
GUIDES = (PLATFORM_GUIDE, REGULATOR_GUIDE, OPERATOR_GUIDE)

# example file -> (feed, platform) as the guides push or publish it
EXAMPLE_FILES: dict[str, tuple[str, str | None]] = {
    "listings.jsonl": ("listings", "tmall"),
    "listings.csv": ("listings", "tmall"),
    "complaints.jsonl": ("complaints", "tmall"),
    "takedowns.jsonl": ("takedowns", "tmall"),
    "inspections.jsonl": ("inspections", None),
    "penalties.jsonl": ("penalties", None),
}
INSPECTION = "SAMR-2026-0303-0001"
# what the guides say the example FAIL issues: task id -> (kind, listing, seller)
EXPECTED_TASKS = {
    "DEL-3422b3d4529315ddffdb153b": ("DELIST", "600100000001", "shop-1001"),
    "DEL-0cb90cc77ea65da8b166372a": ("DELIST", "600100000002", "shop-2002"),
    "REM-7cfa82fc2dcfd138d72e82bc": ("REMEDIATION", None, "shop-1001"),
    "REM-80f8e27ca5a26510220d0d28": ("REMEDIATION", None, "shop-2002"),
}
EXPECTED_REVIEWS = {"REV-6734ddd5ba04753e32486fa7": "600100000003"}
DELIST_DEADLINE = "2026-03-05T15:59:59.999Z"
# Commands the guides may name before they exist (none now: every one is built).
PENDING_COMMANDS: set[tuple[str, ...]] = set()


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _records(name: str) -> list[dict[str, Any]]:
    feed, platform = EXAMPLE_FILES[name]
    entity = {**FEED_ENTITIES, **REGULATOR_ENTITIES}[feed]
    ctx = rule_context(load_rules().record_rules, load_platforms(), utc_now(), platform)
    out = []
    for number, parsed in read_lines(EXAMPLES / name):
        assert not isinstance(parsed, Violation), f"{name} line {number}: {parsed.describe()}"
        try:
            out.append(check_record(entity, parsed, ctx).to_record())
        except RuleViolation as exc:
            pytest.fail(f"docs/examples/{name} line {number} is refused: {exc}")
    return out


# ------------------------------------------------------------------ example files


def test_every_example_file_is_checked() -> None:
    assert {p.name for p in EXAMPLES.iterdir()} == set(EXAMPLE_FILES)


@pytest.mark.parametrize("name", sorted(EXAMPLE_FILES))
def test_every_example_line_passes_the_record_rules_and_encodes(name: str) -> None:
    feed, _ = EXAMPLE_FILES[name]
    entity = {**FEED_ENTITIES, **REGULATOR_ENTITIES}[feed]
    registry = SchemaRegistry.load()
    records = _records(name)
    assert records, f"docs/examples/{name} is empty"
    id_field = ENTITY_MODELS[entity].id_field
    for record in records:
        _, decoded = registry.decode(registry.encode(entity, record), expected_entity=entity)
        assert decoded[id_field] == record[id_field]


def _story() -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """What enforce issues for the example listings and results: (tasks, reviews) by id."""
    cfg = load_enforcement()
    events: dict[str, list[Any]] = {}
    listings = _records("listings.jsonl") + _records("listings.csv")
    for offset, record in enumerate(listings):
        fact = listing_fact(record, f"omm.valid.listings/0/{offset}")
        for key in listing_keys(fact, cfg):
            events.setdefault(key, []).append(fact)
    for offset, record in enumerate(_records("inspections.jsonl")):
        result = result_fact(record, f"omm.valid.inspections/0/{offset}")
        for key in result_keys(result, cfg):
            events.setdefault(key, []).append(result)
    tasks: dict[str, dict[str, Any]] = {}
    reviews: dict[str, dict[str, Any]] = {}
    for key, facts in events.items():
        for kind, record in fold_in_event_order(key, facts, cfg):
            if kind == TASK:
                tasks[record["task_id"]] = record
            else:
                reviews[record["review_id"]] = record
    return tasks, reviews


def test_the_example_story_issues_the_tasks_and_review_the_guides_name() -> None:
    tasks, reviews = _story()
    assert {
        t: (r["kind"], r["listing_id"], r["seller_id"]) for t, r in tasks.items()
    } == EXPECTED_TASKS
    assert {r: v["listing_id"] for r, v in reviews.items()} == EXPECTED_REVIEWS
    assert all(t["state"] == "ISSUED" and t["inspection_id"] == INSPECTION for t in tasks.values())
    platform, regulator = _text(PLATFORM_GUIDE), _text(REGULATOR_GUIDE)
    for name in [*EXPECTED_TASKS, *EXPECTED_REVIEWS]:
        assert name in regulator, name
    for name, (kind, _, _) in EXPECTED_TASKS.items():
        if kind == "DELIST":
            assert name in platform, name
            assert _iso(tasks[name]["deadline_at"]) == DELIST_DEADLINE
    assert DELIST_DEADLINE in regulator
    # confirming the review issues the task id the regulator guide shows
    assert task_id("tmall", "600100000003", INSPECTION, "DELIST") in regulator


def test_the_example_takedowns_answer_tasks_that_were_issued() -> None:
    tasks, _ = _story()
    answering = [n for n in _records("takedowns.jsonl") if n["task_id"] is not None]
    assert answering
    for notice in answering:
        task = tasks[notice["task_id"]]
        assert notice["listing_id"] == task["listing_id"]
        assert notice["acted_at"] >= task["issued_at"]


def test_example_lines_quoted_in_the_guides_are_the_files_lines() -> None:
    lines = {
        line.strip()
        for name in EXAMPLE_FILES
        for line in (EXAMPLES / name).read_text(encoding="utf-8").splitlines()
    }
    quoted = [
        line
        for guide in GUIDES
        for lang, block in re.findall(r"```([a-z]*)\n(.*?)```", _text(guide), re.S)
        if lang == "json"
        for line in block.splitlines()
        if line.startswith("{") and line.endswith("}")
    ]
    assert quoted
    assert [line for line in quoted if line not in lines] == []


# ------------------------------------------------------------------ the wire format


def test_the_worked_encoding_is_what_the_codec_writes() -> None:
    registry = SchemaRegistry.load()
    takedown_v1 = registry.versions("takedown")[0]
    assert takedown_v1.version == 1
    guide = _text(PLATFORM_GUIDE)
    assert takedown_v1.canonical in guide
    assert f"({len(takedown_v1.canonical)} characters)" in guide
    assert f"0x{int.from_bytes(takedown_v1.fingerprint, 'little'):016x}" in guide
    assert takedown_v1.header.hex(" ") in guide
    notice = {
        "notice_id": "TD-1",
        "platform": "tmall",
        "listing_id": "600100000001",
        "task_id": None,
        "action": "REMOVED",
        "reason": "recall",
        "acted_at": datetime(2026, 3, 4, 6, 30, tzinfo=UTC),
    }
    encoded = registry.encode("takedown", notice, version=1)
    assert encoded.hex(" ") in guide
    assert f"these {len(encoded)} bytes" in guide
    assert str(int(notice["acted_at"].timestamp() * 1000)) in guide


def _code_block(text: str, first_line: str) -> str:
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        if block.startswith(first_line):
            return str(block)
    raise AssertionError(f"no code block starting with {first_line!r}")


def test_the_guides_crc64_code_gives_every_schema_fingerprint() -> None:
    namespace: dict[str, Any] = {}
    exec(_code_block(_text(PLATFORM_GUIDE), "# crc64-avro"), namespace)
    registry = SchemaRegistry.load()
    for entity in registry.entities():
        for version in registry.versions(entity):
            assert namespace["crc64_avro"](version.canonical) == version.fingerprint, version.path


def test_the_deadline_table_follows_the_calendar() -> None:
    cfg = load_enforcement()
    rows = re.findall(
        r"^\| (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) \| [^|]+ \| (\d{4}-\d\d-\d\dT[\d:.]+Z) \|",
        _text(PLATFORM_GUIDE),
        re.M,
    )
    assert len(rows) >= 5
    for issued, deadline in rows:
        at = datetime.fromisoformat(issued)
        computed = cfg.calendar.add_working_days(at, cfg.delist_working_days).at
        assert _iso(computed) == deadline, issued


# ------------------------------------------------------------------ settings, paths, commands


def test_the_operator_guide_lists_every_setting() -> None:
    guide = _text(OPERATOR_GUIDE)
    missing = [f"OMM_{n.upper()}" for n in Settings.model_fields if f"OMM_{n.upper()}" not in guide]
    assert not missing


def test_the_readme_links_the_guides() -> None:
    readme = _text(ROOT / "README.md")
    for guide in GUIDES:
        assert f"](docs/{guide.name})" in readme


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_path_and_link_a_guide_names_exists(guide: Path) -> None:
    text = _text(guide)
    prefixes = "docs|schemas|config|pipelines|connectors|omm|tests"
    paths = re.findall(rf"`((?:{prefixes})/[^`\s<>*{{}}|]+)`", text)
    links = [
        link
        for link in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
        if not link.startswith("http")
    ]
    assert paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    missing += [link for link in links if not (guide.parent / link).exists()]
    assert not missing


def _commands(text: str) -> list[list[str]]:
    """Every `omm ...` invocation: the lines of code blocks and inline code spans."""
    found = []
    blocks = re.findall(r"```([a-z]*)\n(.*?)```", text, re.S)
    candidates = [line for lang, block in blocks if lang == "bash" for line in block.splitlines()]
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    candidates += [span for span in re.findall(r"`([^`]+)`", prose) if span.startswith("omm ")]
    for line in candidates:
        line = line.split(" #", 1)[0].rstrip(" \\")
        if " omm " not in f" {line} ":
            continue
        words = shlex.split(line)
        found.append(words[words.index("omm") :])
    return found


@pytest.mark.parametrize("guide", GUIDES, ids=lambda p: p.name)
def test_every_command_and_option_a_guide_shows_exists(guide: Path) -> None:
    root = get_command(app)
    problems = []
    for words in _commands(_text(guide)):
        args = words[1:]
        if args and args[0].startswith("--"):
            args = args[1:]  # a root option such as --debug
        node: Any = root
        path: list[str] = []
        for word in args:
            subcommands = getattr(node, "commands", None)
            if subcommands is None or word.startswith("-") or word.isupper():
                break  # an option, or a placeholder such as COMMAND or FILE
            names = word.split("|")  # `omm broker start|stop|status`
            if all(name in subcommands for name in names):
                path.append(names[0])
                node = subcommands[names[0]]
                continue
            pending = any(tuple([*path, names[0]])[: len(p)] == p for p in PENDING_COMMANDS)
            if not pending:
                problems.append(f"{' '.join(words)}: no command {word!r}")
            node = None
            break
        if node is None:
            continue
        options = {opt for param in node.params for opt in getattr(param, "opts", [])}
        for word in args[: args.index("--") if "--" in args else len(args)]:
            if word.startswith("--") and word.split("=", 1)[0] not in options:
                problems.append(f"{' '.join(words)}: no option {word}")
    assert not problems
