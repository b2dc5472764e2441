"""The ``omm`` command line. Each command is a thin shell over a module API."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from omm.settings import get_settings, pseudonym_key

app = typer.Typer(help="omm: online-market monitoring pipelines.", no_args_is_help=True)
broker_app = typer.Typer(
    help="The embedded single-node Apache Kafka (KRaft).", no_args_is_help=True
)
topics_app = typer.Typer(help="The topic catalog (config/topics.yaml).", no_args_is_help=True)
schemas_app = typer.Typer(help="The Avro contracts in schemas/avro.", no_args_is_help=True)
run_app = typer.Typer(help="Run a pipeline.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
app.add_typer(run_app, name="run")

console = Console()
err = Console(stderr=True)

Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", help="Kafka bootstrap servers (default OMM_KAFKA_BOOTSTRAP)."),
]
Prefix = Annotated[str, typer.Option("--prefix", help="Topic namespace prefix (tests, tenants).")]
UntilIdle = Annotated[
    float | None,
    typer.Option("--until-idle", help="Stop once every partition had nothing new for SECONDS."),
]
PipelineArgs = Annotated[list[str] | None, typer.Argument(help="Beam pipeline options, after --")]


def _bootstrap(value: str | None) -> str:
    return value or get_settings().kafka_bootstrap


def _broker() -> Any:
    from connectors.broker.manager import EmbeddedKafka

    s = get_settings()
    return EmbeddedKafka(
        home=s.home / "kafka", port=s.broker_port, controller_port=s.controller_port
    )


# ---------------------------------------------------------------- broker


@broker_app.command("fetch")
def broker_fetch() -> None:
    """Download the Apache Kafka broker jars from Maven Central into the cache (once)."""
    from connectors.broker.manager import BrokerError

    try:
        with console.status("Fetching Kafka jars with Maven (first time only)…"):
            path = _broker().ensure_jars()
    except BrokerError as exc:
        err.print(f"[red]fetch failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"Kafka jars in {path}")


@broker_app.command("start")
def broker_start() -> None:
    """Fetch the Kafka jars (once, via Maven), format storage (once) and start the broker."""
    from connectors.broker.manager import BrokerError

    broker = _broker()
    try:
        with console.status("Fetching Kafka jars with Maven (first time only)…"):
            broker.ensure_jars()
        with console.status("Starting Kafka…"):
            status = broker.start()
    except BrokerError as exc:
        err.print(f"[red]broker failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"[green]running[/green] {status.describe()}")


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the embedded broker gracefully; its data stays for the next start."""
    stopped = _broker().stop()
    console.print("stopped" if stopped else "not running")


@broker_app.command("status")
def broker_status() -> None:
    """Say whether the embedded broker runs, and where. Exit 1 when it does not."""
    status = _broker().status()
    console.print(status.describe())
    if not status.running:
        raise typer.Exit(1)


# ---------------------------------------------------------------- topics / schemas


@topics_app.command("create")
def topics_create(bootstrap: Bootstrap = None, prefix: Prefix = "") -> None:
    """Create every topic of the catalog that does not exist yet (idempotent)."""
    from connectors.kafka_client import create_topics
    from omm.config import resolved_topics

    wanted = resolved_topics()
    created = create_topics(_bootstrap(bootstrap), wanted, prefix=prefix)
    console.print(f"{len(created)} topics created, {len(wanted) - len(created)} already existed")
    for name in created:
        console.print(f"  + {name}")


@topics_app.command("list")
def topics_list() -> None:
    """Show the catalog: names, partitions, retention, cleanup policy."""
    from omm.config import resolved_topics

    table = Table("topic", "entity", "partitions", "retention ms", "cleanup")
    for t in resolved_topics():
        table.add_row(
            t.name, t.entity or "-", str(t.partitions), str(t.retention_ms), t.cleanup_policy
        )
    console.print(table)


@schemas_app.command("check")
def schemas_check(
    root: Annotated[Path | None, typer.Option(help="Schema root (default schemas/avro).")] = None,
) -> None:
    """Prove every schema version BACKWARD compatible with all its earlier versions."""
    from schemas.compat import check_backward
    from schemas.registry import SchemaRegistry

    problems = check_backward(root)
    if problems:
        for problem in problems:
            err.print(f"[red]✗[/red] {problem}")
        err.print(f"[red]{len(problems)} compatibility problem(s)[/red]")
        raise typer.Exit(1)
    registry = SchemaRegistry.load(root)
    table = Table("entity", "versions", "current fingerprint")
    for entity in registry.entities():
        current = registry.current(entity)
        table.add_row(entity, str(len(registry.versions(entity))), current.fingerprint_hex)
    console.print(table)
    console.print("[green]all schemas BACKWARD compatible with every earlier version[/green]")


# ---------------------------------------------------------------- push / publish


def _push(
    feed: str,
    path: Path,
    platform: str | None,
    bootstrap: str | None,
    prefix: str,
    allow_rejects: bool,
) -> None:
    from connectors.push import push_records, read_lines
    from omm.config import load_platforms, load_rules
    from omm.topics import TopicNames

    if not path.exists():
        err.print(f"[red]no such file:[/red] {path}")
        raise typer.Exit(2)
    lines = list(read_lines(path))
    with _progress() as progress:
        task = progress.add_task(f"pushing {feed}", total=len(lines))
        try:
            report = push_records(
                lines,
                feed=feed,
                platform=platform,
                bootstrap=_bootstrap(bootstrap),
                rules=load_rules(),
                platforms=load_platforms(),
                topics=TopicNames(prefix),
                on_line=lambda: progress.advance(task),
            )
        except ValueError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from exc
    for rejection in report.rejected:
        err.print(f"[yellow]rejected[/yellow] {escape(path.name)} {escape(rejection.describe())}")
    table = Table("topic", "lines", "sent", "rejected")
    table.add_row(report.topic, str(report.total), str(report.sent), str(len(report.rejected)))
    console.print(table)
    if not report.all_accepted and not allow_rejects:
        raise typer.Exit(1)


AllowRejects = Annotated[
    bool, typer.Option("--allow-rejects", help="Exit 0 even when some lines were rejected.")
]


@app.command("push")
def push(
    feed: Annotated[str, typer.Argument(help="listings | complaints | takedowns")],
    file: Annotated[Path, typer.Argument(help="JSON Lines (.jsonl) or CSV (.csv) file")],
    platform: Annotated[str, typer.Option("--platform", "-p", help="Your platform id")],
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    allow_rejects: AllowRejects = False,
) -> None:
    """Validate FILE line by line and push the valid lines to omm.feed.<platform>.<feed>."""
    _push(feed, file, platform, bootstrap, prefix, allow_rejects)


@app.command("publish")
def publish(
    feed: Annotated[str, typer.Argument(help="inspections | penalties")],
    file: Annotated[Path, typer.Argument(help="JSON Lines (.jsonl) or CSV (.csv) file")],
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    allow_rejects: AllowRejects = False,
) -> None:
    """Validate FILE and publish regulator records to omm.reg.<feed>."""
    _push(feed, file, None, bootstrap, prefix, allow_rejects)


# ---------------------------------------------------------------- run


@run_app.command("ingest")
def run_ingest_cmd(
    until_idle: UntilIdle = None,
    platforms: Annotated[
        str | None, typer.Option(help="Comma-separated platform ids (default: all registered).")
    ] = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    pipeline_args: PipelineArgs = None,
) -> None:
    """Validate the platform and regulator feeds into omm.valid.*; bad records to DLQ + feedback."""
    servers = _bootstrap(bootstrap)
    [accounts] = _run_stages(
        [("ingest", lambda: run_ingest_job(servers, prefix, platforms, until_idle, pipeline_args))]
    )
    if accounts is None:  # stopped by the operator before the pipeline returned
        return
    print_accounts(accounts)
    if any(not a.balanced for a in accounts):
        raise typer.Exit(1)


def run_ingest_job(
    bootstrap: str,
    prefix: str,
    platforms: str | None,
    until_idle: float | None,
    pipeline_args: list[str] | None,
    quiet: bool = False,
) -> list[Any]:
    from omm.beam_runtime import pipeline_args_with_defaults
    from omm.config import load_platforms
    from omm.topics import TopicNames
    from pipelines.ingest import IngestJob, run_ingest

    settings = get_settings()
    ids = platforms.split(",") if platforms else load_platforms().ids
    job = IngestJob(
        bootstrap=bootstrap,
        platforms=ids,
        topics=TopicNames(prefix),
        group_id=f"{settings.consumer_group_prefix}.{prefix}ingest",
        pseudonym_key=pseudonym_key(settings),
        idle_timeout_s=until_idle,
    )
    with _running("ingest", until_idle, quiet):
        return run_ingest(
            job, pipeline_args_with_defaults(pipeline_args, streaming=until_idle is None)
        )


@run_app.command("enforce")
def run_enforce_cmd(
    until_idle: UntilIdle = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    pipeline_args: PipelineArgs = None,
) -> None:
    """Join failed results with live listings: tasks to omm.tasks.<platform>, reviews to review."""
    servers = _bootstrap(bootstrap)
    [account] = _run_stages(
        [("enforce", lambda: run_enforce_job(servers, prefix, until_idle, pipeline_args))]
    )
    if account is None:
        return
    print_enforce_account(account)
    if not account.balanced:
        raise typer.Exit(1)


@run_app.command("all")
def run_all_cmd(
    until_idle: Annotated[
        float | None,
        typer.Option("--until-idle", help="Bounded: ingest until idle, then enforce until idle."),
    ] = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
) -> None:
    """Every stage. Bounded runs go one after the other; streaming runs side by side."""
    servers = _bootstrap(bootstrap)
    if until_idle is not None:
        accounts = run_ingest_job(servers, prefix, None, until_idle, None)
        print_accounts(accounts)
        enforce_account = run_enforce_job(servers, prefix, until_idle, None)
        print_enforce_account(enforce_account)
        if not enforce_account.balanced or any(not a.balanced for a in accounts):
            raise typer.Exit(1)
        return
    # one spinner only: rich allows a single live display at a time
    console.print("ingest and enforce streaming side by side (Ctrl-C to stop)…")
    _run_stages(
        [
            ("ingest", lambda: run_ingest_job(servers, prefix, None, None, None, True)),
            ("enforce", lambda: run_enforce_job(servers, prefix, None, None, True)),
        ]
    )


def _run_stages(stages: list[tuple[str, Any]]) -> list[Any]:
    """Run pipelines until done or stopped (Ctrl-C stops them cleanly: omm.runner)."""
    from connectors.delivery import BrokerUnavailable
    from omm.runner import Stage, StageFailed, run_stages

    try:
        return run_stages([Stage(n, f) for n, f in stages], get_settings().stop_grace_s)
    except StageFailed as exc:
        if not isinstance(exc.error, BrokerUnavailable):
            raise exc.error from None
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from exc
    except TimeoutError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from exc


def run_enforce_job(
    bootstrap: str,
    prefix: str,
    until_idle: float | None,
    pipeline_args: list[str] | None,
    quiet: bool = False,
) -> Any:
    from omm.beam_runtime import pipeline_args_with_defaults
    from omm.topics import TopicNames
    from pipelines.enforce import EnforceJob, run_enforce

    job = EnforceJob(bootstrap=bootstrap, topics=TopicNames(prefix), idle_timeout_s=until_idle)
    with _running("enforce", until_idle, quiet):
        return run_enforce(
            job, pipeline_args_with_defaults(pipeline_args, streaming=until_idle is None)
        )


def _running(stage: str, until_idle: float | None, quiet: bool) -> Any:
    if quiet:
        return contextlib.nullcontext()
    return console.status(
        f"{stage} running…" + (f" (until idle {until_idle}s)" if until_idle else "")
    )


def print_enforce_account(account: Any) -> None:
    table = Table(
        "in",
        "keyed",
        "unkeyed",
        "dead letters",
        "balanced",
        "tasks",
        "reviews",
        "withdrawn",
        title="enforce account",
    )
    table.add_row(
        *(str(getattr(account, f)) for f in ("read", "keyed", "unkeyed", "dead")),
        "[green]yes[/green]" if account.balanced else "[red]NO[/red]",
        *(str(getattr(account, f)) for f in ("tasks", "reviews", "withdrawn")),
    )
    console.print(table)


def print_accounts(accounts: list[Any]) -> None:
    table = Table(
        "source topic",
        "in",
        "valid",
        "quarantined",
        "dead letters",
        "balanced",
        title="ingest account (in = valid + quarantined + dead letters)",
    )
    for a in accounts:
        table.add_row(
            a.topic,
            str(a.read),
            str(a.valid),
            str(a.quarantined),
            str(a.dead),
            "[green]yes[/green]" if a.balanced else "[red]NO[/red]",
        )
    total = [sum(getattr(a, f) for a in accounts) for f in ("read", "valid", "quarantined", "dead")]
    table.add_row("[b]total[/b]", *map(str, total), "", end_section=True)
    console.print(table)


# ---------------------------------------------------------------- report

report_app = typer.Typer(help="Reports for regulators and operators.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("feeds")
def report_feeds(
    out: Annotated[Path, typer.Option("--out", help="Directory for the Data Docs site")],
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
) -> None:
    """Great Expectations Data Docs (HTML, offline) for the latest health of each platform/feed."""
    from omm.topics import TopicNames
    from pipelines.feed_health import FeedHealth, write_data_docs

    topic = TopicNames(prefix).feed_health
    latest: dict[str, FeedHealth] = {}
    with console.status(f"reading {topic}…"):
        try:
            from connectors.tail import tail_records

            for line in tail_records(_bootstrap(bootstrap), topic, timeout_s=2.0):
                if line.get("value"):
                    health = FeedHealth.from_record(line["value"])
                    latest[health.key] = health
        except LookupError as exc:
            err.print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from exc
    if not latest:
        err.print(f"[yellow]no feed-health records on {topic} yet: run ingest first[/yellow]")
        raise typer.Exit(1)
    index = write_data_docs(latest.values(), out)
    table = Table(
        "platform", "feed", "rows", "healthy", "failing expectations", title="feed health"
    )
    for h in sorted(latest.values(), key=lambda h: h.key):
        failing = ", ".join(o.expectation for o in h.failing()) or "-"
        table.add_row(
            h.platform, h.feed, str(h.rows), "yes" if h.success else "[red]no[/red]", failing
        )
    console.print(table)
    console.print(f"Data Docs: {index}")


# ---------------------------------------------------------------- tail


@app.command("tail")
def tail(
    topic: Annotated[str, typer.Argument(help="Topic to read")],
    from_beginning: Annotated[bool, typer.Option("--from-beginning")] = False,
    max_records: Annotated[int | None, typer.Option("--max", help="Stop after N records")] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Stop after S seconds without records")
    ] = 5.0,
    bootstrap: Bootstrap = None,
) -> None:
    """Print a topic's records as JSON Lines (Avro decoded; dead letters with their headers)."""
    from connectors.tail import tail_records

    try:
        for line in tail_records(
            _bootstrap(bootstrap), topic, from_beginning, max_records, timeout
        ):
            sys.stdout.write(json.dumps(line, ensure_ascii=False, default=_json_default) + "\n")
    except LookupError as exc:
        err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    sys.stdout.flush()


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


# ---------------------------------------------------------------- demo


@app.command("demo")
def demo(
    seed: Annotated[int, typer.Option(help="Random seed for the generated data")] = 2016,
) -> None:
    """The whole story on the embedded broker with generated data, with progress shown."""
    from omm.demo import run_demo

    started = time.monotonic()
    run_demo(console, seed=seed)
    console.print(f"demo finished in {time.monotonic() - started:.0f}s")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
    )


if __name__ == "__main__":
    app()
