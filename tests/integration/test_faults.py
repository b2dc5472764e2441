"""Fault injection: kill -9 and a broker restart under a streaming ``omm run all``.

One seeded campaign (tests/faults.py) on a private broker serves the tests of
this module: 10 kill -9 points, one broker stop/start, a small workload in
waves, compared with a fault-free bounded run of the same inputs. Each test
asserts one promise, so a report says which one broke. The summary is printed
for the issue note; ``python -m tests.faults --seed N`` runs longer campaigns.

``OMM_FAULT_SEED`` picks another seed (the default keeps CI reproducible).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.faults import (
    FaultPlan,
    FaultReport,
    RunView,
    compare,
    generate_workload,
    run_campaign,
)

SEED = int(os.environ.get("OMM_FAULT_SEED", "8"))
# the whole campaign runs inside the first test that asks for it
CAMPAIGN_TIMEOUT_S = 1200


def _campaign(plan: FaultPlan, workdir: Path) -> FaultReport:
    lines: list[str] = []
    report = run_campaign(plan, workdir, log=lines.append)
    (workdir / "campaign.log").write_text("\n".join(lines) + "\n" + report.summary() + "\n")
    return report


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> FaultReport:
    plan = FaultPlan(
        seed=SEED,
        kills=10,
        broker_restarts=1,
        outage_s=30.0,
        listings_per_platform=16,
        waves=5,
    )
    return _campaign(plan, tmp_path_factory.mktemp("faults"))


def _show(report: FaultReport, capsys: pytest.CaptureFixture[str]) -> None:
    with capsys.disabled():
        print("\n" + report.summary())


@pytest.mark.integration
@pytest.mark.timeout(CAMPAIGN_TIMEOUT_S)
def test_kill9_at_ten_points_gives_the_fault_free_tasks(
    campaign: FaultReport, capsys: pytest.CaptureFixture[str]
) -> None:
    _show(campaign, capsys)
    c = campaign.comparison
    assert campaign.kills >= 10, campaign.events
    assert c.tasks_reference > 0, "the workload must produce tasks, or nothing is compared"
    assert c.tasks_equal, c.details()
    assert not c.reviews_differing, c.reviews_differing[:5]


@pytest.mark.integration
@pytest.mark.timeout(CAMPAIGN_TIMEOUT_S)
def test_every_account_balances_and_nothing_is_lost(campaign: FaultReport) -> None:
    c = campaign.comparison
    assert not c.unbalanced, c.unbalanced
    assert c.nothing_lost, c.details()
    assert not c.twice, c.twice[:5]
    # the same valid bytes for every source record (complaints pseudonymised alike)
    assert not c.valid_bytes_differing, c.valid_bytes_differing[:5]


@pytest.mark.integration
@pytest.mark.timeout(CAMPAIGN_TIMEOUT_S)
def test_duplicates_are_counted_per_topic(campaign: FaultReport) -> None:
    # the fault-free run writes each output once; replays after kill -9 may
    # write some twice, and those are what the report counts
    assert sum(campaign.reference_duplicates.values()) == 0, campaign.reference_duplicates
    assert campaign.total_duplicates == sum(campaign.duplicates.values())
    assert set(campaign.duplicates) >= {"omm.valid.listings", "omm.dlq", "omm.tasks.taobao"}


@pytest.mark.integration
@pytest.mark.timeout(CAMPAIGN_TIMEOUT_S)
def test_streaming_run_rides_out_a_broker_restart(campaign: FaultReport) -> None:
    recoveries = [e.detail for e in campaign.events if e.kind == "recovery"]
    assert campaign.outages == 1
    assert campaign.outages_survived == campaign.outages, recoveries
    assert campaign.crashes == 0, [e.detail for e in campaign.events if e.kind == "crash"]


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(3 * 3600)
def test_long_campaign_with_a_two_minute_outage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = FaultPlan(
        seed=SEED + 1,
        kills=20,
        broker_restarts=2,
        outage_s=130.0,
        listings_per_platform=120,
        waves=8,
        survive_deadline_s=300.0,
        progress_deadline_s=600.0,
        settle_deadline_s=1200.0,
    )
    report = _campaign(plan, tmp_path)
    _show(report, capsys)
    c = report.comparison
    assert report.kills >= 20
    assert c.tasks_equal, c.details()
    assert not c.unbalanced and c.nothing_lost and not c.twice, c.details()
    troubles = [f"{e.kind}: {e.detail}" for e in report.events if e.kind != "kill"]
    assert report.outages_survived == report.outages, troubles
    assert report.crashes == 0, troubles


# ---------------------------------------------------------------- the checker itself


def _view(prefix: str, valid: dict[str, bytes], dead: list[str], tasks: dict[str, Any]) -> RunView:
    view = RunView(prefix, {"omm.feed.jd.listings": {(0, 0), (0, 1), (0, 2)}})
    view.valid = dict(valid)
    view.valid_seen = Counter(valid)
    view.dead = Counter(dead)
    view.feedback = Counter(dead)
    view.tasks = tasks
    return view


def _encode(task: dict[str, Any]) -> bytes:
    return repr(sorted(task.items())).encode()


def test_the_comparison_catches_a_lost_record_and_a_changed_task() -> None:
    """Without Kafka: the verdicts the campaign relies on can fail."""
    task = {"task_id": "t1", "state": "ISSUED", "evidence_ref": "x"}
    fates = {
        "omm.feed.jd.listings/0/0": "valid",
        "omm.feed.jd.listings/0/1": "valid",
        "omm.feed.jd.listings/0/2": "dead",
    }
    everything = {"omm.feed.jd.listings/0/0": b"a", "omm.feed.jd.listings/0/1": b"b"}
    reference = _view("r.", everything, ["omm.feed.jd.listings/0/2"], {"t1": task})
    same = compare(
        reference,
        _view("f.", everything, ["omm.feed.jd.listings/0/2"], {"t1": task}),
        fates,
        _encode,
    )
    assert same.tasks_equal and same.nothing_lost and not same.unbalanced

    lossy = _view(
        "f.",
        {"omm.feed.jd.listings/0/0": b"a"},
        ["omm.feed.jd.listings/0/2"],
        {"t1": {**task, "evidence_ref": "y"}},
    )
    broken = compare(reference, lossy, fates, _encode)
    assert broken.lost == ["omm.feed.jd.listings/0/1"]
    assert broken.unbalanced and not broken.nothing_lost
    assert broken.tasks_differing == ["t1"] and broken.diff_fields == {"evidence_ref": 1}

    misrouted = compare(
        reference,
        _view("f.", everything, ["omm.feed.jd.listings/0/2", "omm.feed.jd.listings/0/1"], {}),
        fates,
        _encode,
    )
    assert misrouted.misrouted == ["omm.feed.jd.listings/0/1"]
    assert misrouted.twice == ["omm.feed.jd.listings/0/1"]
    assert misrouted.tasks_missing == ["t1"]


def test_the_workload_is_seeded_and_mixed() -> None:
    first, again = generate_workload(5, 16, 5), generate_workload(5, 16, 5)
    assert [[(r.topic, r.key, r.fate) for r in w] for w in first.waves] == [
        [(r.topic, r.key, r.fate) for r in w] for w in again.waves
    ]
    fates = Counter(r.fate for w in first.waves for r in w)
    assert fates["valid"] > 0 and fates["dead"] > 0
    topics = {r.topic for w in first.waves for r in w}
    assert "omm.reg.inspections" in topics and len(topics) >= 13
