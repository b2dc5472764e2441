"""`omm status`: what an operator watches, read from the broker.

Per pipeline and source topic: the log end offset, the offset the pipeline's consumer
group committed, the lag between them (in records, and how long the oldest of them has
waited), how long ago it committed, and the records per second arriving; what ingest
made of the records it processed in the window (valid, quarantined, dead letters:
rates and shares); the open tasks per platform.

Everything comes from the broker (:mod:`connectors.offsets`), none of it from a
pipeline's process: the command works from any machine, for any runner, whether the
pipelines run or not. Why each figure is read as it is:

- **committed offsets** are the groups' (``list_group_offsets``), the same the
  pipelines resume from. Only ingest commits today; enforce and comply rebuild their
  state from the earliest offsets on every start (docs/operator-guide.md §6), so
  their lag shows as unknown rather than as a number they do not keep.
- **lag in seconds** is the timestamp of the record at the committed offset (one small
  fetch per lagging partition): freshness, which a count of records does not tell.
- **commit age** is the time each commit carries in its metadata (written by
  :func:`connectors.kafka_client.commit_offsets`): the broker keeps none itself.
- **records per second** count the offsets written within the window
  (``offsets_for_times`` at its start, against the end offsets): one look, no second
  sample to wait for. ``rate(omm_committed_offset[5m])`` in Prometheus gives what a
  pipeline consumes.
- **open tasks** are the latest status per task on the compacted
  ``omm.compliance.status``: comply's own verdict, one record per task once
  compacted, where "tasks minus completions" would re-derive comply's state machine
  from its inputs.

``--serve`` (or ``OMM_METRICS_PORT`` for ``omm run``) exports the same figures in
Prometheus' text format (:mod:`omm.metrics`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Annotated, NamedTuple

import typer
from rich.console import Console

from omm.figures import OPEN_STATES, OUTCOMES, STATES
from omm.monitor import PIPELINES, Status, StatusReader, reader_for
from omm.settings import get_settings
from omm.tables import table

# kafka and prometheus_client are imported where they are used: every `omm` command
# imports this module.

console = Console()


# ---------------------------------------------------------------- showing


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{_duration(seconds)} ago"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def print_status(status: Status, out: Console) -> None:
    """The figures as tables: sources, ingest's output, open tasks."""
    window = f"{status.window_s / 60:g} min" if status.window_s >= 60 else f"{status.window_s:g}s"
    sources = table(
        "pipeline", "source topic", "end offset", "committed", "lag", "waiting", "last commit",
        "in/s",
        counts=("end offset", "committed", "lag", "in/s"),
        title=f"sources (in/s: records arriving, over the last {window})",
    )  # fmt: skip
    for s in status.sources:
        lag = s.lag
        sources.add_row(
            s.pipeline,
            s.topic,
            str(s.end),
            _count(s.committed),
            f"[yellow]{lag}[/yellow]" if lag else _count(lag),
            _duration(s.lag_s(status.at_ms)),
            _age(s.commit_age_s(status.at_ms)),
            f"{s.records_per_second:.2f}",
        )
    out.print(sources)
    if status.ingest is not None:
        ingest = status.ingest
        made = table(
            "outcome", "records", "per second", "share",
            counts=("records", "per second", "share"),
            title=f"ingest output over the last {window}",
        )  # fmt: skip
        for outcome in OUTCOMES:
            n = ingest.count(outcome)
            share = n / ingest.processed if ingest.processed else None
            made.add_row(outcome, str(n), f"{ingest.per_second(outcome):.2f}", _share(share))
        made.add_row(
            "[b]processed[/b]",
            str(ingest.processed),
            f"{ingest.records_per_second:.2f}",
            "",
            end_section=True,
        )
        out.print(made)
    if status.tasks is not None:
        shown = (*OPEN_STATES, *(s for s in STATES if s not in OPEN_STATES))
        tasks = table(
            "platform", "open", *(s.lower() for s in shown),
            counts=("open", *(s.lower() for s in shown)),
            title="tasks by latest compliance status (open: issued, overdue, relisted, disputed)",
        )  # fmt: skip
        for t in status.tasks:
            tasks.add_row(t.platform, str(t.open), *(str(t.by_state.get(s, 0)) for s in shown))
        if not status.tasks:
            out.print("[dim]no compliance statuses yet (comply has not published any)[/dim]")
        else:
            out.print(tasks)
    if status.undecoded_statuses:
        out.print(
            f"[yellow]{status.undecoded_statuses} compliance status record(s) did not decode "
            "and are not counted (`omm tail` shows them)[/yellow]"
        )


# ---------------------------------------------------------------- the command

Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", help="Kafka bootstrap servers (default OMM_KAFKA_BOOTSTRAP)."),
]
Prefix = Annotated[str, typer.Option("--prefix", help="Topic namespace prefix (tests, tenants).")]


def status_command(
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    platforms: Annotated[
        str | None, typer.Option(help="Comma-separated platform ids (default: all registered).")
    ] = None,
    window: Annotated[
        float | None,
        typer.Option(
            "--window", help="Rates over the last SECONDS (default OMM_STATUS_WINDOW_S, 300)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object, for scripts.")] = False,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Serve the figures on /metrics (Prometheus) until Ctrl-C, instead of printing.",
        ),
    ] = False,
    port: Annotated[
        int | None, typer.Option("--port", help="Port for --serve (default OMM_METRICS_PORT).")
    ] = None,
) -> None:
    """Lag, last commit and records per second per pipeline and source topic, ingest's
    dead-letter and quarantine rates, open tasks per platform: read from the broker."""
    from connectors.probe import probe
    from omm.errors import UserError

    settings = get_settings()
    if window is not None and window <= 0:
        raise UserError(f"--window must be more than 0 seconds, not {window:g}")
    port = port if port is not None else settings.metrics_port
    if serve and port is None:
        raise UserError("--serve needs a port: --port N or OMM_METRICS_PORT")
    cluster = probe(
        bootstrap or settings.kafka_bootstrap,
        settings.kafka_probe_timeout_s,
        security=settings.kafka_security(),
    )
    reader = reader_for(
        cluster.bootstrap, prefix, platforms.split(",") if platforms else None, window_s=window
    )
    cluster.require(reader.topics_read, prefix)
    try:
        if serve:
            assert port is not None
            _serve_until_stopped(reader, settings.metrics_host, port)
            return
        status = reader.read()
    finally:
        reader.close()
    if as_json:
        typer.echo(json.dumps(status.to_json(), ensure_ascii=False))
    else:
        print_status(status, console)


def _serve_until_stopped(reader: StatusReader, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (how a service manager stops it), then close."""
    import signal
    import threading

    from omm.metrics import serve_metrics

    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda signum, frame: stop.set())
        for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with serve_metrics(reader, host, port) as address:
            console.print(f"serving http://{address}/metrics (Ctrl-C to stop)")
            stop.wait()
        console.print("stopped")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class RunScope(NamedTuple):
    """What a running ``omm run`` reads from: its cluster, namespace and platforms."""

    bootstrap: str
    prefix: str = ""
    platforms: str | None = None  # comma-separated ids, as typed; None: every platform


# every stage `omm run` knows, in pipeline order
STAGES = PIPELINES


@contextmanager
def metrics_for_run(stages: Sequence[str], scope: RunScope) -> Iterator[None]:
    """While ``omm run`` runs ``stages``: their figures on /metrics, when OMM_METRICS_PORT
    is set (nothing otherwise). The figures of the stages this process runs only, so
    three processes each running one stage are never counted twice.
    """
    settings = get_settings()
    if settings.metrics_port is None:
        yield
        return
    from omm.metrics import serve_metrics

    reader = reader_for(
        scope.bootstrap,
        scope.prefix,
        scope.platforms.split(",") if scope.platforms else None,
        pipelines=[s for s in PIPELINES if s in stages],
        settings=settings,
    )
    try:
        with serve_metrics(reader, settings.metrics_host, settings.metrics_port):
            yield
    finally:
        reader.close()
