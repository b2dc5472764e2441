"""The pure modules import neither Beam nor Kafka (docs/design.md §5), so rules test without either.

Each module is imported in a fresh interpreter, where nothing else has pulled Beam or
Kafka in yet; then sys.modules tells whether the import did. Rule modules are found by
globbing pipelines/rules, so a new rule module is guarded the day it is added.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("apache_beam", "kafka")

RULE_MODULES = sorted(
    "pipelines.rules" if p.stem == "__init__" else f"pipelines.rules.{p.stem}"
    for p in (ROOT / "pipelines" / "rules").glob("*.py")
)
OTHER_PURE_MODULES = [
    "schemas.models",
    "schemas.registry",
    "schemas.compat",
    "schemas.feeds",
    "omm.config",
    "connectors.topics",
    # feed health but its Beam stage: Great Expectations is imported lazily, too
    "pipelines.feed_health.suites",
    "pipelines.feed_health.results",
    "pipelines.feed_health.gx",
    "pipelines.feed_health.report",
]

_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
forbidden = tuple(sys.argv[2:])
print(json.dumps(sorted(
    name for name in sys.modules
    if name in forbidden or name.startswith(tuple(f + "." for f in forbidden))
)))
"""


def imported_forbidden(module: str) -> list[str]:
    """Beam/Kafka modules in sys.modules after importing ``module`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *FORBIDDEN],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"importing {module} failed:\n{done.stderr}"
    found: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_the_glob_finds_the_rule_modules() -> None:
    assert "pipelines.rules" in RULE_MODULES
    assert {
        "pipelines.rules.record_rules",
        "pipelines.rules.matching",
        "pipelines.rules.intel",
        "pipelines.rules.credit",
    } <= set(RULE_MODULES)


@pytest.mark.parametrize("module", RULE_MODULES + OTHER_PURE_MODULES)
def test_pure_module_imports_neither_beam_nor_kafka(module: str) -> None:
    assert imported_forbidden(module) == [], f"{module} pulls in Beam or Kafka"


def test_the_probe_does_see_kafka_and_beam_when_a_module_imports_them() -> None:
    # connectors.kafka_client is meant to import kafka, pipelines.ingest Beam:
    # if the probe missed those, the guard above would prove nothing.
    assert "kafka" in imported_forbidden("connectors.kafka_client")
    assert "apache_beam" in imported_forbidden("pipelines.ingest")
