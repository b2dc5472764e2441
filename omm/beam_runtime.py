"""Beam runner defaults for omm, applied in one place.

The local default is the FnApiRunner, named explicitly: the DirectRunner first
tries to download a Prism binary. Its embedded worker's state cache is turned
off because measuring object sizes for it made a keyed join 8-20x slower
(docs/runner-notes.md); on other runners the setting is ignored.

Prism, Beam's portable runner, is the other runner omm is tested on (the Job API
of the Flink and Spark job servers). Nothing downloads it: ``make prism`` builds
it into the cache the Kafka jars use, and :func:`prism_binary` is the one place
that knows where, so ``omm run all -- --runner=PrismRunner`` needs no more options.
"""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any, Literal

from omm.errors import UserError

FNAPI = "fnapirunner"
PRISM = "prismrunner"
# Where the SDK workers run when the command line does not say: in this process, so
# a bounded read's process-wide idle clocks and shared sinks (connectors/beam_io.py,
# connectors/sink.py) and an operator's stop (connectors.delivery) reach them.
PRISM_DEFAULT_ENVIRONMENT = "LOOPBACK"


def pipeline_args_with_defaults(args: list[str] | None, streaming: bool) -> list[str]:
    args = list(args or [])
    if option(args, "runner") is None:
        args.append("--runner=FnApiRunner")
    if streaming and "--streaming" not in args:
        args.append("--streaming")
    runner = (option(args, "runner") or "").lower()
    if runner == FNAPI:
        disable_fnapi_state_cache()
    elif runner == PRISM:
        if option(args, "prism_location") is None:
            args.append(f"--prism_location={prism_binary()}")
        if option(args, "environment_type") is None:
            args.append(f"--environment_type={PRISM_DEFAULT_ENVIRONMENT}")
        share_prism_job_server(args)
    return args


def option(args: list[str], name: str) -> str | None:
    """The value of ``--name`` in Beam's command line (``--name=V`` or ``--name V``)."""
    flag = f"--{name}"
    for i, arg in enumerate(args):
        if arg.startswith(flag + "="):
            return arg[len(flag) + 1 :]
        if arg == flag:
            return args[i + 1] if i + 1 < len(args) else ""
    return None


def disable_fnapi_state_cache() -> None:
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.STATE_CACHE_SIZE_MB = 0


def beam_version() -> str:
    """The installed Beam's version (requirements.lock pins it; ``make prism`` reads it there)."""
    from apache_beam.version import __version__

    return str(__version__)


def default_prism_path() -> Path:
    """Where ``make prism`` puts the binary: beside the Kafka jars, one directory per Beam
    version (``${XDG_CACHE_HOME:-~/.cache}/omm/prism-<version>/prism``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "omm" / f"prism-{beam_version()}" / "prism"


def prism_binary() -> Path:
    """The Prism binary to run: ``OMM_PRISM`` when set, else the one ``make prism`` built."""
    override = os.environ.get("OMM_PRISM", "").strip()
    path = Path(override) if override else default_prism_path()
    if not (path.is_file() and os.access(path, os.X_OK)):
        source = "OMM_PRISM names" if override else "expected"
        raise UserError(
            f"no Prism runner binary at {path} ({source}): build it with `make prism` "
            "(Go, once, several minutes), or set OMM_PRISM to a prism binary"
        )
    return path


# The Prism job server this process shares (see share_prism_job_server); held here so
# Beam's shared handle keeps returning it.
_prism_job_server: Any = None
_prism_lock = threading.Lock()


def share_prism_job_server(args: list[str]) -> None:
    """Make the Prism job server every PrismRunner run of this process uses one that can be
    started from any thread.

    Beam's wrapper installs a SIGINT handler when it starts the job server, and only the
    main thread may do that: ``omm run`` runs its stages in threads (omm/runner.py, which
    handles Ctrl-C itself), so the first PrismRunner run failed with "signal only works in
    main thread". The PrismRunner takes its job server from a per-process shared handle;
    the one put there first here starts Prism without touching signals, once per process,
    and stops it when the process exits. The first run's options (``--prism_location``,
    ``--job_port``) decide it for the whole process.
    """
    global _prism_job_server
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability import job_server
    from apache_beam.runners.portability.prism_runner import PrismJobServer, PrismRunner

    class _AnyThreadJobServer(job_server.StopOnExitJobServer):
        def start(self) -> Any:  # the job service's stub
            with self._lock:
                if not self._started:
                    self._endpoint = self._job_server.start()
                    self._started = True
                    atexit.register(self.stop)
            return self._endpoint

    with _prism_lock:
        if _prism_job_server is None:
            _prism_job_server = PrismRunner.shared_handle.acquire(
                lambda: _AnyThreadJobServer(PrismJobServer(PipelineOptions(args)))
            )


# Runners whose state survives a restart (checkpoints, savepoints, Dataflow's
# persisted state): a stateful stage resumes from its committed offsets there.
# Everywhere else (the FnApiRunner, Prism, the DirectRunner) state dies with the
# process, so enforce and comply must re-read their inputs from the earliest
# offsets to rebuild it (the tasks and statuses written again are identical,
# keyed by task id).
DURABLE_STATE_RUNNERS = frozenset({"flinkrunner", "dataflowrunner", "sparkrunner"})

Start = Literal["earliest", "committed"]


def runner_name(args: list[str] | None) -> str:
    """The ``--runner`` given in ``args``, else the default, FnApiRunner."""
    return option(list(args or []), "runner") or "FnApiRunner"


def keeps_state(args: list[str] | None) -> bool:
    """Whether the runner named in ``args`` keeps pipeline state across restarts."""
    return runner_name(args).lower() in DURABLE_STATE_RUNNERS


def default_start(args: list[str] | None) -> Start:
    """Where a stateful stage starts reading by default on the runner in ``args``."""
    return "committed" if keeps_state(args) else "earliest"
