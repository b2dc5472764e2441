"""Beam runner defaults for omm, applied in one place.

The local default is the FnApiRunner, named explicitly: the DirectRunner first
tries to download a Prism binary. Its embedded worker's state cache is turned
off because measuring object sizes for it made a keyed join 8-20x slower
(docs/runner-notes.md); on other runners the setting is ignored.
"""

from __future__ import annotations

from typing import Literal


def pipeline_args_with_defaults(args: list[str] | None, streaming: bool) -> list[str]:
    args = list(args or [])
    if not any(a.startswith("--runner") for a in args):
        args.append("--runner=FnApiRunner")
    if streaming and "--streaming" not in args:
        args.append("--streaming")
    if any(a in ("--runner=FnApiRunner", "--runner=fnapirunner") for a in args):
        disable_fnapi_state_cache()
    return args


def disable_fnapi_state_cache() -> None:
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.STATE_CACHE_SIZE_MB = 0


# Runners whose state survives a restart (checkpoints, savepoints, Dataflow's
# persisted state): a stateful stage resumes from its committed offsets there.
# Everywhere else (the FnApiRunner, Prism, the DirectRunner) state dies with the
# process, so enforce and comply must re-read their inputs from the earliest
# offsets to rebuild it (the tasks and statuses written again are identical,
# keyed by task id).
DURABLE_STATE_RUNNERS = frozenset({"flinkrunner", "dataflowrunner", "sparkrunner"})

Start = Literal["earliest", "committed"]


def runner_name(args: list[str] | None) -> str:
    """The ``--runner`` given in ``args`` (the last one wins, as in Beam), else FnApiRunner."""
    name = "FnApiRunner"
    items = list(args or [])
    for i, arg in enumerate(items):
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
        elif arg == "--runner" and i + 1 < len(items):
            name = items[i + 1]
    return name


def keeps_state(args: list[str] | None) -> bool:
    """Whether the runner named in ``args`` keeps pipeline state across restarts."""
    return runner_name(args).lower() in DURABLE_STATE_RUNNERS


def default_start(args: list[str] | None) -> Start:
    """Where a stateful stage starts reading by default on the runner in ``args``."""
    return "committed" if keeps_state(args) else "earliest"
