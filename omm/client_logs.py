"""Kafka client log lines an operator cannot act on, filtered where omm sets up its output.

kafka-python 3.0 times every step of its network event loop and warns when one
takes longer than 0.1 s ("... It is blocking the event loop"). On a loaded
machine, or while a Beam bundle holds the interpreter, that is most steps: the
bench and the demo printed hundreds of them, burying their own output. Only
those lines are dropped; every other kafka-python warning still shows.
"""

from __future__ import annotations

import logging

# the logger kafka/net/selector.py warns on, and words of its (pre-formatted) message
SELECTOR_LOGGER = "kafka.net.selector"
SLOW_TASK_WORDS = "blocking the event loop"


class _SlowTaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return SLOW_TASK_WORDS not in str(record.msg)


_FILTER = _SlowTaskFilter()


def quiet_slow_task_warnings() -> None:
    """Drop kafka-python's slow event-loop step warnings (idempotent)."""
    logger = logging.getLogger(SELECTOR_LOGGER)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
