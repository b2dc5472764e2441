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
from omm.bench.enforce import bench_enforce
from omm.bench.ingest import bench_ingest
from omm.bench.limits import start_broker
from omm.client_logs import quiet_slow_task_warnings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m omm.bench", description=__doc__)
    parser.add_argument("--records", type=int, default=200_000, help="listing events for ingest")
    parser.add_argument(
        "--live-listings",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="live listings in enforce state for the latency runs",
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
    parser.add_argument("--only", choices=["ingest", "enforce", "comply"], default=None)
    args = parser.parse_args()
    quiet_slow_task_warnings()
    # wide enough for the side-by-side columns when the output is a file, not a terminal
    console = Console(width=max(Console().width, 160))
    bootstrap = start_broker(console)
    if args.only in (None, "ingest"):
        bench_ingest(bootstrap, args.records, console, args.clients)
    if args.only in (None, "enforce"):
        for n in args.live_listings:
            bench_enforce(bootstrap, n, args.results, console)
    if args.only in (None, "comply"):
        bench_comply(bootstrap, args.open_tasks, args.deciding, console)


if __name__ == "__main__":
    main()
