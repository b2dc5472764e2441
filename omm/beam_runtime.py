"""Beam runner defaults for omm, applied in one place.

The local default is the FnApiRunner, named explicitly: the DirectRunner first
tries to download a Prism binary. Its embedded worker's state cache is turned
off because measuring object sizes for it made a keyed join 8-20x slower
(docs/runner-notes.md); on other runners the setting is ignored.
"""

from __future__ import annotations


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
