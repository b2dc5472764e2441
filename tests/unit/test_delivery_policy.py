"""The outage rules on their own: what is retried, for how long, and the one line at the end."""

from __future__ import annotations

import pytest
from kafka.errors import KafkaTimeoutError, TopicAuthorizationFailedError

from connectors.delivery import BrokerUnavailable, DeliveryPolicy, ride_out

FAST = DeliveryPolicy(outage_budget_s=0.5, retry_backoff_ms=10, max_backoff_s=0.05)


def test_an_outage_shorter_than_the_budget_is_ridden_out() -> None:
    failures = iter([KafkaTimeoutError("down"), KafkaTimeoutError("down")])

    def call() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "committed"

    assert ride_out(call, "committing", FAST) == "committed"


def test_giving_up_is_one_line_naming_the_budget_and_the_setting() -> None:
    def call() -> None:
        raise KafkaTimeoutError("Failed to update metadata")

    with pytest.raises(BrokerUnavailable) as caught:
        ride_out(call, "committing offsets", FAST)
    message = str(caught.value)
    assert "\n" not in message
    assert "outage budget 0s" in message or "outage budget 1s" in message
    assert "OMM_OUTAGE_BUDGET_S" in message and "committing offsets" in message


def test_errors_that_are_not_an_outage_are_not_retried() -> None:
    calls = []

    def call() -> None:
        calls.append(1)
        raise TopicAuthorizationFailedError("not allowed")

    with pytest.raises(TopicAuthorizationFailedError):
        ride_out(call, "writing", FAST)
    assert len(calls) == 1


def test_a_streaming_producer_holds_records_for_the_whole_outage_budget() -> None:
    policy = DeliveryPolicy(delivery_timeout_s=120, outage_budget_s=300)
    assert policy.producer_config(streaming=True)["delivery_timeout_ms"] == 300_000
    assert policy.producer_config()["delivery_timeout_ms"] == 120_000
    assert "retries" not in policy.producer_config()
