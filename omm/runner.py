"""Run pipelines until they end, fail, or the operator stops them (Ctrl-C, SIGTERM).

Streaming pipelines never end on their own, and the FnApiRunner has no
``cancel()``. So a stop is a request (:func:`connectors.delivery.request_stop`):
every reader ends its partitions at its next turn, the runner finishes the
bundles in flight, the sinks flush and commit, and ``run()`` returns. Stages
run in threads so ``omm run all`` can run ingest and enforce side by side, and
the main thread stays free to take the signal. A second Ctrl-C quits at once
(nothing more is committed; the next run replays from the last commit).

A stage that gives up on Kafka (:class:`~connectors.delivery.BrokerUnavailable`)
stops the others and surfaces as :class:`StageFailed` with its one-line reason.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from connectors import delivery

log = logging.getLogger("omm.run")

# Exit status of a process ended by a second Ctrl-C (128 + SIGINT), as shells report it.
_INTERRUPTED_EXIT = 130


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[], Any]


class StageFailed(RuntimeError):
    """A stage raised; ``reason`` is the one line to show, ``error`` what it raised."""

    def __init__(self, stage: str, error: BaseException) -> None:
        self.stage = stage
        self.error = error
        super().__init__(f"{stage}: {one_line(error)}")


def one_line(error: BaseException) -> str:
    first = str(error).strip().splitlines()
    return f"{type(error).__name__}: {first[0] if first else ''}"


class _QuietBrokerUnavailable(logging.Filter):
    """Beam logs every failing DoFn's traceback; a give-up already says all in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, delivery.BrokerUnavailable)


@contextmanager
def _delivery_log() -> Iterator[None]:
    """Outage and stop lines to stderr, one line each, whatever logging Beam set up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    quiet = _QuietBrokerUnavailable()
    loggers = [logging.getLogger(name) for name in ("omm.delivery", "omm.run")]
    beam_log = logging.getLogger("apache_beam.runners.common")
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    beam_log.addFilter(quiet)
    # kafka-python logs every refused connection, several a second through an
    # outage; the delivery lines above say what matters, so only its criticals
    # show unless the operator asked for debug output.
    kafka_log = logging.getLogger("kafka")
    kafka_level = kafka_log.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka_log.setLevel(kafka_level)
        beam_log.removeFilter(quiet)
        for logger in loggers:
            logger.removeHandler(handler)
            logger.propagate = True


def run_stages(stages: list[Stage], stop_grace_s: float) -> list[Any]:
    """Run the stages side by side until all return; their results, in order.

    On SIGINT/SIGTERM (first one): ask every stage to stop, and wait up to
    ``stop_grace_s`` for them to flush, commit and return. Raises
    :class:`StageFailed` for the first stage that raised (the others are
    stopped first), and :class:`TimeoutError` if a stop takes longer than the grace.
    """
    delivery.clear_stop()
    results: dict[str, Any] = {}
    errors: list[StageFailed] = []
    stop_asked_at: list[float] = []
    # signals only: a stop asked because a stage failed must not make the operator's
    # first Ctrl-C count as the second (which quits without flushing)
    signals_seen: list[int] = []

    def body(stage: Stage) -> None:
        try:
            results[stage.name] = stage.run()
        except Exception as exc:  # reported by the main thread, which stops the rest
            errors.append(StageFailed(stage.name, exc))
            delivery.request_stop()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if signals_seen:
            log.warning("second interrupt: quitting now; the next run resumes from the last commit")
            os._exit(_INTERRUPTED_EXIT)
        signals_seen.append(signum)
        if not stop_asked_at:
            stop_asked_at.append(time.monotonic())
        log.warning(
            "stopping: finishing the bundles in flight, flushing and committing "
            "(Ctrl-C again to quit at once)"
        )
        delivery.request_stop()

    threads = [
        # daemon: a stage that never returns must not keep the process alive past the grace
        threading.Thread(target=body, args=(stage,), name=stage.name, daemon=True)
        for stage in stages
    ]
    in_main = threading.current_thread() is threading.main_thread()
    previous = {}
    with _delivery_log():
        if in_main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        try:
            for thread in threads:
                thread.start()
            while any(t.is_alive() for t in threads):
                for thread in threads:
                    thread.join(timeout=0.2)
                if errors and not stop_asked_at:
                    stop_asked_at.append(time.monotonic())
                if stop_asked_at and time.monotonic() - stop_asked_at[0] > stop_grace_s:
                    alive = ", ".join(t.name for t in threads if t.is_alive())
                    raise TimeoutError(
                        f"{alive} did not stop within {stop_grace_s:.0f}s "
                        "(OMM_STOP_GRACE_S); quitting: the next run resumes from the last commit"
                    )
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        if stop_asked_at and not errors:
            log.warning("stopped: every stage flushed and committed")
    if errors:
        raise errors[0]
    return [results.get(stage.name) for stage in stages]
