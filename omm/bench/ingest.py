"""Ingest benchmark: the pipeline's throughput, expectations off and on, beside the raw limit.

The workload is the issue's: N listing events of one platform, 5 % of them
invalid (record rules, a few not Avro at all), so valid records, dead letters
and feedback are all written. Each measured run is a fresh process, timed two
ways:

- from the first record read (the reader's first non-empty poll, a Beam metric;
  the raw loop's first poll) to the last output appended, read off the output
  records themselves: their topics stamp the broker's append time
  (``LogAppendTime``), so the producer's clock and buffering do not count;
- from the process's start to that same last append: interpreter, imports and
  Beam's start-up included, the idle wait that ends a bounded run not.

The raw limit is plain kafka-python with the producer tuned as omm's sink is
(the same settings, the same partitioning): consume + decode + produce the
original bytes, which is what ingest does with a valid record.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from connectors import kafka_client
from connectors.producers import ClientName
from connectors.topics import TopicNames
from omm.bench.limits import (
    APPEND_TIME,
    INVALID_EVERY,
    MACHINE,
    PLATFORM,
    Rate,
    last_append_ms,
    produce_listings,
    rate_table,
    raw_pass_through,
    raw_pass_through_confluent,
)
from omm.client_logs import quiet_slow_task_warnings
from omm.config import resolved_topics
from schemas.registry import SchemaRegistry

# a measured process that has not answered by then is reported, not waited on forever
CHILD_TIMEOUT_S = 1800.0


def _child(out: Any, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    quiet_slow_task_warnings()
    try:
        value = fn(*args)
        # CPU seconds of the whole process, every thread: steadier than wall time on a
        # machine shared with other work, which stretches wall time but not CPU time
        out.put(("ok", (value, time.process_time())))
    except BaseException as exc:  # reported to the parent, which stops with it
        out.put(("error", f"{type(exc).__name__}: {exc}"))


def in_fresh_process(fn: Callable[..., Any], *args: Any) -> tuple[float, Any, float]:
    """Run ``fn(*args)`` in a new interpreter (spawned, nothing inherited but the
    environment); its start time (epoch seconds), what it returned, its CPU seconds."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=_child, args=(out, fn, args))
    started = time.time()
    proc.start()
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while True:
        try:
            status, value = out.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive():
                raise SystemExit(f"the measured process died (exit {proc.exitcode})") from None
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit(f"the measured process ran over {CHILD_TIMEOUT_S:.0f}s") from None
    proc.join()
    if status != "ok":
        raise SystemExit(f"the measured process failed: {value}")
    returned, cpu_s = value
    return started, returned, cpu_s


def run_ingest_measured(
    bootstrap: str, prefix: str, n: int, feed_health: bool, client: ClientName
) -> tuple[float, list[Any]]:
    """In the measured process: one bounded ingest run; (first record read, accounts)."""
    from apache_beam.metrics.metric import MetricsFilter

    from omm.beam_runtime import pipeline_args_with_defaults
    from omm.jobs import ingest_job
    from omm.settings import Settings
    from pipelines.ingest import Ingest, accounts_from_metrics
    from pipelines.running import run

    topics = TopicNames(prefix=prefix)
    job = ingest_job(
        bootstrap,
        topics,
        platforms=[PLATFORM],
        idle_timeout_s=3.0,
        feed_health=feed_health,
        group_id=f"{topics.prefix}ingest",
        key=b"bench-only-key",
        settings=Settings(kafka_client=client),
    )
    result = run("Ingest", Ingest(job), pipeline_args_with_defaults(None, streaming=False))
    accounts = accounts_from_metrics(result)
    read = sum(a.read for a in accounts)
    if read != n or not all(a.balanced for a in accounts):
        raise RuntimeError(f"ingest read {read} of {n} records or did not balance: {accounts}")
    polls = result.metrics().query(
        MetricsFilter().with_namespace("kafka_read").with_name("polled_at_ms")
    )["distributions"]
    first_ms = min((d.committed or d.attempted).min for d in polls)
    return first_ms / 1000.0, accounts


def _namespace(bootstrap: str, prefix: str) -> TopicNames:
    topics = TopicNames(prefix=prefix)
    kafka_client.create_topics(
        bootstrap,
        resolved_topics(only_platforms=[PLATFORM]),
        prefix=topics.prefix,
        extra_config=APPEND_TIME,
    )
    return topics


def _copy(bootstrap: str, source: str, sink: str, n: int) -> None:
    # the same bytes again, for a second run that must not share the first one's offsets
    raw_pass_through(bootstrap, source, sink, n)


def ingest_rate(
    bootstrap: str, topics: TopicNames, n: int, invalid: int, health: bool, client: ClientName
) -> Rate:
    started, (first_read, _), cpu_s = in_fresh_process(
        run_ingest_measured, bootstrap, topics.prefix, n, health, client
    )
    expect = {
        topics.valid("listing"): n - invalid,
        topics.dlq: invalid,
        topics.feedback(PLATFORM): invalid,
    }
    last = last_append_ms(bootstrap, expect) / 1000.0
    label = "on" if health else "off"
    return Rate(
        f"omm ingest ({client}), expectations {label}",
        n,
        last - first_read,
        last - started,
        cpu_s,
    )


def bench_ingest(
    bootstrap: str, n: int, console: Console, clients: Sequence[ClientName] = ("kafka-python",)
) -> None:
    stamp = int(time.time())
    topics = _namespace(bootstrap, f"bench{stamp}.")
    registry = SchemaRegistry.load()
    source = topics.feed(PLATFORM, "listings")
    # the raw run writes to its own copy of omm.valid.listings
    raw_sink = _namespace(bootstrap, f"bench{stamp}raw.").valid("listing")
    with console.status(f"producing {n:,} listings ({100 // INVALID_EVERY} % invalid)…"):
        invalid = produce_listings(bootstrap, source, n, registry, INVALID_EVERY)
    with console.status("raw limit: kafka-python consume + decode + produce…"):
        started, first_read, cpu_s = in_fresh_process(
            raw_pass_through, bootstrap, source, raw_sink, n
        )
        last = last_append_ms(bootstrap, {raw_sink: n}) / 1000.0
        raw = Rate(
            "raw kafka-python: consume, decode, produce (omm's producer settings)",
            n,
            last - first_read,
            last - started,
            cpu_s,
        )
    measured: list[Rate] = []
    if "confluent" in clients:
        raw_sink2 = _namespace(bootstrap, f"bench{stamp}raw2.").valid("listing")
        with console.status("raw limit on confluent-kafka…"):
            started, first_read, cpu_s = in_fresh_process(
                raw_pass_through_confluent, bootstrap, source, raw_sink2, n
            )
            last = last_append_ms(bootstrap, {raw_sink2: n}) / 1000.0
            measured.append(
                Rate(
                    "raw confluent-kafka: the same loop (omm's reader and producer settings)",
                    n,
                    last - first_read,
                    last - started,
                    cpu_s,
                )
            )
    for i, client in enumerate(clients):
        # every run reads its own copy: a namespace of its own, offsets and outputs apart
        for health in (False, True):
            first_run = i == 0 and not health
            run_topics = (
                topics if first_run else _namespace(bootstrap, f"bench{stamp}r{i}{health:d}.")
            )
            if not first_run:
                with console.status(f"copying the {n:,} listings for the next run…"):
                    _copy(bootstrap, source, run_topics.feed(PLATFORM, "listings"), n)
            with console.status(
                f"omm ingest ({client}), expectations {'on' if health else 'off'}…"
            ):
                measured.append(ingest_rate(bootstrap, run_topics, n, invalid, health, client))
    when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    console.print(
        rate_table(
            f"ingest — {n:,} listing events ({invalid:,} invalid), {when}",
            raw,
            measured,
            span="s, read→append",
            start="s, from start",
        )
    )
    runs = [r for r in measured if r.label.startswith("omm ")]
    for i, client in enumerate(clients):
        without, with_health = runs[2 * i], runs[2 * i + 1]
        kept = 100 * with_health.per_second / without.per_second
        console.print(
            f"{client}: expectations on keep {kept:.0f} % of the throughput without them "
            "(target ≥ 70 %)"
        )
    console.print(f"load average at the end: {_loadavg()}")
    console.print(
        f"machine: {MACHINE}; target (read→append, quiet 2-core machine): ingest ≥ 8,500 "
        "records/s, the Python peer's figure on this workload; the raw limit applies no rules"
    )


def _loadavg() -> str:
    try:
        with open("/proc/loadavg", encoding="ascii") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"
