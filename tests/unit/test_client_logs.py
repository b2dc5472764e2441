"""The filter for kafka-python's slow event-loop warnings drops only those lines."""

from __future__ import annotations

import logging

import pytest

from omm.client_logs import SELECTOR_LOGGER, quiet_slow_task_warnings


def test_only_the_slow_task_warnings_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    quiet_slow_task_warnings()
    quiet_slow_task_warnings()  # idempotent: one filter, not two
    logger = logging.getLogger(SELECTOR_LOGGER)
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger=SELECTOR_LOGGER):
        # the message as kafka/net/selector.py formats it before logging
        logger.warning(
            "Task <kafka.net.selector.Task object at 0x7f> ran for 0.104s (>0.100s threshold). "
            "It is blocking the event loop -- likely a tight sync loop inside a coroutine. "
            "Other pollers will time out."
        )
        logger.warning("Unable to connect to node 1")
    assert [r.getMessage() for r in caplog.records] == ["Unable to connect to node 1"]
