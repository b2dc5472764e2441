"""Comply's benchmark: throughput beside the raw limit, and how soon a status follows its evidence.

Throughput: N delisting tasks and a takedown notice for each, read by a bounded
comply run, timed from its start to the broker timestamp of its last status.
The raw limit is plain kafka-python over the same records (consume, decode,
encode, produce). Latency: a streaming comply run holding the N tasks open in
its state; then, one at a time, a deciding event and the wait for the status it
decides: a notice (COMPLETED_ON_TIME), a REMOVED observation in the listing feed
(COMPLETED_ON_TIME), and a deadline passing with nothing else arriving
(OVERDUE, timed from the deadline).

State: the growth of the resident memory of the processes holding comply's
state (this one, plus Prism's on Prism) while it loads the N open tasks,
divided by N, beside the encoded size of what the state keeps per open task
(its listing's evidence entry and deadline index entry, and its outcome in the
platform's scorecard state, PickleCoder-encoded as the runner stores them).

Claims: compensation-first tracking, a tenth as many claims as open tasks, each its
complaint, its task and its resolution, through a bounded run, beside the raw limit
over the same complaints; and the encoded state one claim keeps.
"""

from __future__ import annotations

import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.table import Table

from connectors import kafka_client
from connectors.topics import TopicNames
from omm.beam_runtime import pipeline_args_with_defaults
from omm.bench.limits import MACHINE, Rate, last_timestamp_ms, rate_table, raw_limit
from omm.bench.runners import Runner, rss_bytes
from omm.config import resolved_topics
from omm.generate import FeedGenerator
from omm.jobs import comply_job
from pipelines.comply import run_comply
from schemas.registry import SchemaRegistry

PLATFORM = "tmall"


class ComplyBench:
    def __init__(
        self, bootstrap: str, n: int, console: Console, runner: Runner | None = None
    ) -> None:
        self.runner = runner or Runner("fnapi")
        self.bootstrap = bootstrap
        self.n = n
        self.console = console
        self.registry = SchemaRegistry.load()
        self.gen = FeedGenerator(seed=11)
        self.now = datetime.now(UTC).replace(microsecond=0)

    def namespace(self, tag: str) -> TopicNames:
        topics = TopicNames(prefix=f"bench{int(time.time())}{tag}.")
        kafka_client.create_topics(
            self.bootstrap, resolved_topics(only_platforms=[PLATFORM]), prefix=topics.prefix
        )
        return topics

    def task(self, i: int, deadline: datetime) -> dict[str, Any]:
        return {
            "task_id": f"bench-task-{i:08d}",
            "kind": "DELIST",
            "platform": PLATFORM,
            "seller_id": f"{PLATFORM}-s{i % 500:03d}",
            "listing_id": f"{PLATFORM}-B{i:09d}",
            "inspection_id": f"BENCH-{i // 10:07d}",
            "product_key": f"brand{i % 97}|Q{i // 10:07d}",
            "brand": f"Brand{i % 97}",
            "model": f"Q{i // 10:07d}",
            "manufacturer": None,
            "verdict": "FAIL",
            "match_method": "BRAND_MODEL",
            "match_confidence": 0.95,
            "legal_basis": "bench",
            "reason": "bench",
            "state": "ISSUED",
            "deadline_at": deadline,
            "issued_at": self.now - timedelta(hours=1),
            "evidence_ref": "bench/0/0",
        }

    def notice(self, i: int) -> dict[str, Any]:
        return {
            "notice_id": f"bench-notice-{i:08d}",
            "platform": PLATFORM,
            "listing_id": f"{PLATFORM}-B{i:09d}",
            "task_id": f"bench-task-{i:08d}",
            "action": "REMOVED",
            "reason": "bench",
            "acted_at": self.now - timedelta(minutes=30),
        }

    def produce(self, topic: str, entity: str, records: Any, key: str) -> None:
        producer = kafka_client.producer(self.bootstrap)
        for r in records:
            producer.send(topic, key=str(r[key]).encode(), value=self.registry.encode(entity, r))
        producer.flush()
        producer.close()

    def run(self, deciding: int) -> None:
        self.console.rule(f"[b]comply with {self.n:,} open tasks, {self.runner.label}")
        far = self.now + timedelta(days=30)
        topics = self.namespace("c")
        with self.console.status(f"producing {self.n:,} tasks and as many notices…"):
            self.produce(
                topics.tasks(PLATFORM),
                "task",
                (self.task(i, far) for i in range(self.n)),
                "task_id",
            )
            self.produce(
                topics.valid("takedown"),
                "takedown",
                (self.notice(i) for i in range(self.n)),
                "notice_id",
            )
        with self.console.status("raw limit…"):
            kafka_client.create_topics(
                self.bootstrap,
                [t for t in resolved_topics() if t.name == "omm.valid.takedowns"],
                prefix=topics.prefix + "raw.",
            )
            raw = raw_limit(
                self.bootstrap,
                topics.valid("takedown"),
                topics.prefix + "raw.omm.valid.takedowns",
                self.n,
                self.registry,
            )
        with self.console.status("bounded comply run (throughput)…"):
            started = time.time()
            account = run_comply(
                comply_job(self.bootstrap, topics, platforms=[PLATFORM], idle_timeout_s=3.0),
                pipeline_args_with_defaults(self.runner.args(), streaming=False),
            )
            # the run has ended and flushed: every status is on the topic. At least one per
            # task; two (ISSUED, then COMPLETED) only when the task was read before its
            # notice, which the read order decides (118,793 of 200,000 here once)
            last = last_timestamp_ms(self.bootstrap, topics.compliance_status, self.n) / 1000
        if account.read != 2 * self.n or not account.balanced:
            raise SystemExit(f"comply read {account.read} of {2 * self.n}: {account}")
        throughput = Rate(
            f"omm comply, bounded (decode + per-listing state + status), {self.runner.label}",
            account.read,
            last - started,
        )
        self.console.print(
            rate_table(f"comply throughput, {self.n:,} tasks + notices", raw, [throughput])
        )
        latencies, per_task = self.latency_run(deciding)
        table = Table(title=f"deciding event → status, {self.n:,} open tasks in state")
        for column in ("deciding event", "n", "p50 s", "p99 s", "max s"):
            table.add_column(column, justify="right")
        for what, values in latencies.items():
            ordered = sorted(values)
            p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
            table.add_row(
                what,
                str(len(ordered)),
                f"{statistics.median(ordered):.3f}",
                f"{p99:.3f}",
                f"{ordered[-1]:.3f}",
            )
        self.console.print(table)
        self.console.print(
            # the bounded run before it freed memory the state may reuse: an under-count,
            # and below zero when the state took less than was freed
            "state per open task: RSS growth "
            + (f"{per_task:,.0f} B (an under-count), " if per_task > 0 else "n/a, ")
            + f"encoded {self.encoded_state_bytes():,.0f} B"
        )
        self.claims_run()
        self.console.print(f"machine: {MACHINE}")

    def claims_run(self) -> None:
        """Compensation-first tracking: a tenth as many claims as open tasks, each its
        complaint, the task intel issues on it and the complaint again, resolved before
        the deadline; a bounded run, timed to the last status appended."""
        from pipelines.comply import _evidence
        from pipelines.rules.compliance import TaskFact
        from pipelines.rules.intel import ClaimEvidence, compensation_task, complaint_fact

        n = max(1_000, self.n // 10)
        topics = self.namespace("k")
        claims = comply_job(self.bootstrap, topics, platforms=[PLATFORM]).claims
        received = self.now - timedelta(days=30)
        complaints, tasks, resolved = [], [], []
        for i in range(n):
            c = {
                **self.gen.complaint(PLATFORM, i),
                "complaint_id": f"bench-claim-{i:08d}",
                "channel": "PLATFORM",
                "issue_type": "QUALITY",
                "received_at": received,
            }
            fact = complaint_fact(c, "bench/0/0")
            task = compensation_task(fact, claims.period_end_ms(fact) + claims.lateness_ms, claims)
            ended = datetime.fromtimestamp(task["deadline_at"] / 1000 - 3600, UTC)
            complaints.append(c)
            tasks.append(task)
            resolved.append({**c, "status": "RESOLVED", "resolved_at": ended})
        with self.console.status(f"producing {n:,} claims, their tasks and resolutions…"):
            self.produce(topics.valid("complaint"), "complaint", complaints, "complaint_id")
            self.produce(topics.tasks(PLATFORM), "task", tasks, "task_id")
            self.produce(topics.valid("complaint"), "complaint", resolved, "complaint_id")
        with self.console.status("raw limit…"):
            kafka_client.create_topics(
                self.bootstrap,
                [t for t in resolved_topics() if t.name == "omm.valid.complaints"],
                prefix=topics.prefix + "raw.",
            )
            raw = raw_limit(
                self.bootstrap,
                topics.valid("complaint"),
                topics.prefix + "raw.omm.valid.complaints",
                2 * n,
                self.registry,
            )
        with self.console.status("bounded comply run over claims…"):
            started = time.time()
            account = run_comply(
                comply_job(self.bootstrap, topics, platforms=[PLATFORM], idle_timeout_s=3.0),
                pipeline_args_with_defaults(self.runner.args(), streaming=False),
            )
            last = last_timestamp_ms(self.bootstrap, topics.compliance_status, n) / 1000
        if account.read != 3 * n or account.tracked != 3 * n or not account.balanced:
            raise SystemExit(f"comply read {account.read} of {3 * n}: {account}")
        claims_rate = Rate(
            f"omm comply, compensation-first claims (complaint + task + resolution), "
            f"{self.runner.label}",
            account.read,
            last - started,
        )
        self.console.print(
            rate_table(f"comply throughput, {n:,} compensation-first claims", raw, [claims_rate])
        )
        # what the state keeps per claim, encoded as the runner stores it
        from apache_beam.coders import PickleCoder

        from connectors.records import KafkaRecord

        rec = KafkaRecord("t", 0, 0, b"", b"", (), 0)
        item = _evidence("complaint", complaints[0], rec, claims)
        assert item is not None
        ev = ClaimEvidence()
        ev.add_complaint(complaint_fact(resolved[0], "bench/0/1"))
        task_item = _evidence("task", tasks[0], rec, claims)
        assert task_item is not None and isinstance(task_item.evidence, TaskFact)
        ev.add_task(task_item.evidence)
        size = len(PickleCoder().encode((item.subject, (ev, None))))
        self.console.print(f"state per claim: encoded {size:,} B (its complaint and task)")

    def encoded_state_bytes(self) -> float:
        """Bytes comply's state keeps per open task, encoded as the runner stores them."""
        from apache_beam.coders import PickleCoder
        from apache_beam.utils.timestamp import Timestamp

        from connectors.records import KafkaRecord
        from pipelines.comply import _add, _evidence, _slot
        from pipelines.rules.compliance import ListingEvidence, TaskOutcome

        job = comply_job(self.bootstrap, TopicNames(), platforms=[PLATFORM])
        cfg = job.config
        coder = PickleCoder()
        far = self.now + timedelta(days=30)
        sample = 1000
        entries = 0
        outcomes: dict[str, Any] = {}
        for i in range(sample):
            record = self.task(i, far)
            rec = KafkaRecord("t", 0, i, b"", b"", (), 0)
            item = _evidence("task", record, rec, job.claims)
            assert item is not None
            ev = ListingEvidence()
            _add(ev, item.evidence)
            for status in ev.changes(cfg):
                outcomes[status.task_id] = TaskOutcome.of(status, cfg.calendar)
            nxt = ev.next_deadline(cfg)
            slot = _slot(item.subject)
            entries += len(coder.encode((slot, (item.subject, (ev, nxt)))))
            entries += len(coder.encode((Timestamp(micros=(nxt or 0) * 1000), item.subject)))
        return (entries + len(coder.encode(outcomes))) / sample

    def latency_run(self, deciding: int) -> tuple[dict[str, list[float]], float]:
        topics = self.namespace("l")
        far = self.now + timedelta(days=30)
        with self.console.status(f"producing {self.n:,} open tasks…"):
            self.produce(
                topics.tasks(PLATFORM),
                "task",
                (self.task(i, far) for i in range(self.n)),
                "task_id",
            )
        job = comply_job(
            self.bootstrap, topics, platforms=[PLATFORM], idle_timeout_s=20.0, tick_seconds=1.0
        )
        watcher = StatusWatcher(self.bootstrap, topics.compliance_status)
        ended = threading.Event()
        outcome: list[tuple[dict[str, list[float]], float]] = []
        failure: list[BaseException] = []

        def work() -> None:
            try:
                outcome.append(self._decide(topics, deciding, watcher, ended, baseline))
            except BaseException as exc:
                failure.append(exc)

        # the run in this thread, the bench beside it: Prism's job server installs a
        # signal handler, which only the main thread may; the run ends after its idle window
        helper = threading.Thread(target=work, daemon=True)
        baseline = rss_bytes()
        helper.start()
        try:
            run_comply(job, pipeline_args_with_defaults(self.runner.args(), streaming=True))
        finally:
            ended.set()
        helper.join(timeout=300)
        watcher.close()
        if failure:
            raise failure[0]
        if not outcome:
            raise SystemExit("the comply run ended before the bench was done with it")
        return outcome[0]

    def _decide(
        self,
        topics: TopicNames,
        deciding: int,
        watcher: StatusWatcher,
        ended: threading.Event,
        baseline: int,
    ) -> tuple[dict[str, list[float]], float]:
        out: dict[str, list[float]] = {"takedown notice": [], "listing feed": [], "deadline": []}
        with self.console.status(f"streaming comply: loading {self.n:,} tasks into state…"):
            watcher.wait_for(f"bench-task-{self.n - 1:08d}", "ISSUED", timeout_s=3600)
        per_task = (rss_bytes() - baseline) / self.n
        producer = kafka_client.producer(self.bootstrap, linger_ms=0)
        gen = self.gen
        with self.console.status(f"{deciding} notices, observations, deadlines, one at a time…"):
            for k in range(deciding):
                if ended.is_set():
                    raise SystemExit("the comply run ended early (its error is above)")
                i = (k * 7919) % self.n
                sent = time.time()
                self._send(producer, topics.valid("takedown"), "takedown", self.notice(i))
                out["takedown notice"].append(
                    watcher.wait_for(f"bench-task-{i:08d}", "COMPLETED_ON_TIME", 120) - sent
                )
                j = (i + self.n // 2) % self.n
                removed = {
                    **gen.listing(PLATFORM, j),
                    "listing_id": f"{PLATFORM}-B{j:09d}",
                    "status": "REMOVED",
                    "observed_at": self.now - timedelta(minutes=20),
                }
                sent = time.time()
                self._send(producer, topics.valid("listing"), "listing", removed)
                out["listing feed"].append(
                    watcher.wait_for(f"bench-task-{j:08d}", "COMPLETED_ON_TIME", 120) - sent
                )
            # deadlines a few seconds away, then nothing else arrives
            soon = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
            extra = [self.n + k for k in range(deciding)]
            for i in extra:
                self._send(producer, topics.tasks(PLATFORM), "task", self.task(i, soon))
            for i in extra:
                fired = watcher.wait_for(f"bench-task-{i:08d}", "OVERDUE", 120)
                out["deadline"].append(fired - soon.timestamp())
        producer.close()
        return out, per_task

    def _send(self, producer: Any, topic: str, entity: str, record: dict[str, Any]) -> None:
        key = record.get("task_id") or record.get("notice_id") or record["listing_id"]
        producer.send(topic, key=str(key).encode(), value=self.registry.encode(entity, record))
        producer.flush()


class StatusWatcher:
    """Reads omm.compliance.status and remembers when each (task, status) first arrived."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self._consumer = kafka_client.consumer(bootstrap)
        kafka_client.assign_topics(self._consumer, [topic], "beginning")
        self._registry = SchemaRegistry.load()
        self._seen: dict[tuple[str, str], float] = {}

    def wait_for(self, task_id: str, status: str, timeout_s: float) -> float:
        """Wall time at which the task's status record was read."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (task_id, status) in self._seen:
                return self._seen[(task_id, status)]
            for records in self._consumer.poll(timeout_ms=20).values():
                now = time.time()
                for rec in records:
                    _, record = self._registry.decode(rec.value)
                    self._seen.setdefault((record["task_id"], record["status"]), now)
        raise TimeoutError(f"{task_id}: no {status} status after {timeout_s}s")

    def close(self) -> None:
        self._consumer.close()


def bench_comply(
    bootstrap: str, n: int, deciding: int, console: Console, runner: Runner | None = None
) -> None:
    ComplyBench(bootstrap, n, console, runner).run(deciding)
