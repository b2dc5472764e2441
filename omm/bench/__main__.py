"""`make bench`: omm's throughput beside the raw limit, measured in the same run.

The raw limit is what plain kafka-python does with the same records and no
Beam: consume + fastavro decode + encode + produce. The ingest figure is the
real pipeline (FnApiRunner) on the same topic. Ingest is timed from the first
record read, and from its process's start, to the last output's broker append
time, so Beam's start-up cost is shown and the idle wait that ends a bounded run
is not counted."""

from __future__ import annotations

import argparse

from rich.console import Console

from connectors.producers import CLIENTS
from omm.bench.comply import bench_comply
from omm.bench.enforce import bench_enforce, growth_table
from omm.bench.ingest import bench_ingest
from omm.bench.intel import bench_intel
from omm.bench.limits import start_broker
from omm.bench.runners import load_average, runner
from omm.client_logs import quiet_slow_task_warnings


def _sizes(text: str) -> list[int]:
    return [int(n.replace("_", "")) for n in text.split(",") if n.strip()]


def _runners(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ("fnapi", "prism")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown runner {unknown[0]!r}: fnapi or prism")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m omm.bench", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000, help="listing events for ingest")
    parser.add_argument(
        "--live-listings",
        "--listings",
        type=_sizes,
        default=[100_000, 300_000],
        help="live listings in enforce state, comma-separated (e.g. 100000,300000,1000000): "
        "one enforce run each, printed side by side",
    )
    parser.add_argument(
        "--runner",
        type=_runners,
        default=["fnapi"],
        help="Beam runners for enforce, comply and intel, comma-separated: fnapi, prism",
    )
    parser.add_argument(
        "--prism-location", default=None, help="Prism binary (default: $OMM_PRISM, then the cache)"
    )
    parser.add_argument(
        "--records-per-poll",
        type=int,
        default=None,
        help="enforce's reader: records per poll (default: the job's)",
    )
    parser.add_argument(
        "--rebuild",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="time enforce rebuilding its state from the earliest offsets, as after a restart",
    )
    parser.add_argument("--results", type=int, default=50, help="FAIL results timed per run")
    parser.add_argument(
        "--open-tasks", type=int, default=100_000, help="open tasks in comply state"
    )
    parser.add_argument(
        "--deciding", type=int, default=30, help="deciding events of each kind timed by comply"
    )
    parser.add_argument(
        "--clients",
        nargs="+",
        choices=list(CLIENTS),
        default=list(CLIENTS),
        help="Kafka client(s) ingest writes with, each measured in turn (OMM_KAFKA_CLIENT)",
    )
    parser.add_argument(
        "--complaints",
        type=int,
        default=100_000,
        help="complaints for intel (with listings, penalties and inspections beside them)",
    )
    parser.add_argument("--only", choices=["ingest", "enforce", "comply", "intel"], default=None)
    args = parser.parse_args()
    quiet_slow_task_warnings()
    # wide enough for the side-by-side columns and the growth table when the output is a
    # file (a long run's log), not a terminal
    console = Console(width=max(Console().width, 180))
    bootstrap = start_broker(console)
    if args.only in (None, "ingest"):
        bench_ingest(bootstrap, args.records, console, args.clients)
    runners = [runner(name, args.prism_location) for name in args.runner]
    if args.only in (None, "enforce"):
        figures = [
            bench_enforce(
                bootstrap,
                n,
                args.results,
                console,
                r,
                rebuild=args.rebuild,
                records_per_poll=args.records_per_poll,
            )
            for r in runners
            for n in args.live_listings
        ]
        console.print(growth_table(figures))
        console.print(f"load average: {load_average()}")
    if args.only in (None, "comply"):
        for r in runners:
            bench_comply(bootstrap, args.open_tasks, args.deciding, console, r)
    if args.only in (None, "intel"):
        for r in runners:
            bench_intel(bootstrap, args.complaints, console, r)


if __name__ == "__main__":
    main()
