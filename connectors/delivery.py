"""How omm's Kafka clients behave when the broker is busy, moving leaders, or gone a while.

Kafka's own contract is the model: a send is retried until a delivery timeout
passes (not a fixed count of quick retries, which a broker still electing a
leader outlasts in half a second), and a streaming job keeps going through a
broker restart, saying so in its log, and gives up with one clear line only
after an outage budget. kafka-python 3.0.12 has no ``retry.backoff.max.ms``:
its retry backoff is fixed, its reconnect backoff grows up to
``reconnect_backoff_max_ms``, and omm's own waits (:func:`ride_out`) grow
exponentially up to ``max_backoff_s``.

The policy is a plain value captured when a pipeline is built, so it travels
with the DoFns to whatever worker runs them. The operator's settings reach it
through :func:`use_policy` (omm registers its settings there); without that,
the defaults below apply.

Importing this module imports no Kafka client: ``omm.settings`` (which the
pure modules read) builds the policy from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger("omm.delivery")


@dataclass(frozen=True)
class DeliveryPolicy:
    """Timing of retries, outages and commits; see ``omm.settings`` for each field's meaning."""

    delivery_timeout_s: float = 120.0
    retry_backoff_ms: int = 200
    reconnect_backoff_max_ms: int = 2000
    request_timeout_ms: int = 30_000
    send_block_s: float = 10.0
    outage_budget_s: float = 300.0
    outage_log_after_s: float = 10.0
    probe_timeout_ms: int = 5000
    max_backoff_s: float = 5.0
    leader_wait_s: float = 120.0
    commit_every_records: int = 5000
    commit_every_s: float = 2.0

    def producer_config(self, streaming: bool = False) -> dict[str, Any]:
        """kafka-python producer settings for this policy.

        A streaming sink holds its records for the whole outage budget (the
        producer keeps retrying them in order), so a broker restart shorter
        than the budget loses and reorders nothing.
        """
        timeout_s = max(self.delivery_timeout_s, self.outage_budget_s if streaming else 0.0)
        return {
            "delivery_timeout_ms": int(timeout_s * 1000),
            "retry_backoff_ms": self.retry_backoff_ms,
            "reconnect_backoff_max_ms": self.reconnect_backoff_max_ms,
            "request_timeout_ms": self.request_timeout_ms,
            **({"max_block_ms": int(self.send_block_s * 1000)} if streaming else {}),
        }

    def client_config(self) -> dict[str, Any]:
        """Settings shared by consumers and admin clients: come back quickly after an outage."""
        return {"reconnect_backoff_max_ms": self.reconnect_backoff_max_ms}


_provider: Callable[[], DeliveryPolicy] = DeliveryPolicy
_provider_lock = threading.Lock()


def use_policy(provider: Callable[[], DeliveryPolicy]) -> None:
    """Make ``provider`` the source of the policy (called lazily, on each :func:`policy`)."""
    global _provider
    with _provider_lock:
        _provider = provider


def policy() -> DeliveryPolicy:
    with _provider_lock:
        provider = _provider
    return provider()


class BrokerUnavailable(RuntimeError):
    """Kafka stayed unreachable for the whole outage budget: the job gives up.

    The message is the one line an operator reads; single-argument so Beam
    can re-raise it with the failing stage's name appended.
    """


# A stop asked for by the operator (Ctrl-C): readers end their partitions'
# restrictions, the runner finishes the bundles in flight, sinks flush and
# commit, and the pipeline returns. Process-wide because the request comes
# from a signal handler, not from any one pipeline.
_STOP = threading.Event()


def request_stop() -> None:
    _STOP.set()


def clear_stop() -> None:
    _STOP.clear()


def stop_requested() -> bool:
    return _STOP.is_set()


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the broker is (for now) unreachable or not ready."""
    from kafka.errors import KafkaError

    return isinstance(exc, KafkaError) and bool(exc.retriable)


class OutageClock:
    """Tracks one client's outage: logs when it starts and ends, and when the budget is spent."""

    def __init__(
        self, what: str, budget_s: float, log_after_s: float, since: float | None = None
    ) -> None:
        self._what = what
        self._budget_s = budget_s
        self._log_after_s = log_after_s
        # when the trouble began, if the caller already knows (a wait that has not returned)
        self._since: float | None = since
        self._logged = False

    @property
    def down_for_s(self) -> float:
        return 0.0 if self._since is None else time.monotonic() - self._since

    def failing(self, reason: object) -> None:
        """Record a failed attempt; raise :class:`BrokerUnavailable` once the budget is spent."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        down = now - self._since
        if down >= self._budget_s:
            raise BrokerUnavailable(
                f"Kafka unreachable for {down:.0f}s while {self._what} "
                f"(outage budget {self._budget_s:.0f}s, OMM_OUTAGE_BUDGET_S): giving up; "
                f"nothing is lost, a rerun resumes from the last committed offsets. "
                f"Last error: {reason}"
            )
        if not self._logged and down >= self._log_after_s:
            self._logged = True
            log.warning(
                "Kafka not answering for %.0fs while %s (%s); retrying for up to %.0fs",
                down,
                self._what,
                reason,
                self._budget_s,
            )

    def ok(self) -> None:
        """Record a success: log the recovery if the outage was announced."""
        if self._since is not None and self._logged:
            log.warning("Kafka answering again after %.0fs while %s", self.down_for_s, self._what)
        self._since = None
        self._logged = False


T = TypeVar("T")


def ride_out(call: Callable[[], T], what: str, delivery: DeliveryPolicy | None = None) -> T:
    """Call until it succeeds, retrying outage errors with growing backoff within the budget."""
    from kafka.errors import KafkaError

    p = delivery or policy()
    clock = OutageClock(what, p.outage_budget_s, p.outage_log_after_s)
    delay = p.retry_backoff_ms / 1000
    while True:
        try:
            result = call()
        except KafkaError as exc:
            if not is_outage(exc):
                raise
            clock.failing(exc)
            time.sleep(delay)
            delay = min(delay * 2, p.max_backoff_s)
            continue
        clock.ok()
        return result


def connect(factory: Callable[[], T], what: str, delivery: DeliveryPolicy | None = None) -> T:
    """Make a client, riding out a broker that is down or restarting (within the budget).

    A streaming stage makes clients again when the runner sets a DoFn up anew, and that
    can happen in the middle of an outage: a client that fails to bootstrap must not
    end the pipeline then, any more than a failed send does (kafka-python marks its
    bootstrap timeout retriable, so the outage rule covers it).
    """
    return ride_out(factory, what, delivery)
