"""Fault-injection harness: kill -9 a streaming ``omm run all`` and restart its broker.

What it does, all seeded (same seed, same workload and same fault schedule):

1. starts a private EmbeddedKafka (free ports, a temp home) so stopping and
   starting it disturbs nobody else;
2. generates a workload (valid and broken listings, complaints and takedowns
   on several platforms, garbage bytes, FAIL and PASS results) split in waves;
3. reference: creates the topics under one prefix (``omm topics create
   --prefix``), pushes every wave, runs the bounded ``omm run all --until-idle``;
4. faulty run: a second prefix, the same inputs (same partitions, same order,
   hence the same source offsets) pushed wave by wave while a streaming
   ``omm run all`` runs as a subprocess; the process is SIGKILLed at seeded
   points (after N more output records, or a few seconds into its start-up)
   and restarted; once, the broker is stopped for an outage and started again,
   and a wave pushed after it must be ingested by the same process;
5. once every source record is accounted for and the task topics are quiet,
   it compares the two runs and counts duplicates and losses.

Comparison rules:

- tasks (``omm.tasks.*``) and match reviews are keyed by id; for each id the
  latest record of one run must equal the other's, field by field and byte
  for byte once its evidence is made run-independent: an ``evidence_ref``
  names positions on ``omm.valid.*``, which depend on the run (prefix,
  duplicates before it, interleaving), so each is replaced by the source
  position its valid record carries in the ``omm.source`` header.
- accounts per source topic: every offset leaves as exactly one of valid
  (``omm.valid.*`` via ``omm.source``), quarantined, or dead letter (``omm.dlq``
  via ``__connect.errors.topic/partition/offset``), each counted once however
  often replay wrote it: in = valid + quarantined + dead.
- lost: an offset on no output, a valid input not on ``omm.valid.*`` or a bad
  one not in the DLQ, or a dead letter without its feedback record.
- duplicates per output topic: records beyond the first for one identity
  (source position; task id and state; review id; feedback position).

Run a longer campaign with ``python -m tests.faults --seed N`` (see ``--help``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from connectors.broker.manager import EmbeddedKafka, free_port
from connectors.topics import TopicNames
from omm.generate import CATALOG, GARBAGE, FeedGenerator, broken_listings
from schemas.feeds import FEED_NAMES
from schemas.registry import SchemaRegistry

REPO = Path(__file__).resolve().parents[1]
REGISTRY = SchemaRegistry.load()
SOURCE_HEADER = "omm.source"
CONNECT = "__connect.errors."
# A fixed test key (not a secret): both runs must pseudonymise complaints alike.
PSEUDONYM_KEY = "fault-suite-key-not-a-secret"
SUITE_PLATFORMS = ("taobao", "jd", "suning", "gome")

Log = Callable[[str], None]
T = TypeVar("T")


def _stderr_log(line: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- workload


@dataclass(frozen=True)
class InputRecord:
    topic: str  # unprefixed source topic
    key: bytes
    value: bytes | None
    fate: str  # "valid" | "dead": what ingest must do with it


@dataclass(frozen=True)
class Workload:
    waves: tuple[tuple[InputRecord, ...], ...]

    @property
    def records(self) -> int:
        return sum(len(w) for w in self.waves)


def generate_workload(seed: int, listings_per_platform: int, waves: int) -> Workload:
    """Valid and bad records on SUITE_PLATFORMS plus regulator results, in seeded waves.

    Every listing has a seller of its own, so a REMEDIATION task (one per
    seller and result) has exactly one listing to cite: which listing is cited
    when a seller has several is read-order dependent today (issue 8, defect 1),
    and this suite is about faults, not read order. No listing is ever REMOVED
    for the same reason.
    """
    rng = random.Random(seed)
    gen = FeedGenerator(seed, now=datetime.now(UTC))
    failed = rng.sample(CATALOG, 3)
    passed = [p for p in CATALOG if p not in failed][:2]
    feeds = TopicNames()
    items: list[InputRecord] = []

    def add(topic: str, key: str, entity: str | None, record: Any, fate: str) -> None:
        value = REGISTRY.encode(entity, record) if entity else record
        items.append(InputRecord(topic, key.encode(), value, fate))

    for platform in SUITE_PLATFORMS:
        listings = feeds.feed(platform, "listings")
        for n in range(listings_per_platform):
            product = failed[n % len(failed)] if rng.random() < 0.4 else rng.choice(CATALOG)
            rec = {**gen.listing(platform, n, product), "seller_id": f"{platform}-s{n:05d}"}
            rec["seller_name"] = f"Shop {rec['seller_id']}"
            add(listings, rec["listing_id"], "listing", rec, "valid")
        bad = max(3, listings_per_platform // 8)
        for rec, _rule in broken_listings(gen, platform, bad, start=50_000):
            add(listings, f"bad-{rec['listing_id']}", "listing", rec, "dead")
        complaints = feeds.feed(platform, "complaints")
        for n in range(listings_per_platform // 2):
            rec = gen.complaint(platform, n)
            add(complaints, rec["complaint_id"], "complaint", rec, "valid")
        takedowns = feeds.feed(platform, "takedowns")
        for n in range(listings_per_platform // 4):
            rec = gen.takedown(platform, n)
            add(takedowns, rec["notice_id"], "takedown", rec, "valid")
        add(takedowns, f"garbage-{platform}", None, GARBAGE, "dead")
        add(complaints, f"tombstone-{platform}", None, None, "dead")
    results = feeds.regulator("inspections")
    for i, product in enumerate(failed):
        rec = gen.inspection(i + 1, product, verdict="FAIL")
        add(results, rec["inspection_id"], "inspection", rec, "valid")
    for i, product in enumerate(passed):
        rec = gen.inspection(100 + i, product, verdict="PASS")
        add(results, rec["inspection_id"], "inspection", rec, "valid")
    add(results, "garbage-results", None, GARBAGE, "dead")

    rng.shuffle(items)
    size = -(-len(items) // waves)
    return Workload(tuple(tuple(items[i : i + size]) for i in range(0, len(items), size)))


# ---------------------------------------------------------------- kafka plumbing


def _partition_of(key: bytes, partitions: int) -> int:
    # explicit and stable: both prefixes must put a record on the same partition
    return zlib.crc32(key) % partitions


class Feeder:
    """Pushes waves to a prefix; reliable on its own (it must not be the fault)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: KafkaProducer | None = None
        self.pushed: dict[str, int] = {}  # prefix -> records acknowledged

    def _client(self) -> KafkaProducer:
        if self._producer is None:
            self._producer = KafkaProducer(
                bootstrap_servers=self._bootstrap.split(","),
                acks="all",
                enable_idempotence=True,  # a retried batch is written once
                retries=2**31 - 1,
                delivery_timeout_ms=300_000,
                request_timeout_ms=30_000,
                # one batch in flight: a retried batch must not overtake the next
                max_in_flight_requests_per_connection=1,
                linger_ms=5,
            )
        return self._producer

    def push(self, prefix: str, wave: tuple[InputRecord, ...]) -> None:
        producer = self._client()
        futures = []
        for rec in wave:
            topic = prefix + rec.topic
            parts = _wait_for(
                lambda t=topic: producer.partitions_for(t), 60.0, f"partitions of {topic}"
            )
            partition = _partition_of(rec.key, len(parts))
            futures.append(producer.send(topic, key=rec.key, value=rec.value, partition=partition))
        producer.flush()
        for future in futures:
            future.get(timeout=300)
        self.pushed[prefix] = self.pushed.get(prefix, 0) + len(wave)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None


def _all_led(bootstrap: str) -> bool:
    """Whether every partition of every topic (offsets topic included) has a leader."""
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), request_timeout_ms=10_000)
    except KafkaError:
        return False
    try:
        topics = admin.describe_topics()
        return bool(topics) and all(
            part.get("leader_id", part.get("leader", -1)) >= 0
            for topic in topics
            for part in topic.get("partitions", [])
        )
    except KafkaError:
        return False
    finally:
        admin.close()


def _wait_for(probe: Callable[[], Any], timeout_s: float, what: str, every_s: float = 0.5) -> Any:
    """Poll ``probe`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up after {timeout_s:g}s waiting for {what}")
        time.sleep(every_s)


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


class Reader:
    """Reads whole topics and their end offsets; recreated after a broker outage."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._consumer: KafkaConsumer | None = None

    def _client(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=self._bootstrap.split(","),
                enable_auto_commit=False,
                request_timeout_ms=30_000,
            )
        return self._consumer

    def reset(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):  # the broker may be gone: just drop it
                self._consumer.close()
            self._consumer = None

    def _retrying(self, call: Callable[[], T], timeout_s: float = 180.0) -> T:
        """Retry while Kafka says the error is transient: a broker just back from an
        outage answers with no leaders for a moment, and the harness must not be
        the part that fails."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return call()
            except KafkaError as exc:
                if not exc.retriable or time.monotonic() >= deadline:
                    raise
                self.reset()
                time.sleep(1.0)

    def partitions(self, topic: str) -> list[TopicPartition]:
        parts = self._retrying(lambda: self._client().partitions_for_topic(topic)) or set()
        return [TopicPartition(topic, p) for p in sorted(parts)]

    def end_offsets(self, topics: list[str]) -> dict[TopicPartition, int]:
        def ends() -> dict[TopicPartition, int]:
            tps = [tp for t in topics for tp in self.partitions(t)]
            return dict(self._client().end_offsets(tps)) if tps else {}

        return self._retrying(ends)

    def total(self, topics: list[str]) -> int:
        return sum(self.end_offsets(topics).values())

    def read(self, topic: str, timeout_s: float = 120.0) -> list[Rec]:
        return self._retrying(lambda: self._read(topic, timeout_s))

    def _read(self, topic: str, timeout_s: float) -> list[Rec]:
        consumer = self._client()
        tps = self.partitions(topic)
        if not tps:
            return []
        ends = consumer.end_offsets(tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: list[Rec] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s:g}s")
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    if r.offset < ends[TopicPartition(r.topic, r.partition)]:
                        out.append(
                            Rec(
                                r.topic,
                                r.partition,
                                r.offset,
                                r.key,
                                r.value,
                                {k: v for k, v in (r.headers or [])},
                            )
                        )
        consumer.unsubscribe()
        return out


# ---------------------------------------------------------------- the pipeline process


class PipelineProcess:
    """``omm run all`` (streaming or bounded) as a subprocess in its own session."""

    def __init__(self, bootstrap: str, prefix: str, home: Path, log_dir: Path) -> None:
        self.prefix = prefix
        self._env = {
            **os.environ,
            "OMM_KAFKA_BOOTSTRAP": bootstrap,
            "OMM_HOME": str(home),
            "OMM_PSEUDONYM_KEY": PSEUDONYM_KEY,
            "PYTHONUNBUFFERED": "1",
        }
        self._log_dir = log_dir
        self._proc: subprocess.Popen[bytes] | None = None
        self.launches = 0
        self.started_at = 0.0
        self.expected_exit = False  # killed by us: its exit is no crash

    def _command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "omm.cli", *args]

    def run(self, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        """A one-shot command (topics create, a bounded run); its output goes to the log dir."""
        done = subprocess.run(
            self._command(*args),
            env=self._env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        name = "-".join(a.strip("-") for a in args[:2])
        (self._log_dir / f"{self.prefix}{name}.log").write_text(done.stdout + done.stderr)
        return done

    def start(self) -> None:
        assert not self.alive(), "already running"
        self.launches += 1
        self.expected_exit = False
        log = (self._log_dir / f"{self.prefix}run-all-{self.launches:02d}.log").open("wb")
        self._proc = subprocess.Popen(
            self._command("run", "all", "--prefix", self.prefix),
            env=self._env,
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def exit_code(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def kill(self) -> None:
        """SIGKILL the whole session the process leads (Beam may have started helpers)."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(timeout=60)

    def log_tail(self, lines: int = 30) -> str:
        """The last error lines of the current launch's log (else its last lines)."""
        path = self._log_dir / f"{self.prefix}run-all-{self.launches:02d}.log"
        with contextlib.suppress(OSError):
            text = path.read_text(errors="replace").splitlines()
            errors = [
                line
                for line in text
                if re.search(r"Exception in thread|Error:|Traceback", line)
                and "KafkaConnectionError" not in line
            ]
            return "\n".join((errors or text)[-lines:])
        return ""


def create_topics(proc: PipelineProcess) -> None:
    done = proc.run("topics", "create", "--prefix", proc.prefix, timeout_s=300)
    if done.returncode != 0:
        raise RuntimeError(f"omm topics create failed:\n{done.stdout}\n{done.stderr}")


# ---------------------------------------------------------------- observing a run


@dataclass
class RunView:
    """What one prefix's output topics say, reduced to what the comparison needs."""

    prefix: str
    sources: dict[str, set[tuple[int, int]]]  # unprefixed source topic -> positions
    valid: dict[str, bytes] = field(default_factory=dict)  # source position -> valid bytes
    valid_seen: Counter[str] = field(default_factory=Counter)
    quarantined: Counter[str] = field(default_factory=Counter)
    dead: Counter[str] = field(default_factory=Counter)
    feedback: Counter[str] = field(default_factory=Counter)
    duplicates: dict[str, int] = field(default_factory=dict)  # unprefixed topic -> count
    records_out: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # task id -> canonical record
    reviews: dict[str, dict[str, Any]] = field(default_factory=dict)

    def accounted(self) -> set[str]:
        return set(self.valid_seen) | set(self.quarantined) | set(self.dead)

    def all_positions(self) -> set[str]:
        return {f"{t}/{p}/{o}" for t, ps in self.sources.items() for p, o in ps}


def _position(topic: str, partition: int | str, offset: int | str, prefix: str) -> str:
    if prefix and topic.startswith(prefix):
        topic = topic[len(prefix) :]
    return f"{topic}/{partition}/{offset}"


_POSITION = re.compile(r"(\S+)/(\d+)/(\d+)")


def _source_topics(prefix: str, platforms: list[str]) -> list[str]:
    return [s.name for s in TopicNames(prefix).sources(platforms)]


def _output_topics(prefix: str, platforms: list[str]) -> list[str]:
    names = TopicNames(prefix)
    return [
        *(names.valid(e) for e in FEED_NAMES),
        *(names.quarantine(e) for e in FEED_NAMES if e != "penalty"),
        names.dlq,
        names.feedback(None),
        *(names.feedback(p) for p in platforms),
        *(names.tasks(p) for p in platforms),
        names.review,
    ]


def observe(reader: Reader, prefix: str, platforms: list[str]) -> RunView:
    """Read every source and output topic of ``prefix`` and reduce them to a RunView."""
    names = TopicNames(prefix)
    sources: dict[str, set[tuple[int, int]]] = {}
    for topic in _source_topics(prefix, platforms):
        ends = reader.end_offsets([topic])
        sources[names.strip(topic)] = {
            (tp.partition, o) for tp, end in ends.items() for o in range(end)
        }
    view = RunView(prefix, sources)

    def tally(topic: str, identities: list[str]) -> Counter[str]:
        seen = Counter(identities)
        short = names.strip(topic)
        view.records_out[short] = len(identities)
        view.duplicates[short] = len(identities) - len(seen)
        return seen

    # valid-topic position -> source position, to make evidence run-independent
    valid_to_source: dict[str, str] = {}
    for entity in FEED_NAMES:
        topic = names.valid(entity)
        recs = reader.read(topic)
        ids = []
        for r in recs:
            src = r.headers.get(SOURCE_HEADER, b"").decode()
            source = _position(*src.rsplit("/", 2), prefix) if src else f"?{r.offset}"
            valid_to_source[_position(topic, r.partition, r.offset, prefix)] = source
            view.valid.setdefault(source, r.value or b"")
            ids.append(source)
        view.valid_seen.update(tally(topic, ids))
    for entity in FEED_NAMES:
        if entity == "penalty":
            continue
        topic = names.quarantine(entity)
        ids = [
            _position(*r.headers.get(SOURCE_HEADER, b"?/0/0").decode().rsplit("/", 2), prefix)
            for r in reader.read(topic)
        ]
        view.quarantined.update(tally(topic, ids))
    source_names = set(view.sources)
    dlq_ids = []
    for r in reader.read(names.dlq):
        h = {k[len(CONNECT) :]: v.decode() for k, v in r.headers.items() if k.startswith(CONNECT)}
        pos = _position(h.get("topic", "?"), h.get("partition", "?"), h.get("offset", "?"), prefix)
        # enforce's own dead letters (undecodable valid records) are not ingest's account
        dlq_ids.append(pos if pos.rsplit("/", 2)[0] in source_names else f"enforce:{pos}")
    dead_all = tally(names.dlq, dlq_ids)
    view.dead.update({k: v for k, v in dead_all.items() if not k.startswith("enforce:")})
    for platform in [None, *platforms]:
        topic = names.feedback(platform)
        ids = [
            _position(*(r.key or b"?/0/0").decode().rsplit("/", 2), prefix)
            for r in reader.read(topic)
        ]
        view.feedback.update(tally(topic, ids))

    def canonical(record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        ref = out.get("evidence_ref")
        if isinstance(ref, str):
            out["evidence_ref"] = _POSITION.sub(
                lambda m: valid_to_source.get(
                    _position(m.group(1), m.group(2), m.group(3), prefix),
                    "UNRESOLVED:" + _position(m.group(1), m.group(2), m.group(3), prefix),
                ),
                ref,
            )
        return out

    for platform in platforms:
        topic = names.tasks(platform)
        recs = reader.read(topic)
        ids = []
        for r in sorted(recs, key=lambda r: (r.partition, r.offset)):
            _, task = REGISTRY.decode(r.value or b"")
            ids.append(f"{task['task_id']}|{task['state']}")
            view.tasks[task["task_id"]] = canonical(task)  # the latest wins
        tally(topic, ids)
    ids = []
    for r in sorted(reader.read(names.review), key=lambda r: (r.partition, r.offset)):
        _, review = REGISTRY.decode(r.value or b"")
        ids.append(review["review_id"])
        view.reviews[review["review_id"]] = canonical(review)
    tally(names.review, ids)
    return view


# ---------------------------------------------------------------- verdicts


@dataclass
class Comparison:
    tasks_reference: int
    tasks_faulty: int
    tasks_missing: list[str]
    tasks_extra: list[str]
    tasks_differing: list[str]  # same id, other fields or bytes
    reviews_differing: list[str]
    unbalanced: list[str]  # per source topic, human-readable
    lost: list[str]  # source positions
    misrouted: list[str]  # valid input dead-lettered or the reverse
    twice: list[str]  # both valid and dead
    no_feedback: list[str]
    valid_bytes_differing: list[str]
    diff_fields: Counter[str] = field(default_factory=Counter)  # task fields that differ
    example: str = ""  # one differing task, both versions, for the log

    def details(self) -> str:
        """What differs, briefly, for a failure message."""
        parts = []
        if self.diff_fields:
            parts.append(f"task fields differing: {dict(self.diff_fields)}")
        if self.example:
            parts.append(self.example)
        for name in (
            "tasks_missing",
            "tasks_extra",
            "lost",
            "misrouted",
            "twice",
            "no_feedback",
            "valid_bytes_differing",
            "unbalanced",
        ):
            items = getattr(self, name)
            if items:
                parts.append(f"{name} ({len(items)}): {items[:5]}")
        return "\n".join(parts)

    @property
    def tasks_equal(self) -> bool:
        return not (self.tasks_missing or self.tasks_extra or self.tasks_differing)

    @property
    def nothing_lost(self) -> bool:
        return not (self.lost or self.misrouted or self.no_feedback)


def _task_bytes(entity: str, record: dict[str, Any]) -> bytes:
    return REGISTRY.encode(entity, record)


def compare(
    reference: RunView,
    faulty: RunView,
    fates: dict[str, str],
    encode: Callable[[dict[str, Any]], bytes] = lambda task: _task_bytes("task", task),
) -> Comparison:
    """The faulty run's verdicts against the reference; ``encode`` gives a task's bytes."""
    ref_ids, got_ids = set(reference.tasks), set(faulty.tasks)
    differing = [
        tid
        for tid in sorted(ref_ids & got_ids)
        if reference.tasks[tid] != faulty.tasks[tid]
        or encode(reference.tasks[tid]) != encode(faulty.tasks[tid])
    ]
    diff_fields: Counter[str] = Counter()
    for tid in differing:
        ref, got = reference.tasks[tid], faulty.tasks[tid]
        diff_fields.update(k for k in set(ref) | set(got) if ref.get(k) != got.get(k))
    example = ""
    if differing:
        ref, got = reference.tasks[differing[0]], faulty.tasks[differing[0]]
        example = f"e.g. {differing[0]}: " + "; ".join(
            f"{k}: {ref.get(k)!r} (fault-free) vs {got.get(k)!r}"
            for k in sorted(set(ref) | set(got))
            if ref.get(k) != got.get(k)
        )
    reviews_differing = sorted(
        rid
        for rid in set(reference.reviews) | set(faulty.reviews)
        if reference.reviews.get(rid) != faulty.reviews.get(rid)
    )
    unbalanced: list[str] = []
    lost: list[str] = []
    misrouted: list[str] = []
    twice: list[str] = []
    for topic, positions in sorted(faulty.sources.items()):
        everything = {f"{topic}/{p}/{o}" for p, o in positions}
        valid = everything & set(faulty.valid_seen)
        quarantined = everything & set(faulty.quarantined)
        dead = everything & set(faulty.dead)
        if len(everything) != len(valid) + len(quarantined) + len(dead):
            unbalanced.append(
                f"{topic}: in {len(everything)} != valid {len(valid)} + quarantined "
                f"{len(quarantined)} + dead {len(dead)}"
            )
        lost += sorted(everything - valid - quarantined - dead)
        twice += sorted((valid | quarantined) & dead)
        for pos in everything:
            fate = fates.get(pos)
            if (fate == "valid" and pos in dead) or (fate == "dead" and pos in valid | quarantined):
                misrouted.append(pos)
    no_feedback = sorted(set(faulty.dead) - set(faulty.feedback))
    valid_bytes_differing = sorted(
        pos
        for pos in set(reference.valid) & set(faulty.valid)
        if reference.valid[pos] != faulty.valid[pos]
    )
    return Comparison(
        tasks_reference=len(ref_ids),
        tasks_faulty=len(got_ids),
        tasks_missing=sorted(ref_ids - got_ids),
        tasks_extra=sorted(got_ids - ref_ids),
        tasks_differing=differing,
        reviews_differing=reviews_differing,
        unbalanced=unbalanced,
        lost=lost,
        misrouted=sorted(misrouted),
        twice=twice,
        no_feedback=no_feedback,
        valid_bytes_differing=valid_bytes_differing,
        diff_fields=diff_fields,
        example=example,
    )


# ---------------------------------------------------------------- the campaign


@dataclass(frozen=True)
class FaultPlan:
    seed: int = 8
    kills: int = 10
    broker_restarts: int = 1
    outage_s: float = 15.0
    listings_per_platform: int = 24
    waves: int = 5
    # how long a wave pushed after an outage may take to appear, same process
    survive_deadline_s: float = 120.0
    progress_deadline_s: float = 240.0
    settle_deadline_s: float = 600.0
    idle_s: float = 10.0


@dataclass
class FaultEvent:
    kind: str  # "kill", "broker-restart", "crash"
    at_s: float
    detail: str


@dataclass
class FaultReport:
    plan: FaultPlan
    records: int
    valid_inputs: int
    bad_inputs: int
    events: list[FaultEvent]
    launches: int
    outages_survived: int
    outages: int
    comparison: Comparison
    duplicates: dict[str, int]
    records_out: dict[str, int]
    reference_duplicates: dict[str, int]
    elapsed_s: float
    code: str

    @property
    def kills(self) -> int:
        return sum(1 for e in self.events if e.kind == "kill")

    @property
    def crashes(self) -> int:
        return sum(1 for e in self.events if e.kind == "crash")

    @property
    def total_duplicates(self) -> int:
        return sum(self.duplicates.values())

    def summary(self) -> str:
        c = self.comparison
        out = sum(v for k, v in self.records_out.items() if v)
        balance = "yes" if not c.unbalanced else "NO: " + "; ".join(c.unbalanced)
        dup_lines = ", ".join(f"{t} {n}" for t, n in sorted(self.duplicates.items()) if n) or "none"
        lines = [
            f"fault-injection run (seed {self.plan.seed}, code: {self.code}, "
            f"{self.elapsed_s:.0f}s)",
            f"  faults injected: {self.kills} x kill -9 of streaming `omm run all`, "
            f"{self.outages} broker stop/start ({self.plan.outage_s:g}s outage each); "
            f"{self.launches} launches; {self.crashes} unplanned exits",
            f"  outages ridden out by the running pipeline: {self.outages_survived}/{self.outages}",
            f"  records in: {self.records} ({self.valid_inputs} valid, {self.bad_inputs} bad) "
            f"in {self.plan.waves} waves; records out (all incl. duplicates): {out}",
            f"  duplicates: {self.total_duplicates} ({dup_lines}); "
            f"fault-free reference: {sum(self.reference_duplicates.values())}",
            f"  lost: {len(c.lost)}; misrouted: {len(c.misrouted)}; both valid and dead: "
            f"{len(c.twice)}; dead letters without feedback: {len(c.no_feedback)}",
            f"  accounts balanced: {balance}",
            f"  tasks: {c.tasks_faulty} vs {c.tasks_reference} fault-free; "
            f"{'equal' if c.tasks_equal else 'DIFFER'} (missing {len(c.tasks_missing)}, "
            f"extra {len(c.tasks_extra)}, differing {len(c.tasks_differing)}); "
            f"reviews differing {len(c.reviews_differing)}; "
            f"valid bytes differing {len(c.valid_bytes_differing)}",
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "seed": self.plan.seed,
            "code": self.code,
            "kills": self.kills,
            "broker_restarts": self.outages,
            "outages_survived": self.outages_survived,
            "crashes": self.crashes,
            "records": self.records,
            "duplicates": self.total_duplicates,
            "duplicates_per_topic": {k: v for k, v in self.duplicates.items() if v},
            "lost": len(c.lost),
            "tasks_equal": c.tasks_equal,
            "tasks": c.tasks_faulty,
            "balanced": not c.unbalanced,
            "events": [e.__dict__ for e in self.events],
        }


@contextlib.contextmanager
def private_broker(home: Path, timeout_s: float = 180.0) -> Iterator[EmbeddedKafka]:
    """A broker of our own on free ports, stopped whatever happens."""
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    broker = EmbeddedKafka(home, port=port, controller_port=controller)
    broker.start(timeout_s=timeout_s)
    try:
        yield broker
    finally:
        broker.stop()


def _code_description() -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD")
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    merged = [
        b
        for b in ("fix/delivery", "fix/enforce")
        if git("branch", "--list", b) and not git("rev-list", "-1", f"HEAD..{b}")
    ]
    if not head:
        return f"{REPO} (not a git checkout)"
    return f"{branch}@{head}" + (f" (contains {', '.join(merged)})" if merged else "")


class Campaign:
    """One seeded fault campaign against one private broker."""

    def __init__(self, broker: EmbeddedKafka, workdir: Path, plan: FaultPlan, log: Log) -> None:
        self.broker = broker
        self.bootstrap = broker.bootstrap
        self.workdir = workdir
        self.plan = plan
        self.log = log
        self.rng = random.Random(plan.seed * 7919 + 1)
        self.workload = generate_workload(plan.seed, plan.listings_per_platform, plan.waves)
        self.platforms = sorted(p for p in _all_platforms())
        self.reader = Reader(self.bootstrap)
        self.feeder = Feeder(self.bootstrap)
        self.events: list[FaultEvent] = []
        self.t0 = time.monotonic()
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        self._reference: RunView | None = None

    # the fates by source position: the same in both prefixes, by construction
    def fates(self) -> dict[str, str]:
        counters: dict[tuple[str, int], int] = {}
        out: dict[str, str] = {}
        probe = TopicNames()
        for wave in self.workload.waves:
            for rec in wave:
                parts = 3 if rec.topic.startswith(("omm.feed.", "omm.reg.")) else 1
                partition = _partition_of(rec.key, parts)
                offset = counters.get((rec.topic, partition), 0)
                counters[(rec.topic, partition)] = offset + 1
                out[f"{probe.strip(rec.topic)}/{partition}/{offset}"] = rec.fate
        return out

    def _process(self, prefix: str) -> PipelineProcess:
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        return PipelineProcess(self.bootstrap, prefix, home, self.workdir / "logs")

    def _event(self, kind: str, detail: str) -> None:
        self.events.append(FaultEvent(kind, round(time.monotonic() - self.t0, 1), detail))
        self.log(f"{kind}: {detail}")

    # ---------------------------------------------------------------- reference

    def reference(self) -> RunView:
        if self._reference is not None:
            return self._reference
        prefix = f"ref{uuid.uuid4().hex[:8]}."
        proc = self._process(prefix)
        create_topics(proc)
        for wave in self.workload.waves:
            self.feeder.push(prefix, wave)
        self.log(f"reference: {self.workload.records} records pushed under {prefix}; bounded run")
        done = proc.run("run", "all", "--prefix", prefix, "--until-idle", "5", timeout_s=900)
        if done.returncode != 0:
            raise RuntimeError(
                f"the fault-free bounded run failed ({done.returncode}):\n{done.stdout[-3000:]}"
                f"\n{done.stderr[-3000:]}"
            )
        self._reference = observe(self.reader, prefix, self.platforms)
        self.log(f"reference: {len(self._reference.tasks)} tasks")
        return self._reference

    # ---------------------------------------------------------------- faulty run

    def _outputs_total(self, prefix: str) -> int:
        return self.reader.total(_output_topics(prefix, self.platforms))

    def _wait_progress(self, proc: PipelineProcess, prefix: str, delta: int) -> str | None:
        """Wait until ``delta`` more output records appeared, or the run has caught up.

        Returns what happened ("progress" or "caught up"), None if the process
        died. Caught up: every source record pushed so far is accounted for and
        the outputs stopped growing, so waiting longer would wait for nothing.
        """
        start = last = self._outputs_total(prefix)
        deadline = time.monotonic() + self.plan.progress_deadline_s
        next_check = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if not proc.alive():
                return None
            total = self._outputs_total(prefix)
            if total >= start + delta:
                return "progress"
            if time.monotonic() >= next_check:
                view = observe(self.reader, prefix, self.platforms)
                if total == last and view.accounted() >= view.all_positions():
                    return "caught up"
                last, next_check = total, time.monotonic() + 2.0
            time.sleep(0.2)
        raise TimeoutError(
            f"no progress of {delta} records in {self.plan.progress_deadline_s:g}s; "
            f"log tail:\n{proc.log_tail()}"
        )

    def _ensure_running(self, proc: PipelineProcess) -> None:
        if not proc.alive():
            if proc.launches and not proc.expected_exit:
                self._event(
                    "crash",
                    f"the pipeline exited by itself (code {proc.exit_code}):\n{proc.log_tail(12)}",
                )
            proc.start()

    def _broker_restart(
        self, proc: PipelineProcess, prefix: str, wave: tuple[InputRecord, ...]
    ) -> bool:
        """Stop the broker for the outage, start it again; did the same process carry on?

        Carrying on means: a wave pushed after the broker is back is ingested
        (every record valid or dead-lettered) by the process that ran through
        the outage, without a restart.
        """
        launches = proc.launches
        self.reader.reset()
        self.feeder.close()
        self.broker.stop()
        self._event("broker-restart", f"broker stopped for {self.plan.outage_s:g}s")
        time.sleep(self.plan.outage_s)  # the outage itself is the fault, not a wait for something
        self.broker.start(timeout_s=180.0)
        # a broker that answers may still have partitions without a leader for a moment
        _wait_for(lambda: _all_led(self.bootstrap), 180.0, "leaders for every partition")
        self.log("broker back")
        self.feeder.push(prefix, wave)
        positions = self._positions_of(prefix, wave)
        deadline = time.monotonic() + self.plan.survive_deadline_s
        while time.monotonic() < deadline:
            if not proc.alive() or proc.launches != launches:
                return False
            if positions <= self._accounted(prefix):
                return True
            time.sleep(1.0)
        return False

    def _positions_of(self, prefix: str, wave: tuple[InputRecord, ...]) -> set[str]:
        """Source positions the records of a just-pushed wave got (the last len per partition)."""
        wanted: dict[tuple[str, int], int] = Counter()
        for rec in wave:
            parts = len(self.reader.partitions(prefix + rec.topic))
            wanted[(rec.topic, _partition_of(rec.key, parts))] += 1
        out: set[str] = set()
        for (topic, partition), n in wanted.items():
            end = self.reader.end_offsets([prefix + topic])[
                TopicPartition(prefix + topic, partition)
            ]
            out |= {f"{topic}/{partition}/{o}" for o in range(end - n, end)}
        return out

    def _accounted(self, prefix: str) -> set[str]:
        view = observe(self.reader, prefix, self.platforms)
        return view.accounted()

    def faulty(self) -> tuple[RunView, int, int, int]:
        plan = self.plan
        prefix = f"flt{uuid.uuid4().hex[:8]}."
        proc = self._process(prefix)
        create_topics(proc)
        waves = list(self.workload.waves)
        # the last wave is held back for after the outage when there is one
        marker = waves.pop() if plan.broker_restarts and len(waves) > 1 else ()
        # contiguous chunks: the inputs must reach each prefix in the same order
        step = -(-len(marker) // max(1, plan.broker_restarts))
        markers = [marker[i * step : (i + 1) * step] for i in range(plan.broker_restarts)]
        # kills after which a wave is pushed, spread over the run
        push_after = {round(i * plan.kills / max(1, len(waves))) for i in range(len(waves))}
        restart_after = (
            set(
                self.rng.sample(
                    range(max(1, plan.kills // 2), plan.kills + 1), plan.broker_restarts
                )
            )
            if plan.broker_restarts
            else set()
        )
        outages = survived = kills = 0
        pending = list(waves)
        done_points: set[int] = set()
        while True:
            point = kills  # kill points passed so far; a crash before a kill retries it
            if point not in done_points:
                done_points.add(point)
                if point in push_after and pending:
                    self.feeder.push(prefix, pending.pop(0))
                    self.log(f"wave pushed ({len(pending)} left)")
                self._ensure_running(proc)
                if point in restart_after:
                    if self._wait_progress(proc, prefix, 1) is None:
                        self._ensure_running(proc)
                    while pending:  # the marker comes after them in the reference too
                        self.feeder.push(prefix, pending.pop(0))
                    outages += 1
                    if self._broker_restart(proc, prefix, markers[outages - 1]):
                        survived += 1
                        self.log("outage ridden out: the post-outage wave was ingested")
                    else:
                        self._event(
                            "recovery",
                            "outage NOT ridden out: the post-outage wave was not ingested by "
                            f"the running pipeline within {plan.survive_deadline_s:g}s "
                            f"({'alive, stuck' if proc.alive() else f'exited {proc.exit_code}'}"
                            f"); log tail:\n{proc.log_tail(8)}",
                        )
                        if proc.alive():
                            proc.kill()  # to carry on with the campaign, not a fault
                            proc.expected_exit = True
            self._ensure_running(proc)
            if kills == plan.kills:
                break
            # seeded kill point: most after observed progress, some during start-up
            if self.rng.random() < 0.25:
                delay = self.rng.uniform(0.5, 6.0)
                time.sleep(delay)  # a seeded instant to kill at, not a wait for anything
                how = f"{delay:.1f}s after launch {proc.launches}"
            else:
                delta = self.rng.randint(1, max(2, self.workload.records // plan.kills))
                seen = self._wait_progress(proc, prefix, delta)
                if seen is None:
                    continue  # it died on its own (recorded as a crash): try this point again
                how = (
                    f"after {delta} more output records (launch {proc.launches})"
                    if seen == "progress"
                    else f"once caught up with its input (launch {proc.launches})"
                )
            if not proc.alive():
                continue
            proc.kill()
            proc.expected_exit = True
            kills += 1
            self._event("kill", f"kill -9 #{kills} {how}")
        for wave in pending:
            self.feeder.push(prefix, wave)
        for wave in markers[outages:]:
            self.feeder.push(prefix, wave)
        self._ensure_running(proc)
        view = self._settle(proc, prefix)
        proc.kill()  # the end of the run, not a fault
        return view, outages, survived, proc.launches

    def _settle(self, proc: PipelineProcess, prefix: str) -> RunView:
        """Until every source record is accounted for and the tasks equal and stay quiet."""
        reference = self.reference()
        deadline = time.monotonic() + self.plan.settle_deadline_s
        names = TopicNames(prefix)
        task_topics = [names.tasks(p) for p in self.platforms] + [names.review]
        quiet_since: float | None = None
        last = -1
        while True:
            self._ensure_running(proc)
            view = observe(self.reader, prefix, self.platforms)
            complete = view.accounted() >= view.all_positions() and set(view.tasks) >= set(
                reference.tasks
            )
            total = self.reader.total(task_topics)
            now = time.monotonic()
            if complete and total == last:
                quiet_since = quiet_since or now
                if now - quiet_since >= self.plan.idle_s:
                    return view
            else:
                quiet_since = None
            last = total
            if now >= deadline:
                self.log("settle deadline reached: comparing what there is")
                return view
            time.sleep(1.0)

    def run(self) -> FaultReport:
        reference = self.reference()
        view, outages, survived, launches = self.faulty()
        for run_view in (reference, view):
            written = len(run_view.all_positions())
            if written != self.workload.records:
                raise RuntimeError(
                    f"harness fault: {written} source records under {run_view.prefix}, "
                    f"{self.workload.records} generated: the comparison would be meaningless"
                )
        fates = self.fates()
        comparison = compare(reference, view, fates)
        report = FaultReport(
            plan=self.plan,
            records=self.workload.records,
            valid_inputs=sum(1 for f in fates.values() if f == "valid"),
            bad_inputs=sum(1 for f in fates.values() if f == "dead"),
            events=self.events,
            launches=launches,
            outages_survived=survived,
            outages=outages,
            comparison=comparison,
            duplicates=view.duplicates,
            records_out=view.records_out,
            reference_duplicates=reference.duplicates,
            elapsed_s=time.monotonic() - self.t0,
            code=_code_description(),
        )
        self.feeder.close()
        self.reader.reset()
        return report


def _all_platforms() -> list[str]:
    from omm.config import load_platforms

    return list(load_platforms().ids)


def run_campaign(
    plan: FaultPlan, workdir: Path | None = None, log: Log = _stderr_log
) -> FaultReport:
    """Start a private broker, run one campaign, stop the broker; return the report."""
    with contextlib.ExitStack() as stack:
        if workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="omm-faults-")))
        broker = stack.enter_context(private_broker(workdir / "kafka"))
        log(f"private broker at {broker.bootstrap}")
        return Campaign(broker, workdir, plan, log).run()
    raise AssertionError("unreachable")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults", description="Seeded fault-injection run of omm run all."
    )
    defaults = FaultPlan()
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--kills", type=int, default=defaults.kills)
    parser.add_argument("--broker-restarts", type=int, default=defaults.broker_restarts)
    parser.add_argument("--outage-s", type=float, default=defaults.outage_s)
    parser.add_argument(
        "--listings",
        type=int,
        default=defaults.listings_per_platform,
        help="valid listings per platform (4 platforms); other feeds scale",
    )
    parser.add_argument("--waves", type=int, default=defaults.waves)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep logs and broker data here (default: a temp dir, removed)",
    )
    parser.add_argument("--json", action="store_true", help="also print the report as JSON")
    args = parser.parse_args(argv)
    plan = FaultPlan(
        seed=args.seed,
        kills=args.kills,
        broker_restarts=args.broker_restarts,
        outage_s=args.outage_s,
        listings_per_platform=args.listings,
        waves=args.waves,
    )
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    report = run_campaign(plan, args.workdir)
    print(report.summary())
    print(report.comparison.details())
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    c = report.comparison
    ok = (
        c.tasks_equal
        and c.nothing_lost
        and not c.unbalanced
        and (report.outages_survived == report.outages)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
