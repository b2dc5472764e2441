"""Comply: did each platform do what it was told in time? Tasks + evidence -> statuses.

  ReadEvidence -> DecodeEvidence -> TrackCompliance -+-> statuses -> ToStatusRecords -> WriteStatus
  (+ clock ticks)                  (per shard of     +-> outcomes -> Scorecards -> WriteScorecards
                                    subjects)                        (per platform)

One reader brings the tasks (omm.tasks.<platform>), the listing feed
(omm.valid.listings), the platforms' takedown notices (omm.valid.takedowns), the
regulator's decisions on disputes (omm.review.decisions), the complaints
(omm.valid.complaints) and the clock (``connectors.beam_io.Clock``). Two kinds of task
are tracked, each on its subject:

- a DELIST task on its listing: everything about one listing meets in one place, its
  evidence (:class:`pipelines.rules.compliance.ListingEvidence`);
- a COMPENSATION_FIRST task (issued by intel) on its claim: the task and the complaint
  it names (``complaint_id``) meet in :class:`pipelines.rules.intel.ClaimEvidence`, and
  the claim ending (RESOLVED or CLOSED) completes it. Only complaints that can become
  such a claim (a bound platform, a claim's issue type: config/intel.yaml) are kept.

A subject's evidence lives in the shard of its key, in an ordered-list state used as a
map, and the shard also keeps an index of its subjects' next deadlines by time. A clock
tick reads the index up to now, so an OVERDUE is published within a tick of its deadline
even when nothing else arrives, and never before it (the rules check the time, not the
tick). Statuses are a function of the evidence, not of its arrival order: a replay ends
the same.

Scorecards are kept per platform from each DELIST task's latest outcome (they measure
takedowns; compensation-first statuses are on the status topics) and published
on the clock's ticks (a bounded run ticks once more at its end), so a burst of
status changes costs one recomputation per tick, not one per change.

Every record read is accounted for: in = tracked + untracked (e.g. REMEDIATION
and FLAG tasks, which ask nothing comply can check; decisions on match reviews, which
are enforce's; complaints that cannot become a compensation-first claim) + dead letters.
Like enforce, state lives in the runner: on the FnApiRunner every run rebuilds it from
the earliest offsets and re-publishes identical statuses (keyed by task_id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import apache_beam as beam
from apache_beam import pvalue, typehints
from apache_beam.coders import PickleCoder, VarIntCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms.userstate import (
    BagStateSpec,
    OrderedListStateSpec,
    ReadModifyWriteStateSpec,
)
from apache_beam.utils.timestamp import MIN_TIMESTAMP, Timestamp

from connectors.beam_io import Clock, ReadFromKafka, WriteToKafka
from connectors.connection import KafkaConnection
from connectors.records import ClockTick, KafkaRecord, OutboundMessage
from connectors.topics import TopicNames
from pipelines.dead_letters import DeadLetter, ToDeadLetters, decode_or_dead_letter
from pipelines.keyed_state import shard_of, slot
from pipelines.rules.compliance import (
    COMPENSATION_FIRST,
    DELIST,
    ComplianceConfig,
    Decision,
    ListingEvidence,
    Notice,
    Observation,
    Scorecard,
    Status,
    TaskFact,
    TaskOutcome,
    scorecards,
)
from pipelines.rules.intel import ClaimEvidence, CompensationFirst, ComplaintFact, complaint_fact
from pipelines.running import account, run
from schemas.registry import SchemaRegistry

STAGE = "comply"
CONNECTOR = "omm-comply"
DEAD, OUTCOMES = "dead_letter", "outcomes"
Evidence = TaskFact | Observation | Notice | Decision | ComplaintFact
SubjectEvidence = ListingEvidence | ClaimEvidence


@dataclass(frozen=True)
class ComplyJob:
    """Everything comply's workers need (the application makes it: ``omm.jobs``)."""

    kafka: KafkaConnection
    topics: TopicNames
    platforms: tuple[str, ...]
    # the calendar and delisting period (config/enforcement.yaml)
    config: ComplianceConfig
    # how often the clock ticks, and how many shards keep listings (config/compliance.yaml)
    clock: Clock
    # which complaints are compensation-first claims and what ends one (config/intel.yaml,
    # config/platforms.yaml)
    claims: CompensationFirst
    idle_timeout_s: float | None = None
    start: str = "earliest"  # state is rebuilt on this runner (see the module docstring)

    @property
    def group_id(self) -> str:
        return f"{self.topics.prefix}omm.comply"


class Item(NamedTuple):
    """One piece of evidence about one subject, routed to the subject's shard."""

    subject: str  # "<platform>|<listing_id>", or "claim|<complaint key>"
    evidence: Evidence


def _listing(r: dict[str, Any]) -> str:
    return f"{r['platform']}|{r['listing_id']}"


CLAIM = "claim|"  # a claim's subject key: listings' start with their platform id


def _claim(complaint_key: str) -> str:
    return CLAIM + complaint_key


class PlatformTick(NamedTuple):
    now_ms: int


# room in a slot for versions of its entries (see _ShardState)
_VERSIONS = 1 << 16
LISTINGS_LIST, DEADLINES_LIST = "listings", "deadlines"


def _slot(subject: str) -> Timestamp:
    return slot(subject, _VERSIONS)


def _ms(value: Any) -> int:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


# ------------------------------------------------------------------ decode


class _DecodeEvidenceFn(beam.DoFn):
    """Records and ticks -> (shard, evidence or tick); undecodable records to dead letters."""

    def __init__(self, job: ComplyJob):
        self._topics = job.topics
        self._shards = job.clock.shards
        self._entities = {
            **{job.topics.tasks(p): "task" for p in job.platforms},
            job.topics.valid("listing"): "listing",
            job.topics.valid("takedown"): "takedown",
            job.topics.decisions: "review_decision",
            job.topics.valid("complaint"): "complaint",
        }
        self._claims = job.claims

    def setup(self) -> None:
        self._registry = SchemaRegistry.load()
        self._in = Metrics.counter(STAGE, "in")
        self._tracked = Metrics.counter(STAGE, "tracked")
        self._untracked = Metrics.counter(STAGE, "untracked")
        self._dead = Metrics.counter(STAGE, "dead")

    def process(self, element: KafkaRecord | ClockTick) -> Iterator[Any]:
        if isinstance(element, ClockTick):
            yield element.shard, element
            return
        rec = element
        self._in.inc()
        entity = self._entities[rec.topic]
        record = decode_or_dead_letter(self._registry, rec, entity)
        if isinstance(record, DeadLetter):
            self._dead.inc()
            yield pvalue.TaggedOutput(DEAD, record)
            return
        item = _evidence(entity, record, rec, self._claims)
        if item is None:
            self._untracked.inc()
            return
        self._tracked.inc()
        yield shard_of(item.subject, self._shards), item


def _evidence(
    entity: str, r: dict[str, Any], rec: KafkaRecord, claims: CompensationFirst
) -> Item | None:
    """The evidence a record is, or None when comply does not track it."""
    if entity == "task":
        # the withdrawal record's own time dates a withdrawal: the same on every replay
        task = TaskFact.of(r, rec.position, rec.timestamp_ms)
        if task.kind == COMPENSATION_FIRST and task.complaint_id:
            return Item(_claim(task.complaint_id), task)
        if task.kind != DELIST or not task.listing_id:
            return None  # remediation has no listing to watch: see the module docstring
        return Item(_listing(r), task)
    if entity == "complaint":
        complaint = complaint_fact(r, rec.position)
        return Item(_claim(complaint.key), complaint) if claims.applies(complaint) else None
    if entity == "listing":
        obs = Observation(_ms(r["observed_at"]), r["status"] == "ACTIVE", rec.position)
        return Item(_listing(r), obs)
    if entity == "takedown":
        notice = Notice(
            notice_id=r["notice_id"],
            at_ms=_ms(r["acted_at"]),
            action=r["action"],
            task_id=r.get("task_id"),
            reason=r["reason"],
            ref=rec.position,
        )
        return Item(_listing(r), notice)
    # review_decision: disputes are comply's; match reviews are enforce's
    if r["decision"] not in ("UPHOLD", "WITHDRAW") or not r.get("task_id"):
        return None
    decision = Decision(
        task_id=r["task_id"],
        at_ms=_ms(r["decided_at"]),
        outcome="UPHOLD" if r["decision"] == "UPHOLD" else "WITHDRAW",
        decided_by=r["decided_by"],
        reason=r["reason"],
        ref=rec.position,
    )
    return Item(_listing(r), decision)


# ------------------------------------------------------------------ track


class _ShardState:
    """One shard's state for the bundle in progress: its two ordered lists, and what the
    runner already holds of them.

    Clearing a part of an ordered list is how a listing's entry is replaced and how fired
    deadlines leave the index. Prism 2.77 panics when a bundle clears an ordered list of a
    key it holds no state for yet (engine.(*TentativeData).ClearOrderedListState writes into
    a nil map), and the SDK sends a bundle's clears before its appends: so a shard clears a
    list only once an earlier bundle has committed something to it (``WRITTEN`` says which).
    Until then an entry is replaced by a newer version appended in the listing's slot (the
    newest wins when read; the next rewrite drops the older ones), and fired deadlines are
    skipped by position (``FIRED``: the index is read from there on, on every runner).
    """

    def __init__(self, listings: Any, deadlines: Any, written: Any, fired: Any) -> None:
        self.listings = listings
        self.deadlines = deadlines
        self._written_cell = written
        self._fired_cell = fired
        self._before: frozenset[str] = frozenset(written.read() or ())
        self._now: set[str] = set()
        self.fired: int = fired.read() or MIN_TIMESTAMP.micros

    def may_clear(self, what: str) -> bool:
        return what in self._before

    def wrote(self, what: str) -> None:
        if what not in self._before and what not in self._now:
            self._now.add(what)
            self._written_cell.write(self._before | self._now)

    def fire_upto(self, micros: int) -> None:
        if micros > self.fired:
            self.fired = micros
            self._fired_cell.write(micros)


class _TrackComplianceFn(beam.DoFn):
    """Per shard: each subject's evidence (a listing's or a claim's), and the index of
    their next deadlines."""

    LISTINGS = OrderedListStateSpec("listings", PickleCoder())
    DEADLINES = OrderedListStateSpec("deadlines", PickleCoder())
    # which of the two lists earlier bundles wrote; the index position fired up to (micros)
    WRITTEN = ReadModifyWriteStateSpec("written", PickleCoder())
    FIRED = ReadModifyWriteStateSpec("fired", VarIntCoder())

    def __init__(self, job: ComplyJob):
        self._cfg = job.config
        self._claims = job.claims
        self._shards = job.clock.shards
        self._platforms = job.platforms

    def setup(self) -> None:
        self._statuses = Metrics.counter(STAGE, "statuses")
        self._overdue = Metrics.counter(STAGE, "deadlines_fired")

    def start_bundle(self) -> None:
        self._bundle: dict[int, _ShardState] = {}

    def process(
        self,
        element: tuple[int, Item | ClockTick],
        listings: Any = beam.DoFn.StateParam(LISTINGS),
        deadlines: Any = beam.DoFn.StateParam(DEADLINES),
        written: Any = beam.DoFn.StateParam(WRITTEN),
        fired: Any = beam.DoFn.StateParam(FIRED),
    ) -> Iterator[Any]:
        shard, item = element
        state = self._bundle.get(shard)
        if state is None:
            state = self._bundle[shard] = _ShardState(listings, deadlines, written, fired)
        if isinstance(item, ClockTick):
            yield from self._tick(item.now_ms, state)
            return
        slot = _slot(item.subject)
        entries, newest = self._read(state, slot)
        ev, scheduled = entries.get(item.subject, (_new(item.subject), None))
        _add(ev, item.evidence)
        if state.fired > MIN_TIMESTAMP.micros:
            # Evidence read after a tick is judged at that tick's time: a runner that
            # shuffles before this stage (Prism, Flink) may deliver a bounded run's last
            # tick before the last evidence, and a deadline it already passed must not
            # wait for a tick that never comes. Statuses carry event times, not this.
            ev.advance_clock(state.fired // 1000 - 1)
        yield from self._publish(ev)
        entries[item.subject] = (ev, self._schedule(item.subject, ev, scheduled, state))
        self._write(state, slot, entries, item.subject, newest)

    def _tick(self, now_ms: int, state: _ShardState) -> Iterator[Any]:
        # Every shard's tick reaches every platform's scorecard: a platform's outcomes come
        # from every shard, and a runner that processes a stage key by key (a batch run)
        # must still see a tick after the last of them, the shard's own last tick.
        for platform in self._platforms:
            yield pvalue.TaggedOutput(OUTCOMES, (platform, PlatformTick(now_ms)))
        upto = (now_ms + 1) * 1000
        if upto <= state.fired:
            return
        read = state.deadlines.read_range(Timestamp(micros=state.fired), Timestamp(micros=upto))
        due = {subject for _, subject in read}
        state.fire_upto(upto)
        if not due:
            return
        if state.may_clear(DEADLINES_LIST):
            state.deadlines.clear_range(MIN_TIMESTAMP, Timestamp(micros=upto))
        for subject in sorted(due):
            slot = _slot(subject)
            entries, newest = self._read(state, slot)
            if subject not in entries:
                continue
            ev, _ = entries[subject]
            ev.advance_clock(now_ms)
            self._overdue.inc()
            yield from self._publish(ev)
            entries[subject] = (ev, self._schedule(subject, ev, None, state))
            self._write(state, slot, entries, subject, newest)

    def _rules(self, ev: SubjectEvidence) -> Any:
        return self._claims if isinstance(ev, ClaimEvidence) else self._cfg

    def _publish(self, ev: SubjectEvidence) -> Iterator[Any]:
        for status in ev.changes(self._rules(ev)):
            self._statuses.inc()
            yield status
            if status.task_kind == DELIST:  # scorecards measure takedowns
                yield pvalue.TaggedOutput(
                    OUTCOMES, (status.platform, TaskOutcome.of(status, self._cfg.calendar))
                )

    def _schedule(
        self, subject: str, ev: SubjectEvidence, scheduled: int | None, state: _ShardState
    ) -> int | None:
        """Put the subject's next deadline in the index, unless it is there already (one
        already passed goes where the next tick reads: it is due then)."""
        nxt = ev.next_deadline(self._rules(ev))
        if nxt is not None and nxt != scheduled:
            at = max(nxt * 1000, state.fired)
            state.deadlines.add((Timestamp(micros=at), subject))
            state.wrote(DEADLINES_LIST)
        return nxt

    @staticmethod
    def _read(
        state: _ShardState, slot: Timestamp
    ) -> tuple[dict[str, tuple[SubjectEvidence, int | None]], int | None]:
        """The slot's entries (the newest version of each) and the newest version's place."""
        upto = Timestamp(micros=slot.micros + _VERSIONS)
        entries: dict[str, tuple[SubjectEvidence, int | None]] = {}
        newest: int | None = None
        for at, (listing, value) in state.listings.read_range(slot, upto):
            entries[listing] = value  # read in order: a later version replaces an earlier
            newest = at.micros
        return entries, newest

    @staticmethod
    def _write(
        state: _ShardState,
        slot: Timestamp,
        entries: dict[str, tuple[SubjectEvidence, int | None]],
        changed: str,
        newest: int | None,
    ) -> None:
        if state.may_clear(LISTINGS_LIST):
            state.listings.clear_range(slot, Timestamp(micros=slot.micros + _VERSIONS))
            for listing, value in entries.items():
                state.listings.add((slot, (listing, value)))
            return
        # nothing of this list committed yet: a newer version of the changed entry instead
        version = slot.micros if newest is None else newest + 1
        if version >= slot.micros + _VERSIONS:
            raise RuntimeError(f"{_VERSIONS} versions of one listing slot in one bundle")
        state.listings.add((Timestamp(micros=version), (changed, entries[changed])))
        state.wrote(LISTINGS_LIST)


def _new(subject: str) -> SubjectEvidence:
    return ClaimEvidence() if subject.startswith(CLAIM) else ListingEvidence()


def _add(ev: SubjectEvidence, item: Evidence) -> None:
    if isinstance(item, TaskFact):
        ev.add_task(item)
    elif isinstance(ev, ClaimEvidence):
        if isinstance(item, ComplaintFact):
            ev.add_complaint(item)
    elif isinstance(item, Observation):
        ev.add_observation(item)
    elif isinstance(item, Notice):
        ev.add_notice(item)
    elif isinstance(item, Decision):
        ev.add_decision(item)


class TrackCompliance(beam.PTransform):
    """(shard, evidence | tick) -> Status (main) | (platform, TaskOutcome | PlatformTick)."""

    def __init__(self, job: ComplyJob):
        super().__init__()
        self._job = job

    def expand(self, keyed: beam.PCollection) -> pvalue.DoOutputsTuple:
        return keyed | "TrackPerShard" >> beam.ParDo(
            _TrackComplianceFn(self._job)
        ).with_input_types(tuple[int, Any]).with_outputs(OUTCOMES, main="statuses")


# ------------------------------------------------------------------ scorecards


class _ScorecardsFn(beam.DoFn):
    """Per platform: every task's latest outcome; the scorecards that changed, on each tick."""

    OUTCOMES = ReadModifyWriteStateSpec("outcomes", PickleCoder())
    PENDING = BagStateSpec("pending", PickleCoder())
    PUBLISHED = ReadModifyWriteStateSpec("published", PickleCoder())

    def __init__(self, topics: TopicNames, timezone: str):
        self._topics = topics
        self._timezone = timezone

    def setup(self) -> None:
        self._registry = SchemaRegistry.load()
        self._published = Metrics.counter(STAGE, "scorecards")

    def process(
        self,
        element: tuple[str, TaskOutcome | PlatformTick],
        outcomes: Any = beam.DoFn.StateParam(OUTCOMES),
        pending: Any = beam.DoFn.StateParam(PENDING),
        published: Any = beam.DoFn.StateParam(PUBLISHED),
    ) -> Iterator[OutboundMessage]:
        platform, item = element
        if isinstance(item, TaskOutcome):
            pending.add(item)  # cheap: the fold waits for the tick
            return
        news = list(pending.read())
        if not news:
            return
        pending.clear()
        known: dict[str, TaskOutcome] = outcomes.read() or {}
        for outcome in news:
            known[outcome.task_id] = outcome
        outcomes.write(known)
        sent: dict[str, Scorecard] = published.read() or {}
        computed_at = datetime.fromtimestamp(item.now_ms / 1000, UTC)
        for card in scorecards(known, platform):
            if sent.get(card.key) == card:
                continue
            sent[card.key] = card
            self._published.inc()
            yield OutboundMessage(
                topic=self._topics.scorecards,
                key=card.key.encode("utf-8"),
                value=self._registry.encode(
                    "scorecard", scorecard_record(card, computed_at, self._timezone)
                ),
            )
        published.write(sent)


def scorecard_record(card: Scorecard, computed_at: datetime, timezone: str) -> dict[str, Any]:
    """The Avro record (scorecard v2) of a scorecard; periods are days of the calendar."""
    zone = ZoneInfo(timezone)
    start = datetime.combine(card.first_day, time(0), tzinfo=zone)
    end = datetime.combine(card.last_day + timedelta(days=1), time(0), tzinfo=zone)
    return {
        "platform": card.platform,
        "period_start": start.astimezone(UTC),
        "period_end": end.astimezone(UTC),
        "tasks_issued": card.issued,
        "completed_on_time": card.on_time,
        "completed_late": card.late,
        "overdue": card.overdue,
        "relisted": card.relisted,
        "relisted_removed": card.relisted_removed,
        "median_hours_to_takedown": card.median_hours,
        "p90_hours_to_takedown": card.p90_hours,
        "kpi1_removed_within_deadline": card.kpi1,
        "kpi2_relistings_removed": card.kpi2,
        "computed_at": computed_at,
        "period": card.period,
        "disputed": card.disputed,
        "withdrawn": card.withdrawn,
        "median_working_hours_to_takedown": card.median_working_hours,
        "p90_working_hours_to_takedown": card.p90_working_hours,
    }


def status_record(s: Status) -> dict[str, Any]:
    """The Avro record (compliance_status v3) of a status."""

    def at(ms: int | None) -> datetime | None:
        return None if ms is None else datetime.fromtimestamp(ms / 1000, UTC)

    return {
        "task_id": s.task_id,
        "platform": s.platform,
        "listing_id": s.listing_id or None,
        "status": s.status,
        "deadline_at": at(s.deadline_ms),
        "changed_at": at(s.evidence_ms),
        "evidence_kind": s.evidence_kind,
        "evidence_ref": s.evidence_ref,
        "evidence_at": at(s.evidence_ms),
        "issued_at": at(s.issued_ms),
        "completed_at": at(s.completed_ms),
        "hours_to_takedown": s.hours_to_takedown,
        "working_hours_to_takedown": s.working_hours_to_takedown,
        "relisted_at": at(s.relisted_ms),
        "relisted_removed": s.relisted_removed,
        "first_outcome": s.first_outcome,
        "note": s.note,
        "task_kind": s.task_kind,
        "complaint_id": s.complaint_id,
    }


class _StatusMessageFn(beam.DoFn):
    """Each status to the regulator's topic and to the platform's own, keyed by task."""

    def __init__(self, topics: TopicNames):
        self._topics = topics

    def setup(self) -> None:
        self._registry = SchemaRegistry.load()

    def process(self, status: Status) -> Iterator[OutboundMessage]:
        key = status.task_id.encode("utf-8")
        value = self._registry.encode("compliance_status", status_record(status))
        yield OutboundMessage(topic=self._topics.compliance_status, key=key, value=value)
        # the platform sees its notices counted (and what contradicted them)
        yield OutboundMessage(topic=self._topics.compliance(status.platform), key=key, value=value)


# ------------------------------------------------------------------ the pipeline


class Comply(beam.PTransform):
    def __init__(self, job: ComplyJob):
        super().__init__()
        self._job = job

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        job = self._job
        topics = job.topics
        records = pbegin | "ReadEvidence" >> ReadFromKafka(
            job.kafka,
            [topics.tasks(p) for p in job.platforms]
            + [topics.valid("listing"), topics.valid("takedown"), topics.decisions]
            + [topics.valid("complaint")],
            group_id=job.group_id,
            start=job.start,
            idle_timeout_s=job.idle_timeout_s,
            clock=job.clock,
            # most records change state, not outputs: committed once the runner
            # has finalized their bundle (on Flink, after its checkpoint)
            commit_when_finalized=True,
        )
        decoded = records | "DecodeEvidence" >> beam.ParDo(_DecodeEvidenceFn(job)).with_outputs(
            DEAD, main="evidence"
        )
        evidence = decoded["evidence"]
        # keyed by shard (int) and by platform (str): deterministic key coders for the state
        evidence.element_type = typehints.KV[int, typehints.Any]
        tracked = evidence | "TrackCompliance" >> TrackCompliance(job)
        tracked[OUTCOMES].element_type = typehints.KV[str, typehints.Any]
        statuses = tracked["statuses"] | "ToStatusRecords" >> beam.ParDo(_StatusMessageFn(topics))
        cards = tracked[OUTCOMES] | "Scorecards" >> beam.ParDo(
            _ScorecardsFn(topics, job.config.calendar.timezone)
        ).with_input_types(tuple[str, Any])
        dead = decoded[DEAD] | "ToDeadLetters" >> ToDeadLetters(topics, CONNECTOR)
        # writers sharing one sink rather than a Flatten (see connectors/sink.py)
        sink = f"comply-{uuid.uuid4().hex}"
        statuses | "WriteStatus" >> WriteToKafka(job.kafka, sink=sink)
        cards | "WriteScorecards" >> WriteToKafka(job.kafka, sink=sink)
        return dead | "WriteDeadLetters" >> WriteToKafka(job.kafka, sink=sink)


@dataclass(frozen=True)
class ComplyAccount:
    read: int
    tracked: int
    untracked: int
    dead: int
    statuses: int
    deadlines_fired: int
    scorecards: int

    @property
    def balanced(self) -> bool:
        return self.read == self.tracked + self.untracked + self.dead


def account_from_metrics(result: Any) -> ComplyAccount:
    return account(ComplyAccount, result, STAGE)


def run_comply(job: ComplyJob, pipeline_args: list[str]) -> ComplyAccount:
    return account_from_metrics(run("Comply", Comply(job), pipeline_args))
