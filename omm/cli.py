"""The ``omm`` command line. Each command is a thin shell over a module API.

An error a user can fix (broker unreachable, topic missing, file not UTF-8, ...)
is one line on stderr saying what to try, never a traceback; :mod:`omm.errors`
words them all. ``omm --debug COMMAND`` adds the traceback. Exit codes: 0 done,
1 records rejected or an account that does not balance, 2 wrong command line or
input file, 3 cluster unreachable / not ready / records not acknowledged, 70 a bug.
"""

from __future__ import annotations

import functools
import json
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from typer.core import TyperGroup

from omm.platforms import platform_app
from omm.review import review_app
from omm.settings import get_settings
from omm.status import STAGES, RunScope, metrics_for_run, status_command
from omm.tables import (
    print_accounts,
    print_comply_account,
    print_enforce_account,
    print_intel_account,
    table,
)

if TYPE_CHECKING:
    from connectors.probe import Cluster
    from omm.beam_runtime import Start

console = Console()
err = Console(stderr=True)


class _ExplainingGroup(TyperGroup):
    """The root command: turns any error raised below it into one line (see omm.errors)."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # exit codes, Ctrl-C, usage errors: typer already knows how to end
        except Exception as exc:
            _fail(exc, debug=bool(ctx.params.get("debug")))


def _fail(exc: Exception, debug: bool) -> None:
    from omm.errors import INTERNAL, explain

    if debug:
        traceback.print_exception(exc, file=sys.stderr)
        sys.stderr.flush()
    explanation = explain(exc)
    if explanation is None:
        what = " ".join(f"{type(exc).__name__}: {exc}".split())
        message, code = f"unexpected error {what} (a bug: `omm --debug …` shows where)", INTERNAL
    else:
        message, code = explanation.message, explanation.exit_code
    # soft_wrap: one line however narrow the terminal, so scripts can grep it
    err.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True, highlight=False)
    raise typer.Exit(code) from exc


app = typer.Typer(
    help="omm: online-market monitoring pipelines.", no_args_is_help=True, cls=_ExplainingGroup
)
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
app.add_typer(platform_app, name="platform")
app.add_typer(review_app, name="review")
app.command("status")(status_command)


@app.callback()
def main(
    debug: Annotated[
        bool,
        typer.Option("--debug", envvar="OMM_DEBUG", help="Show the traceback of an error too."),
    ] = False,
) -> None:
    """omm: online-market monitoring pipelines."""


Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", help="Kafka bootstrap servers (default OMM_KAFKA_BOOTSTRAP)."),
]
Prefix = Annotated[str, typer.Option("--prefix", help="Topic namespace prefix (tests, tenants).")]
UntilIdle = Annotated[
    float | None,
    typer.Option("--until-idle", help="Stop once every partition had nothing new for SECONDS."),
]
PipelineArgs = Annotated[
    list[str] | None,
    typer.Argument(
        help="Beam pipeline options, after -- (e.g. -- --runner=PrismRunner), to every stage."
    ),
]
StartOption = Annotated[
    str | None,
    typer.Option(
        "--start",
        metavar="earliest|committed",
        help="Where enforce and comply read from: earliest rebuilds their state (the default "
        "on runners that keep none across restarts: FnApiRunner, Prism), committed resumes "
        "(the default on FlinkRunner, DataflowRunner, SparkRunner, which checkpoint it).",
    ),
]


def _bootstrap(value: str | None) -> str:
    return value or get_settings().kafka_bootstrap


def _reach(bootstrap: str | None) -> Cluster:
    """Probe the bootstrap within OMM_KAFKA_PROBE_TIMEOUT_S before any work starts."""
    from connectors.probe import probe

    return probe(_bootstrap(bootstrap), get_settings().kafka_probe_timeout_s, security=_security())


def _security() -> Any:
    """Every client of this command logs in as OMM_KAFKA_* says (None: unsecured)."""
    return get_settings().kafka_security()


def _broker(secure: bool = False) -> Any:
    from connectors.broker.manager import EmbeddedKafka

    s = get_settings()
    return EmbeddedKafka(
        home=s.home / "kafka",
        port=s.broker_port,
        controller_port=s.controller_port,
        security="sasl_scram" if secure else s.broker_security,
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
def broker_start(
    secure: Annotated[
        bool,
        typer.Option("--secure", help="SASL/SCRAM + ACLs (or OMM_BROKER_SECURITY=sasl_scram)."),
    ] = False,
) -> None:
    """Fetch the Kafka jars (once, via Maven), format storage (once) and start the broker."""
    from connectors.broker.manager import BrokerError

    broker = _broker(secure)
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
    cluster = _reach(bootstrap)
    created = create_topics(cluster.bootstrap, wanted, prefix=prefix, security=_security())
    console.print(f"{len(created)} topics created, {len(wanted) - len(created)} already existed")
    for name in created:
        console.print(f"  + {name}")


@topics_app.command("delete")
def topics_delete(
    prefix: Annotated[
        str, typer.Option("--prefix", help="Namespace to delete, ending in '.', e.g. demo1-ab12.")
    ],
    bootstrap: Bootstrap = None,
) -> None:
    """Delete every topic under a namespace prefix, and its consumer groups."""
    from connectors.kafka_client import delete_namespace
    from omm.errors import UserError

    if not prefix.endswith(".") or len(prefix) < 2:
        raise UserError(f"--prefix must name a namespace ending in '.', not {prefix!r}")
    cluster = _reach(bootstrap)
    deleted = delete_namespace(cluster.bootstrap, prefix, get_settings().consumer_group_prefix)
    console.print(f"{len(deleted)} topics deleted under {prefix}")


@topics_app.command("list")
def topics_list() -> None:
    """Show the catalog: names, partitions, retention, cleanup policy."""
    from omm.config import resolved_topics

    catalog = table(
        "topic", "entity", "partitions", "retention ms", "cleanup",
        counts=("partitions", "retention ms"),
    )  # fmt: skip
    for t in resolved_topics():
        catalog.add_row(
            t.name, t.entity or "-", str(t.partitions), str(t.retention_ms), t.cleanup_policy
        )
    console.print(catalog)


@schemas_app.command("check")
def schemas_check(
    root: Annotated[Path | None, typer.Option(help="Schema root (default schemas/avro).")] = None,
) -> None:
    """Prove every schema version BACKWARD compatible with all its earlier versions,
    and the record models in step with each entity's current version."""
    from schemas.compat import check_schemas
    from schemas.registry import SchemaRegistry

    problems = check_schemas(root)
    if problems:
        for problem in problems:
            err.print(f"[red]✗[/red] {problem}")
        err.print(f"[red]{len(problems)} compatibility problem(s)[/red]")
        raise typer.Exit(1)
    registry = SchemaRegistry.load(root)
    listing = table(
        "entity", "versions", "current fingerprint", counts=("versions",)
    )  # fmt: skip
    for entity in registry.entities():
        current = registry.current(entity)
        listing.add_row(entity, str(len(registry.versions(entity))), current.fingerprint_hex)
    console.print(listing)
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
    from connectors.push import push_records, read_lines, topic_for
    from connectors.topics import TopicNames
    from omm.config import load_platforms, load_rules
    from omm.errors import UserError

    registered = load_platforms()
    if platform is not None and platform not in registered:
        raise UserError(
            f"platform {platform!r} is not registered (config/platforms.yaml): "
            f"use one of {', '.join(registered.ids)}"
        )
    lines = list(read_lines(path))  # the whole file first: a bad encoding refuses it all
    topics = TopicNames(prefix)
    cluster = _reach(bootstrap)
    cluster.require([topic_for(feed, platform, topics)[0]], prefix)
    with _progress() as progress:
        task = progress.add_task(f"pushing {feed}", total=len(lines))
        report = push_records(
            lines,
            feed=feed,
            platform=platform,
            bootstrap=cluster.bootstrap,
            rules=load_rules().record_rules,
            platforms=registered,
            topics=topics,
            on_line=lambda: progress.advance(task),
            cluster=cluster,
            security=_security(),
        )
    for rejection in report.rejected:
        err.print(f"[yellow]rejected[/yellow] {escape(path.name)} {escape(rejection.describe())}")
    for failure in report.failed:
        err.print(
            f"[red]not acknowledged[/red] {escape(path.name)} {escape(failure.describe())}",
            soft_wrap=True,
        )
    summary = table(
        "topic", "lines", "sent", "rejected", "not acknowledged",
        counts=("lines", "sent", "rejected", "not acknowledged"),
    )  # fmt: skip
    summary.add_row(
        report.topic,
        str(report.total),
        str(report.sent),
        str(len(report.rejected)),
        str(len(report.failed)),
    )
    console.print(summary)
    if not report.all_delivered:
        from omm.errors import UNAVAILABLE

        err.print(
            f"[red]{len(report.failed)} valid line(s) not acknowledged by the broker:[/red] "
            "push those lines again once the cause above is fixed",
            soft_wrap=True,
        )
        raise typer.Exit(UNAVAILABLE)
    if not report.all_accepted and not allow_rejects:
        raise typer.Exit(1)


def _feed_kind(feed: str, command: str) -> None:
    """push takes platform feeds only, publish regulator feeds only: say which to use."""
    from omm.errors import UserError
    from schemas.feeds import FEED_ENTITIES, REGULATOR_ENTITIES

    if command == "push" and feed in REGULATOR_ENTITIES:
        raise UserError(
            f"{feed!r} is a regulator feed: use `omm publish {feed} FILE` "
            f"(platforms push {' | '.join(FEED_ENTITIES)})"
        )
    if command == "publish" and feed in FEED_ENTITIES:
        raise UserError(
            f"{feed!r} is a platform feed: use `omm push {feed} FILE --platform ID` "
            f"(the regulator publishes {' | '.join(REGULATOR_ENTITIES)})"
        )
    known = FEED_ENTITIES if command == "push" else REGULATOR_ENTITIES
    if feed not in known:
        raise UserError(f"unknown feed {feed!r}: `omm {command}` takes {' | '.join(known)}")


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
    _feed_kind(feed, "push")
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
    _feed_kind(feed, "publish")
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
    """Validate the platform and regulator feeds into omm.valid.*; bad records to DLQ + feedback.

    Ingest keeps no state of its own, so it always resumes from its committed offsets.
    """
    servers = _ready_for_ingest(bootstrap, prefix, platforms)
    _run_one(
        "ingest",
        lambda: run_ingest_job(servers, prefix, platforms, until_idle, pipeline_args),
        _show_ingest,
        RunScope(servers, prefix, platforms),
    )


@run_app.command("enforce")
def run_enforce_cmd(
    until_idle: UntilIdle = None,
    start: StartOption = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    pipeline_args: PipelineArgs = None,
) -> None:
    """Join failed results with live listings: tasks to omm.tasks.<platform>, reviews to review."""
    _run_stateful("enforce", until_idle, start, bootstrap, prefix, pipeline_args)


@run_app.command("comply")
def run_comply_cmd(
    until_idle: UntilIdle = None,
    start: StartOption = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    pipeline_args: PipelineArgs = None,
) -> None:
    """Track each task to its outcome: omm.compliance.status and the takedown scorecards.

    A delisting is tracked on its listing, a compensation-first task on its complaint.
    """
    _run_stateful("comply", until_idle, start, bootstrap, prefix, pipeline_args)


@run_app.command("intel")
def run_intel_cmd(
    until_idle: UntilIdle = None,
    start: StartOption = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    pipeline_args: PipelineArgs = None,
) -> None:
    """Complaint intelligence and the credit list: omm.intel.sampling, omm.intel.leads,
    omm.credit.events, compensation-first and FLAG tasks to omm.tasks.<platform>.

    Bounded (--until-idle): emits what is final at the latest event time read.
    """
    _run_stateful("intel", until_idle, start, bootstrap, prefix, pipeline_args)


@run_app.command("all")
def run_all_cmd(
    until_idle: Annotated[
        float | None,
        typer.Option(
            "--until-idle",
            help="Bounded: ingest until idle for SECONDS, then enforce, intel and comply, each "
            "reading to the end of what the stages before it wrote.",
        ),
    ] = None,
    start: StartOption = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    pipeline_args: PipelineArgs = None,
) -> None:
    """Every stage, with the same Beam options. Bounded runs go one after the other;
    streaming runs side by side."""
    servers = _ready_for_ingest(bootstrap, prefix, None)
    for stage in STATEFUL:
        _checks(stage)[0](servers, prefix)
    begin = _start_for(start, pipeline_args)
    args = pipeline_args
    if until_idle is not None:
        # Enforce starts once ingest has ended and flushed, intel once enforce has (it
        # reads only ingest's output, but shares the machine), comply once intel has (it
        # tracks the tasks of both): everything each reads is already on the broker, so it
        # reads to the end and stops there (an idle window of 0) instead of waiting out
        # another window.
        # every stage runs and shows its account, even after one did not balance
        with metrics_for_run(STAGES, RunScope(servers, prefix)):
            balanced = [
                _show_ingest(run_ingest_job(servers, prefix, None, until_idle, args)),
                *(
                    _checks(stage)[1](
                        run_stateful_job(stage, servers, prefix, _CAUGHT_UP, args, start=begin)
                    )
                    for stage in STATEFUL
                ),
            ]
        if not all(balanced):
            raise typer.Exit(1)
        return
    # one spinner only: rich allows a single live display at a time
    console.print("ingest, enforce, comply and intel streaming side by side (Ctrl-C to stop)…")
    _run_stages(
        [
            ("ingest", lambda: run_ingest_job(servers, prefix, None, None, args, True)),
            *(
                (stage, functools.partial(_streaming, stage, servers, prefix, args, begin))
                for stage in STATEFUL
            ),
        ],
        RunScope(servers, prefix),
    )


# An idle window of 0: end each partition as soon as it has been read to its end.
_CAUGHT_UP = 0.0


def _start_for(start: str | None, pipeline_args: list[str] | None) -> Start:
    """The ``--start`` asked for, else the runner's default; a warning when committed
    offsets are asked of a runner that does not keep state across restarts."""
    from omm.beam_runtime import default_start, keeps_state, runner_name

    if start is None:
        return default_start(pipeline_args)
    if start not in ("earliest", "committed"):
        raise typer.BadParameter(f"{start!r}: use earliest or committed", param_hint="--start")
    if start == "committed" and not keeps_state(pipeline_args):
        err.print(
            f"[yellow]{runner_name(pipeline_args)} keeps no state across restarts: with "
            "--start committed, enforce and comply begin with empty state, so listings and "
            "tasks read by earlier runs are not matched or tracked.[/yellow]",
            soft_wrap=True,
        )
    return "committed" if start == "committed" else "earliest"


def _ready_for_ingest(bootstrap: str | None, prefix: str, platforms: str | None) -> str:
    """The bootstrap, once it answered and has every topic ingest reads and writes."""
    from connectors.topics import TopicNames
    from omm.config import load_platforms

    cluster = _reach(bootstrap)
    ids = platforms.split(",") if platforms else load_platforms().ids
    names = TopicNames(prefix)
    cluster.require([s.name for s in names.sources(ids)] + names.ingest_outputs(ids), prefix)
    return cluster.bootstrap


def _ready_for_enforce(bootstrap: str | None, prefix: str) -> str:
    """The bootstrap, once it answered and has every topic enforce reads and writes."""
    from connectors.topics import TopicNames
    from omm.config import load_platforms

    cluster = _reach(bootstrap)
    names = TopicNames(prefix)
    wanted = [names.valid("listing"), names.valid("inspection"), names.review, names.decisions]
    cluster.require(wanted + [names.tasks(p) for p in load_platforms().ids], prefix)
    return cluster.bootstrap


def _ready_for_comply(bootstrap: str | None, prefix: str) -> str:
    """The bootstrap, once it answered and has every topic comply reads and writes."""
    from connectors.topics import TopicNames
    from omm.config import load_platforms

    cluster = _reach(bootstrap)
    names = TopicNames(prefix)
    wanted = [names.valid("listing"), names.valid("takedown"), names.decisions]
    wanted += [names.valid("complaint"), names.compliance_status, names.scorecards]
    ids = load_platforms().ids
    cluster.require(
        wanted + [names.tasks(p) for p in ids] + [names.compliance(p) for p in ids], prefix
    )
    return cluster.bootstrap


def _ready_for_intel(bootstrap: str | None, prefix: str) -> str:
    """The bootstrap, once it answered and has every topic intel reads and writes."""
    from connectors.topics import TopicNames
    from omm.config import load_platforms

    cluster = _reach(bootstrap)
    names = TopicNames(prefix)
    wanted = [names.valid(e) for e in ("complaint", "penalty", "inspection", "listing")]
    wanted += [names.sampling, names.leads, names.credit_events]
    cluster.require(wanted + [names.tasks(p) for p in load_platforms().ids], prefix)
    return cluster.bootstrap


def run_ingest_job(
    bootstrap: str,
    prefix: str,
    platforms: str | None,
    until_idle: float | None,
    pipeline_args: list[str] | None,
    quiet: bool = False,
) -> list[Any]:
    from connectors.topics import TopicNames
    from omm.jobs import ingest_job
    from pipelines.ingest import run_ingest

    job = ingest_job(
        bootstrap,
        TopicNames(prefix),
        platforms=platforms.split(",") if platforms else None,
        idle_timeout_s=until_idle,
    )
    return _run_pipeline("ingest", lambda a: run_ingest(job, a), until_idle, pipeline_args, quiet)


Stateful = Literal["enforce", "comply", "intel"]
# in the order a bounded `omm run all` runs them: comply tracks what enforce and intel issue
STATEFUL: tuple[Stateful, ...] = ("enforce", "intel", "comply")


def _stateful(stage: Stateful) -> tuple[Callable[..., Any], Callable[[Any, list[str]], Any]]:
    """A stateful stage's job factory and pipeline (imported when run: the CLI starts fast)."""
    if stage == "enforce":
        from omm.jobs import enforce_job
        from pipelines.enforce import run_enforce

        return enforce_job, run_enforce
    if stage == "comply":
        from omm.jobs import comply_job
        from pipelines.comply import run_comply

        return comply_job, run_comply
    from omm.jobs import intel_job
    from pipelines.intel import run_intel

    return intel_job, run_intel


def run_stateful_job(
    stage: Stateful,
    bootstrap: str,
    prefix: str,
    until_idle: float | None,
    pipeline_args: list[str] | None,
    quiet: bool = False,
    start: Start = "earliest",
) -> Any:
    from connectors.topics import TopicNames

    make_job, run = _stateful(stage)
    job = make_job(bootstrap, TopicNames(prefix), idle_timeout_s=until_idle, start=start)
    return _run_pipeline(stage, lambda a: run(job, a), until_idle, pipeline_args, quiet)


def _run_stateful(
    stage: Stateful,
    until_idle: float | None,
    start: str | None,
    bootstrap: str | None,
    prefix: str,
    pipeline_args: list[str] | None,
) -> None:
    """`omm run enforce|comply|intel`: the topics checked, the stage run, its account shown."""
    ready, show = _checks(stage)
    servers = ready(bootstrap, prefix)
    begin = _start_for(start, pipeline_args)
    _run_one(
        stage,
        lambda: run_stateful_job(stage, servers, prefix, until_idle, pipeline_args, start=begin),
        show,
        RunScope(servers, prefix),
    )


def _streaming(
    stage: Stateful, bootstrap: str, prefix: str, args: list[str] | None, start: Start
) -> Any:
    """A stateful stage of `omm run all` streaming, its progress left to the others' display."""
    return run_stateful_job(stage, bootstrap, prefix, None, args, True, start)


def _checks(stage: Stateful) -> tuple[Callable[[str | None, str], str], Callable[[Any], bool]]:
    """What a stateful stage checks before it runs (its topics) and after (its account)."""
    return {
        "enforce": (_ready_for_enforce, _show_enforce),
        "comply": (_ready_for_comply, _show_comply),
        "intel": (_ready_for_intel, _show_intel),
    }[stage]


def _show_intel(account: Any) -> bool:
    print_intel_account(account, console)
    return bool(account.balanced)


def _show_comply(account: Any) -> bool:
    print_comply_account(account, console)
    return bool(account.balanced)


def _show_ingest(accounts: list[Any]) -> bool:
    print_accounts(accounts, console)
    return all(a.balanced for a in accounts)


def _show_enforce(account: Any) -> bool:
    print_enforce_account(account, console)
    return bool(account.balanced)


T = TypeVar("T")


def _run_pipeline(
    stage: str,
    run: Callable[[list[str]], T],
    until_idle: float | None,
    pipeline_args: list[str] | None,
    quiet: bool,
) -> T:
    """Run one pipeline with the runner's defaults: streaming unless ``until_idle``."""
    from omm.beam_runtime import pipeline_args_with_defaults, runner_name

    args = pipeline_args_with_defaults(pipeline_args, streaming=until_idle is None)
    if quiet:
        return run(args)
    console.print(f"[dim]{stage} on {runner_name(args)}[/dim]")
    with console.status(
        f"{stage} running…" + (f" (until idle {until_idle}s)" if until_idle else "")
    ):
        return run(args)


def _run_one(stage: str, run: Callable[[], T], show: Callable[[T], bool], scope: RunScope) -> None:
    """One stage as a command: run it, show its account, exit 1 if that does not balance."""
    [outcome] = _run_stages([(stage, run)], scope)
    if outcome is None:  # stopped by the operator before the pipeline returned
        return
    if not show(outcome):
        raise typer.Exit(1)


def _run_stages(stages: list[tuple[str, Any]], scope: RunScope) -> list[Any]:
    """Run pipelines until done or stopped (Ctrl-C stops them cleanly: omm.runner)."""
    from connectors.delivery import BrokerUnavailable
    from omm.errors import UNAVAILABLE
    from omm.runner import Stage, StageFailed, run_stages

    try:
        # /metrics while they run, when OMM_METRICS_PORT is set
        with metrics_for_run([n for n, _ in stages], scope):
            return run_stages([Stage(n, f) for n, f in stages], get_settings().stop_grace_s)
    except StageFailed as exc:
        if not isinstance(exc.error, BrokerUnavailable):
            raise exc.error from None
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        # the cluster, not the records: the same code as any unreachable cluster
        raise typer.Exit(UNAVAILABLE) from exc
    except TimeoutError as exc:  # a stage did not stop within OMM_STOP_GRACE_S
        err.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(UNAVAILABLE) from exc


# ---------------------------------------------------------------- report

report_app = typer.Typer(help="Reports for regulators and operators.", no_args_is_help=True)
app.add_typer(report_app, name="report")


def _latest_values(cluster: Cluster, topic: str) -> dict[str, dict[str, Any]]:
    """The latest decoded value per key of a compacted topic, as compaction will leave it:
    a later record replaces an earlier one, a tombstone (null value) removes its key."""
    from connectors.tail import read_to_end

    latest: dict[str, dict[str, Any]] = {}
    undecoded = 0
    # to the end offsets seen at the start, not until a quiet spell: a report reading
    # a dozen topics waits for none of them
    with console.status(f"reading {topic}…"):
        for line in read_to_end(cluster.bootstrap, topic, security=_security()):
            key = line.get("key") or f"{line['partition']}/{line['offset']}"
            if "decode_error" in line:
                undecoded += 1
            elif line.get("value") is None:
                latest.pop(key, None)
            else:
                latest.pop(key, None)  # re-inserted: the dict stays in the order of last writes
                latest[key] = line["value"]
    if undecoded:
        err.print(
            f"[yellow]{undecoded} record(s) on {escape(topic)} did not decode (`omm tail` "
            "shows them); the report leaves them out[/yellow]",
            soft_wrap=True,
        )
    return latest


FeedsReport = Annotated[
    str,
    typer.Option("--feeds-report", help="Link to the feed-health report, relative to the page."),
]


@report_app.command("compliance")
def report_compliance(
    out: Annotated[Path, typer.Option("--out", help="Directory for the report (index.html)")],
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
    feeds_report: FeedsReport = "../feeds/index.html",
) -> None:
    """One self-contained HTML page on each platform's compliance: scorecards, KPI charts,
    overdue, re-listed and contradicted tasks with their evidence; then what intel found:
    targeted sampling, case leads, the serious-violation list with each enterprise's live
    listings. Loads nothing from the network."""
    from datetime import UTC

    from connectors.topics import TopicNames
    from omm.config import load_enforcement, load_platforms, resolved_topics
    from omm.reports.compliance import render_compliance, total_scorecards
    from omm.reports.intel import (
        IntelSources,
        latest_leads,
        latest_recommendations,
        listed_enterprises,
    )
    from omm.reports.page import percent, write_page

    topics = TopicNames(prefix)
    sources = (topics.compliance_status, topics.scorecards)
    # intel's topics by their contracts in the catalog (config/topics.yaml): the names in
    # pipelines.intel would import Beam, whose import-time warnings litter this command
    by_entity = {t.entity: prefix + t.name for t in resolved_topics(only_platforms=[])}
    intel = IntelSources(
        sampling=by_entity["sampling_recommendation"],
        leads=by_entity["case_lead"],
        credit=by_entity["credit_event"],
        tasks=topics.tasks("<platform>"),
    )
    cluster = _reach(bootstrap)
    cluster.require(sources, prefix)
    statuses = _latest_values(cluster, topics.compliance_status)
    scorecards = _latest_values(cluster, topics.scorecards)
    # intel's topics and a platform's task topic may not exist (created before intel, a
    # platform registered later): their sections then say what to run, as when empty
    sampling, leads, credit = (
        _latest_values(cluster, t) if t in cluster.topics else {}
        for t in (intel.sampling, intel.leads, intel.credit)
    )
    flags: list[dict[str, Any]] = []
    if credit:  # FLAG tasks exist only for listed enterprises: no event, nothing to read
        for platform in load_platforms().ids:
            if topics.tasks(platform) in cluster.topics:
                tasks = _latest_values(cluster, topics.tasks(platform)).values()
                flags += [t for t in tasks if t.get("kind") == "FLAG"]
    if not (statuses or scorecards or sampling or leads or credit):
        err.print(
            f"[yellow]no compliance records on {escape(sources[0])} or {escape(sources[1])} "
            "and no intel records yet: run comply first (omm run comply), and intel "
            "(omm run intel)[/yellow]",
            soft_wrap=True,
        )
        raise typer.Exit(1)
    text = render_compliance(
        statuses.values(),
        scorecards.values(),
        generated_at=datetime.now(UTC),
        feeds_report=feeds_report,
        timezone=load_enforcement().calendar.timezone,
        sources=sources,
        sampling_records=sampling.values(),
        lead_records=leads.values(),
        credit_records=credit.values(),
        task_records=flags,
        intel_sources=intel,
    )
    index = write_page(out, text)
    kpis = table(
        "platform", "issued", "on time", "late", "overdue", "KPI1", "KPI2",
        counts=("issued", "on time", "late", "overdue", "KPI1", "KPI2"),
        title="compliance (TOTAL scorecards)",
    )  # fmt: skip
    for s in total_scorecards(scorecards.values()):
        kpis.add_row(
            s.platform,
            *(str(n) for n in (s.tasks_issued, s.completed_on_time, s.completed_late)),
            f"[red]{s.overdue}[/red]" if s.overdue else "0",
            percent(s.kpi1_removed_within_deadline),
            percent(s.kpi2_relistings_removed),
        )
    console.print(kpis)
    listed = listed_enterprises(credit.values(), flags)
    console.print(
        f"intel: {len(latest_recommendations(sampling.values()))} sampling recommendation(s), "
        f"{len(latest_leads(leads.values()))} case lead(s), {len(listed)} enterprise(s) on "
        f"the serious-violation list with {sum(len(x.listings) for x in listed)} live "
        "listing(s)",
        soft_wrap=True,
    )
    console.print(f"report: {index}")


@report_app.command("feeds")
def report_feeds(
    out: Annotated[Path, typer.Option("--out", help="Directory for the report (index.html)")],
    bootstrap: Bootstrap = None,
    prefix: Prefix = "",
) -> None:
    """The latest health of each platform/feed on one self-contained page, failing feeds
    first, with Great Expectations Data Docs (offline) in DIR/gx/."""
    from datetime import UTC

    from connectors.topics import TopicNames
    from omm.reports.feeds import GX_FOLDER, feed_order, write_feeds_report
    from pipelines.feed_health.results import FeedHealth

    topic = TopicNames(prefix).feed_health
    cluster = _reach(bootstrap)
    cluster.require([topic], prefix)
    latest: dict[str, FeedHealth] = {}
    for value in _latest_values(cluster, topic).values():
        health = FeedHealth.from_record(value)
        latest[health.key] = health
    if not latest:
        err.print(f"[yellow]no feed-health records on {topic} yet: run ingest first[/yellow]")
        raise typer.Exit(1)
    with console.status("writing the report and Data Docs…"):
        index = write_feeds_report(
            list(latest.values()), out, generated_at=datetime.now(UTC), source=topic
        )
    health_table = table(
        "platform", "feed", "rows", "healthy", "failing expectations",
        counts=("rows",), title="feed health",
    )  # fmt: skip
    for h in feed_order(latest.values()):
        failing = ", ".join(o.expectation for o in h.failing()) or "-"
        health_table.add_row(
            h.platform, h.feed, str(h.rows), "yes" if h.success else "[red]no[/red]", failing
        )
    console.print(health_table)
    console.print(f"report: {index}")
    console.print(f"Data Docs: {index.parent / GX_FOLDER / 'index.html'}")


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

    cluster = _reach(bootstrap)
    cluster.require([topic])
    for line in tail_records(
        cluster.bootstrap, topic, from_beginning, max_records, timeout, _security()
    ):
        sys.stdout.write(json.dumps(line, ensure_ascii=False, default=_json_default) + "\n")
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
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep the demo's topics afterwards, to inspect them.")
    ] = False,
) -> None:
    """The whole story on the embedded broker with generated data, with progress shown.

    The demo's topics (a private namespace) are deleted at the end unless --keep.
    """
    from omm.demo import run_demo

    started = time.monotonic()
    run_demo(console, seed=seed, keep=keep)
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
