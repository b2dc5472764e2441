"""Ingest, enforce and comply give the same outputs on every runner omm is run on.

Beam's FnApiRunner (omm's default, in-process) against Prism, Beam's portable
runner: it speaks the Job API of the Flink and Spark job servers, so a pipeline
that runs on it runs the portable path (the pipeline proto, SDK workers fed over
the Fn API, the runner's own fusion, bundling and SDF splitting). Prism runs its
SDK workers here (LOOPBACK), or in a separate Beam worker pool started in an
empty directory with no ``OMM_*`` variable (EXTERNAL): the job object must then
carry everything the workers need (topics, config values, calendars, brand
aliases, expectation suites, keys), because a worker that looked for ``config/``
or the environment would find neither.

Each scenario is written once to an input namespace; each run gets a fresh
namespace holding an exact copy of the inputs (same partitions, offsets, keys,
headers and record timestamps: :func:`tests.helpers.copy_topics`), so the runs
read the same records and each writes its own outputs. Outputs are compared with
the namespace prefix taken out and the wall-clock fields (when a rejection or a
health record or a scorecard was computed) dropped: everything else is equal,
record for record.

Bounded runs only on EXTERNAL workers: an operator's stop
(``connectors.delivery.request_stop``) is a flag in the submitting process, which
the workers of a separate pool never see; only a bounded run ends there by itself.

Prism's start-up dominates these runs, so the inputs are small. The time of each
run is printed (``-s``): the README's Runners section quotes them.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from connectors import delivery
from connectors.broker.manager import free_port
from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.errors import UserError
from omm.generate import CATALOG, GARBAGE, FeedGenerator, broken_listings
from omm.jobs import comply_job, enforce_job, ingest_job
from pipelines.comply import run_comply
from pipelines.enforce import run_enforce
from pipelines.ingest import run_ingest
from pipelines.rules.intel import compensation_task, complaint_fact
from tests.helpers import (
    Message,
    copy_topics,
    delist_task,
    fresh_namespace,
    produce_avro,
    produce_raw,
    read_all,
    unprefixed,
)

pytestmark = pytest.mark.integration

FNAPI = ["--runner=FnApiRunner"]
# the cached binary and LOOPBACK workers come from omm.beam_runtime's defaults
PRISM = ["--runner=PrismRunner"]
IDLE_S = 3.0
# what a field says about when it was computed, not about the inputs
WALL_CLOCK_FIELDS = frozenset({"rejected_at", "validated_at", "computed_at"})
KEY = b"test-key-not-a-secret"
_NOW_QUOTED = re.compile(r"now \([^)]*\)")


@dataclass(frozen=True)
class Outputs:
    """What one run wrote, topic by topic (unprefixed), as comparable rows, and its account."""

    topics: dict[str, Counter[str]]
    account: Any
    seconds: float


def _row(m: Message, prefix: str) -> str:
    record = m.record
    body: dict[str, Any] = {
        "partition": m.partition,
        "key": m.key.decode("utf-8", "replace") if m.key is not None else None,
        "headers": m.headers,
    }
    if record is not None:
        body["record"] = {k: v for k, v in record.items() if k not in WALL_CLOCK_FIELDS}
    else:
        body["value"] = m.value.hex() if m.value is not None else None
    row = json.dumps(unprefixed(body, prefix), sort_keys=True, default=str)
    # the future-timestamp rule's message quotes the clock it read
    return _NOW_QUOTED.sub("now (...)", row)


def snapshot(bootstrap: str, topics: TopicNames, names: list[str], latest: bool) -> dict:
    """Each topic's rows: all of them (a multiset), or the latest per key when ``latest``
    (a stage that folds evidence as it arrives may publish different intermediate
    records in another read order, never a different last one)."""
    out: dict[str, Counter[str]] = {}
    for name in names:
        messages = read_all(bootstrap, f"{topics.prefix}{name}")
        if latest:
            messages = list({m.key: m for m in messages}.values())
        out[name] = Counter(_row(m, topics.prefix) for m in messages)
    return out


@dataclass(frozen=True)
class Stage:
    """One pipeline over one scenario: its inputs, how it is run, what it writes."""

    name: str
    platforms: list[str]
    inputs: list[str]  # unprefixed topics the scenario writes
    outputs: list[str]  # unprefixed topics compared
    write: Callable[[str, TopicNames], None]
    run: Callable[[str, TopicNames, list[str]], Any]
    latest: bool = False
    # the account's fields that are a function of the inputs (None: all of them)
    account_fields: tuple[str, ...] | None = None


def run_stage(bootstrap: str, stage: Stage, source: TopicNames, args: list[str]) -> Outputs:
    topics = fresh_namespace(stage.platforms, bootstrap)
    copy_topics(bootstrap, source, topics, stage.inputs)
    started = time.monotonic()
    account = stage.run(bootstrap, topics, pipeline_args_with_defaults(args, streaming=False))
    seconds = time.monotonic() - started
    print(f"\n{stage.name} on {' '.join(args)}: {seconds:.1f} s")
    account = unprefixed(account, topics.prefix)
    if stage.account_fields is not None:
        account = {k: v for k, v in account.items() if k in stage.account_fields}
    return Outputs(snapshot(bootstrap, topics, stage.outputs, stage.latest), account, seconds)


# ------------------------------------------------------------------ ingest

INGEST_PLATFORMS = ["tmall", "jd"]


def write_ingest(bootstrap: str, topics: TopicNames) -> None:
    """Good and broken listings (ten rules), garbage bytes, complaints holding personal data,
    takedowns naming no task, regulator results: every way out of ingest."""
    gen = FeedGenerator(seed=21)
    good = [gen.listing("tmall", i) for i in range(60)]
    bad = [r for r, _ in broken_listings(gen, "tmall", 20, start=60)]
    produce_avro(bootstrap, topics.feed("tmall", "listings"), "listing", good + bad, "listing_id")
    jd = [gen.listing("jd", i) for i in range(30)]
    produce_avro(bootstrap, topics.feed("jd", "listings"), "listing", jd, "listing_id")
    produce_raw(bootstrap, topics.feed("jd", "listings"), [(b"garbage", GARBAGE)])
    complaints = [gen.complaint("jd", i) for i in range(15)]
    produce_avro(
        bootstrap, topics.feed("jd", "complaints"), "complaint", complaints, "complaint_id"
    )
    notices = [gen.takedown("tmall", i) for i in range(5)]
    produce_avro(bootstrap, topics.feed("tmall", "takedowns"), "takedown", notices, "notice_id")
    results = [gen.inspection(i) for i in range(1, 6)]
    produce_avro(bootstrap, topics.regulator("inspections"), "inspection", results, "inspection_id")


def _run_ingest(bootstrap: str, topics: TopicNames, args: list[str]) -> Any:
    job = ingest_job(
        bootstrap,
        topics,
        platforms=INGEST_PLATFORMS,
        group_id=f"{topics.prefix}ingest",
        key=KEY,
        idle_timeout_s=IDLE_S,
    )
    return sorted(run_ingest(job, args), key=lambda a: a.topic)


_names = TopicNames()
INGEST = Stage(
    name="ingest",
    platforms=INGEST_PLATFORMS,
    inputs=[_names.strip(s.name) for s in _names.sources(INGEST_PLATFORMS)]
    + [_names.tasks(p) for p in INGEST_PLATFORMS],
    outputs=[*_names.ingest_outputs(INGEST_PLATFORMS), _names.feed_health],
    write=write_ingest,
    run=_run_ingest,
)

# ------------------------------------------------------------------ enforce

ENFORCE_PLATFORMS = ["tmall", "jd", "suning"]


def write_enforce(bootstrap: str, topics: TopicNames) -> None:
    """Listings of five products on three platforms (one taken off sale before the results),
    FAILs on two of them, a COUNTERFEIT at one seller, an overturned FAIL, and a record that
    does not decode: tasks to every platform, a withdrawal, a dead letter."""
    now = datetime.now(UTC).replace(microsecond=0)
    gen = FeedGenerator(seed=22, now=now)
    listings = []
    for i, product in enumerate(CATALOG[:5]):
        for platform in ENFORCE_PLATFORMS:
            for copy in range(2):
                listing = gen.listing(platform, 100 * i + copy, product)
                listings.append({**listing, "observed_at": now - timedelta(hours=6)})
    gone = listings[0]
    listings.append({**gone, "status": "REMOVED", "observed_at": now - timedelta(hours=4)})
    produce_avro(bootstrap, topics.valid("listing"), "listing", listings, "listing_id")
    produce_raw(bootstrap, topics.valid("listing"), [(b"garbage", GARBAGE)])
    at = now - timedelta(hours=2)
    results = [
        {**gen.inspection(1, CATALOG[0]), "published_at": at},
        {**gen.inspection(2, CATALOG[1]), "published_at": at},
        {**gen.inspection(3, CATALOG[2], verdict="COUNTERFEIT", platform="jd"), "published_at": at},
        {**gen.inspection(4, CATALOG[3]), "published_at": at},
    ]
    overturned = {**results[3], "status": "OVERTURNED", "published_at": at + timedelta(hours=1)}
    produce_avro(
        bootstrap, topics.valid("inspection"), "inspection", [*results, overturned], "inspection_id"
    )


def _run_enforce(bootstrap: str, topics: TopicNames, args: list[str]) -> Any:
    return run_enforce(enforce_job(bootstrap, topics, idle_timeout_s=IDLE_S), args)


ENFORCE = Stage(
    name="enforce",
    platforms=ENFORCE_PLATFORMS,
    inputs=[_names.valid("listing"), _names.valid("inspection"), _names.decisions],
    outputs=[_names.tasks(p) for p in ENFORCE_PLATFORMS] + [_names.review, _names.dlq],
    write=write_enforce,
    run=_run_enforce,
)

# ------------------------------------------------------------------ comply

COMPLY_PLATFORMS = ["jd", "tmall"]
CST = ZoneInfo("Asia/Shanghai")


def _cst(day: int, hour: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=CST).astimezone(UTC)


def write_comply(bootstrap: str, topics: TopicNames) -> None:
    """Tasks issued Monday 2 March 2026 (deadline the end of 4 March) meeting every kind
    of evidence: notices, the listing feed contradicting one, a re-listing, a dispute and
    its decision, a withdrawal, silence; and a record that does not decode."""
    gen = FeedGenerator(seed=23, now=_cst(2))
    issued = _cst(2, 10)
    deadline = datetime(2026, 3, 4, 23, 59, 59, 999000, tzinfo=CST).astimezone(UTC)
    tasks, observations, notices = [], [], []
    for i, (tid, platform) in enumerate(
        [("on-time", "jd"), ("feed-only", "jd"), ("contradicted", "jd"), ("relisted", "tmall"),
         ("disputed", "jd"), ("withdrawn", "tmall"), ("overdue", "tmall"), ("late", "jd")]
    ):  # fmt: skip
        listing = {**gen.listing(platform, i), "listing_id": f"L{i}"}
        observations.append({**listing, "observed_at": _cst(1)})
        tasks.append(
            delist_task(tid, platform, f"L{i}", issued, deadline, seller_id=listing["seller_id"])
        )
    by_id = {t["task_id"]: t for t in tasks}
    listing_of = {
        t["task_id"]: next(o for o in observations if o["listing_id"] == t["listing_id"])
        for t in tasks
    }

    def seen(tid: str, day: int, hour: int, active: bool) -> None:
        observations.append(
            {
                **listing_of[tid],
                "status": "ACTIVE" if active else "REMOVED",
                "observed_at": _cst(day, hour),
            }
        )

    def notice(nid: str, tid: str, day: int, hour: int, action: str = "REMOVED") -> None:
        task = by_id[tid]
        notices.append(
            {
                "notice_id": nid,
                "platform": task["platform"],
                "listing_id": task["listing_id"],
                "task_id": tid,
                "action": action,
                "reason": "we dispute the match" if action == "DISPUTED" else "taken down",
                "acted_at": _cst(day, hour),
            }
        )

    notice("n1", "on-time", 3, 9)
    seen("feed-only", 2, 18, active=False)
    notice("n3", "contradicted", 3, 9)
    seen("contradicted", 5, 9, active=True)
    seen("relisted", 3, 9, active=False)
    seen("relisted", 6, 10, active=True)
    notice("n5", "disputed", 3, 0, action="DISPUTED")
    notice("n8", "late", 5, 8)
    tasks.append({**by_id["withdrawn"], "state": "WITHDRAWN", "reason": "result overturned"})
    for task in tasks:
        produce_avro(bootstrap, topics.tasks(task["platform"]), "task", [task], "task_id")
    produce_avro(bootstrap, topics.valid("listing"), "listing", observations, "listing_id")
    produce_avro(bootstrap, topics.valid("takedown"), "takedown", notices, "notice_id")
    produce_raw(bootstrap, topics.valid("takedown"), [(b"garbage", GARBAGE)])
    decision = {
        "decision_id": "d-disputed-UPHOLD",
        "decision": "UPHOLD",
        "review_id": None,
        "task_id": "disputed",
        "platform": "jd",
        "listing_id": by_id["disputed"]["listing_id"],
        "inspection_id": "SAMR-2026-00001",
        "decided_by": "officer-7",
        "reason": "checked the listing",
        "decided_at": _cst(9, 11),
    }
    produce_avro(bootstrap, topics.decisions, "review_decision", [decision], "task_id")
    # a compensation-first claim: its task as intel issues it, then the claim resolved
    complaint = {
        **gen.complaint("tmall", 1),
        "issue_type": "QUALITY",
        "channel": "PLATFORM",
        "received_at": _cst(2, 9),
    }
    claims = comply_job(bootstrap, topics, platforms=COMPLY_PLATFORMS).claims
    fact = complaint_fact(complaint, "omm.valid.complaints/0/0")
    claim = compensation_task(fact, claims.period_end_ms(fact) + claims.lateness_ms, claims)
    produce_avro(bootstrap, topics.tasks("tmall"), "task", [claim], "task_id")
    resolved = {
        **complaint,
        "status": "RESOLVED",
        "resolved_at": datetime.fromtimestamp(claim["deadline_at"] / 1000 - 3600, UTC),
    }
    produce_avro(
        bootstrap, topics.valid("complaint"), "complaint", [complaint, resolved], "complaint_id"
    )


def _run_comply(bootstrap: str, topics: TopicNames, args: list[str]) -> Any:
    job = comply_job(
        bootstrap, topics, platforms=COMPLY_PLATFORMS, idle_timeout_s=IDLE_S, tick_seconds=1.0
    )
    return run_comply(job, args)


COMPLY = Stage(
    name="comply",
    platforms=COMPLY_PLATFORMS,
    inputs=[_names.tasks(p) for p in COMPLY_PLATFORMS]
    + [_names.valid("listing"), _names.valid("takedown"), _names.decisions]
    + [_names.valid("complaint")],
    outputs=[_names.compliance_status, _names.scorecards, _names.dlq]
    + [_names.compliance(p) for p in COMPLY_PLATFORMS],
    write=write_comply,
    run=_run_comply,
    latest=True,
    # what it read and how: the statuses and scorecards it published on the way depend
    # on the order evidence arrived in (the last per task and platform do not: compared)
    account_fields=("read", "tracked", "untracked", "dead"),
)

STAGES = {s.name: s for s in (INGEST, ENFORCE, COMPLY)}

# ------------------------------------------------------------------ fixtures


class Baselines:
    """Per stage: its inputs, written once, and the FnApiRunner's outputs over them."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self._inputs: dict[str, TopicNames] = {}
        self._outputs: dict[str, Outputs] = {}

    def inputs(self, stage: Stage) -> TopicNames:
        if stage.name not in self._inputs:
            topics = fresh_namespace(stage.platforms, self.bootstrap)
            stage.write(self.bootstrap, topics)
            self._inputs[stage.name] = topics
        return self._inputs[stage.name]

    def fnapi(self, stage: Stage) -> Outputs:
        if stage.name not in self._outputs:
            self._outputs[stage.name] = run_stage(self.bootstrap, stage, self.inputs(stage), FNAPI)
        return self._outputs[stage.name]


@pytest.fixture(scope="module")
def baselines(kafka_bootstrap: str) -> Baselines:
    return Baselines(kafka_bootstrap)


@dataclass(frozen=True)
class WorkerPool:
    address: str
    log: Path

    def workers_started(self) -> int:
        return self.log.read_text(errors="replace").count("Starting worker with command")


@pytest.fixture(scope="module")
def worker_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    """A Beam worker pool in another process: its SDK workers (processes it starts) run in
    an empty directory, with every ``OMM_*`` variable removed from their environment."""
    port = free_port()
    elsewhere = tmp_path_factory.mktemp("worker-pool")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMM_")}
    # the pool starts its workers as `python`: this virtualenv's, which has omm's code
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log_path = elsewhere / "pool.log"
    log = log_path.open("wb")
    pool = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            f"--service_port={port}",
        ],
        cwd=elsewhere,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers in its process group, stopped with it
    )
    try:
        deadline = time.monotonic() + 120.0  # a loaded machine imports Beam slowly
        while True:
            assert pool.poll() is None, log_path.read_text()
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline, "worker pool not listening after 120 s"
            time.sleep(0.2)
        yield WorkerPool(f"localhost:{port}", log_path)
    finally:
        os.killpg(pool.pid, signal.SIGTERM)
        try:
            pool.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, signal.SIGKILL)
            pool.wait()
        log.close()


def assert_same(stage: Stage, expected: Outputs, got: Outputs) -> None:
    assert got.account == expected.account
    for name in stage.outputs:
        assert got.topics[name] == expected.topics[name], name


# ------------------------------------------------------------------ the tests


@pytest.mark.parametrize("name", list(STAGES))
def test_prism_writes_what_the_fnapi_runner_writes(name: str, baselines: Baselines) -> None:
    stage = STAGES[name]
    expected = baselines.fnapi(stage)
    # the scenario reaches every kind of output it is meant to, so "equal" is not "both empty"
    assert all(expected.topics[t] for t in _must_fill(stage)), expected.topics
    if name == "comply":  # the compensation-first claim, resolved in time, is compared too
        statuses = "".join(expected.topics[TopicNames().compliance_status])
        assert '"task_kind": "COMPENSATION_FIRST"' in statuses
        assert '"evidence_kind": "COMPLAINT"' in statuses
    got = run_stage(baselines.bootstrap, stage, baselines.inputs(stage), PRISM)
    assert_same(stage, expected, got)


@pytest.mark.parametrize("name", list(STAGES))
def test_the_job_alone_suffices_for_workers_in_another_process(
    name: str, baselines: Baselines, worker_pool: WorkerPool
) -> None:
    stage = STAGES[name]
    expected = baselines.fnapi(stage)
    started = worker_pool.workers_started()
    external = [
        *PRISM,
        "--environment_type=EXTERNAL",
        f"--environment_config={worker_pool.address}",
    ]
    got = run_stage(baselines.bootstrap, stage, baselines.inputs(stage), external)
    assert worker_pool.workers_started() > started  # the pool's workers ran it, not this process
    assert_same(stage, expected, got)


def _must_fill(stage: Stage) -> list[str]:
    n = TopicNames()
    return {
        "ingest": [
            n.valid("listing"),
            n.valid("complaint"),
            n.valid("inspection"),
            n.dlq,
            n.feedback("tmall"),
            n.feedback("jd"),
            n.feed_health,
        ],
        "enforce": [n.tasks(p) for p in ENFORCE_PLATFORMS] + [n.dlq],
        "comply": [n.compliance_status, n.scorecards, n.dlq]
        + [n.compliance(p) for p in COMPLY_PLATFORMS],
    }[stage.name]


def test_prism_needs_no_options_beyond_its_name() -> None:
    args = pipeline_args_with_defaults(["--runner=PrismRunner"], streaming=False)
    location = next(a.split("=", 1)[1] for a in args if a.startswith("--prism_location="))
    assert Path(location).is_file() and os.access(location, os.X_OK)
    assert "--environment_type=LOOPBACK" in args
    # what the operator says wins
    mine = [
        "--runner",
        "PrismRunner",
        "--environment_type",
        "EXTERNAL",
        f"--prism_location={location}",
    ]
    assert pipeline_args_with_defaults(mine, streaming=False) == mine


def test_streaming_ingest_on_prism_is_live_and_stops(kafka_bootstrap: str) -> None:
    """A streaming ingest on Prism (LOOPBACK, run from a thread as ``omm run`` does) writes
    records as they arrive and ends when an operator's stop is asked for."""
    topics = fresh_namespace(["tmall"], kafka_bootstrap)
    gen = FeedGenerator(seed=24)
    feed = topics.feed("tmall", "listings")
    produce_avro(
        kafka_bootstrap, feed, "listing", [gen.listing("tmall", i) for i in range(20)], "listing_id"
    )
    job = ingest_job(
        kafka_bootstrap, topics, platforms=["tmall"], group_id=f"{topics.prefix}ingest", key=KEY
    )
    done: list[Any] = []
    runner = threading.Thread(
        target=lambda: done.append(
            run_ingest(job, pipeline_args_with_defaults(PRISM, streaming=True))
        ),
        daemon=True,
    )
    delivery.clear_stop()
    runner.start()
    try:
        # Prism's start-up and the first poll on a loaded machine: generous, never a sleep
        _wait_for(kafka_bootstrap, topics.valid("listing"), 20, runner, deadline_s=180.0)
        produce_avro(
            kafka_bootstrap,
            feed,
            "listing",
            [gen.listing("tmall", i) for i in range(20, 30)],
            "listing_id",
        )
        # still running: the new records come through while the pipeline lives
        _wait_for(kafka_bootstrap, topics.valid("listing"), 30, runner, deadline_s=120.0)
        assert runner.is_alive()
    finally:
        delivery.request_stop()
        runner.join(timeout=120.0)
        delivery.clear_stop()
    assert not runner.is_alive() and done, "the streaming run did not end after the stop"
    (account,) = done[0]
    assert (account.read, account.valid, account.dead) == (30, 30, 0)


def _wait_for(
    bootstrap: str, topic: str, count: int, runner: threading.Thread, deadline_s: float
) -> None:
    deadline = time.monotonic() + deadline_s
    seen = 0
    while time.monotonic() < deadline:
        assert runner.is_alive(), "the streaming run ended by itself"
        seen = len(read_all(bootstrap, topic, timeout_s=2.0))
        if seen >= count:
            return
    raise AssertionError(f"{seen} of {count} records on {topic} after {deadline_s:.0f} s")


def test_a_missing_prism_says_to_run_make_prism(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMM_PRISM", str(tmp_path / "prism"))
    with pytest.raises(UserError, match=r"make prism"):
        pipeline_args_with_defaults(["--runner=PrismRunner"], streaming=False)
