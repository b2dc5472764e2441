"""The status figures in Prometheus' text format, computed from the broker on each scrape.

A custom collector rather than gauges set by the pipelines: the figures are the
broker's (what `omm status` prints), so they are right whichever runner or machine
runs the stages, and a scrape of a stuck pipeline still shows its lag growing.
Names follow Prometheus' conventions (base units, ``_seconds``, ``_records``,
``_ratio``); docs/operator-guide.md §11 says what each means and what to alert on.

A scrape that cannot reach the broker answers ``omm_status_up 0`` and nothing else,
rather than an HTTP error, so the alert says what is wrong.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from omm.figures import OUTCOMES, STATES
from omm.monitor import Status, StatusReader

log = logging.getLogger("omm.metrics")

_SOURCE = ("pipeline", "topic", "partition")


def families(status: Status) -> list[Metric]:
    """One look's figures as metric families."""
    end = GaugeMetricFamily(
        "omm_log_end_offset", "Next offset to be written to a source partition.", labels=_SOURCE
    )
    committed = GaugeMetricFamily(
        "omm_committed_offset",
        "Next offset the pipeline's consumer group committed on a source partition "
        "(rate() of it: records the pipeline processed per second).",
        labels=_SOURCE,
    )
    lag = GaugeMetricFamily(
        "omm_consumer_lag_records",
        "Records written to a source partition and not yet committed by the pipeline.",
        labels=_SOURCE,
    )
    waited = GaugeMetricFamily(
        "omm_consumer_lag_seconds",
        "How long the oldest record not yet committed on a source partition has waited "
        "(0 without a lag).",
        labels=_SOURCE,
    )
    age = GaugeMetricFamily(
        "omm_committed_offset_age_seconds",
        "Seconds since the pipeline last committed on a source partition.",
        labels=_SOURCE,
    )
    arriving = GaugeMetricFamily(
        "omm_records_per_second",
        "Records written to a source topic per second, over the status window.",
        labels=("pipeline", "topic"),
    )
    for s in status.sources:
        arriving.add_metric([s.pipeline, s.topic], s.records_per_second)
        for p in s.partitions:
            labels = [s.pipeline, s.topic, str(p.partition)]
            end.add_metric(labels, p.end)
            if p.committed is not None:
                committed.add_metric(labels, p.committed)
            if p.lag is not None:
                lag.add_metric(labels, p.lag)
            if (wait := p.lag_s(status.at_ms)) is not None:
                waited.add_metric(labels, wait)
            if (seconds := p.commit_age_s(status.at_ms)) is not None:
                age.add_metric(labels, seconds)
    out: list[Metric] = [
        GaugeMetricFamily("omm_status_up", "1: the figures were read from the broker.", 1),
        GaugeMetricFamily(
            "omm_status_window_seconds", "The window rates are computed over.", status.window_s
        ),
        end,
        committed,
        lag,
        waited,
        age,
        arriving,
    ]
    if status.ingest is not None:
        ingest = status.ingest
        made = GaugeMetricFamily(
            "omm_ingest_output_records_per_second",
            "Records ingest wrote per second over the window, by outcome "
            "(valid, quarantined, dead_letter): together, what it processed.",
            labels=("outcome",),
        )
        for outcome in OUTCOMES:
            made.add_metric([outcome], ingest.per_second(outcome))
        out.append(made)
        # no share of nothing: absent (not 0, not NaN) when ingest processed nothing
        if ingest.dead_letter_ratio is not None:
            out.append(
                GaugeMetricFamily(
                    "omm_dead_letter_ratio",
                    "Share of what ingest processed over the window that became a dead letter.",
                    ingest.dead_letter_ratio,
                )
            )
        if ingest.quarantine_ratio is not None:
            out.append(
                GaugeMetricFamily(
                    "omm_quarantine_ratio",
                    "Share of what ingest processed over the window that was quarantined.",
                    ingest.quarantine_ratio,
                )
            )
    if status.tasks is not None:
        open_tasks = GaugeMetricFamily(
            "omm_open_tasks",
            "Tasks whose latest compliance status is ISSUED, OVERDUE, RELISTED or DISPUTED.",
            labels=("platform",),
        )
        by_state = GaugeMetricFamily(
            "omm_tasks", "Tasks by their latest compliance status.", labels=("platform", "status")
        )
        for t in status.tasks:
            open_tasks.add_metric([t.platform], t.open)
            for state in STATES:
                by_state.add_metric([t.platform, state], t.by_state.get(state, 0))
        out += [open_tasks, by_state]
    return out


class StatusCollector(Collector):
    """Reads the broker on every scrape (one at a time: the reader keeps a position)."""

    def __init__(self, reader: StatusReader) -> None:
        self._reader = reader
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            try:
                status = self._reader.read()
            except Exception as exc:  # any failure to read is the same answer: not up
                log.warning("metrics: could not read the status from the broker: %s", exc)
                return [GaugeMetricFamily("omm_status_up", "1: read from the broker.", 0)]
        return families(status)


@contextmanager
def serve_metrics(reader: StatusReader, host: str, port: int) -> Iterator[str]:
    """Serve /metrics on ``host:port`` while the block runs; yields ``host:port``.

    The process's own CPU, memory and open files come too (``process_*``).
    """
    from omm.errors import USAGE, UserError

    registry = CollectorRegistry()
    registry.register(StatusCollector(reader))
    ProcessCollector(registry=registry)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise UserError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}): "
            "set OMM_METRICS_PORT (or --port) to a free port",
            USAGE,
        ) from exc
    try:
        yield f"{host}:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
