"""The one-line explanations of errors a user can fix (omm.errors), without Kafka or Beam."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka.errors import KafkaTimeoutError

from connectors.probe import BrokerUnreachable, MissingTopics
from connectors.push import FileNotUtf8
from omm.errors import INTERNAL, UNAVAILABLE, USAGE, UserError, explain


def raised(exc: BaseException, wrapped_in: type[Exception] | None = None) -> BaseException:
    """``exc`` as raised (with a traceback), optionally re-raised from a wrapper."""
    try:
        try:
            raise exc
        except BaseException as inner:
            if wrapped_in is None:
                raise
            raise wrapped_in("while running the pipeline") from inner
    except BaseException as outer:
        return outer
    raise AssertionError("unreachable")


def test_an_unreachable_broker_names_the_bootstrap_and_how_to_start_one() -> None:
    exc = BrokerUnreachable("127.0.0.1:1", 5.0, "KafkaTimeoutError: Unable to bootstrap")

    found = explain(exc)

    assert found is not None and found.exit_code == UNAVAILABLE
    assert "127.0.0.1:1 within 5s" in found.message
    assert "omm broker start" in found.message and "--bootstrap" in found.message


def test_an_error_is_found_behind_the_wrapper_a_runner_puts_around_it() -> None:
    wrapped = raised(MissingTopics(["p.omm.dlq", "p.omm.review.matches"], "p."), RuntimeError)

    found = explain(wrapped)

    assert found is not None and found.exit_code == USAGE
    assert "'p.omm.dlq' (and 1 more) does not exist" in found.message
    assert "omm topics create --prefix p." in found.message


def test_a_broker_that_stops_answering_mid_command_is_unavailable() -> None:
    found = explain(raised(KafkaTimeoutError("Failed to update metadata after 60.0 secs")))

    assert found is not None and found.exit_code == UNAVAILABLE
    assert "omm broker status" in found.message


def test_file_problems_name_the_file() -> None:
    gbk = explain(FileNotUtf8(Path("l.csv"), 2, 0xB5))
    directory = explain(IsADirectoryError(21, "Is a directory", "/tmp/feeds"))
    missing = explain(FileNotFoundError(2, "No such file", "absent.jsonl"))

    assert gbk is not None and "l.csv is not UTF-8" in gbk.message and "line 2" in gbk.message
    assert directory is not None and "/tmp/feeds is a directory" in directory.message
    assert missing is not None and "absent.jsonl" in missing.message
    assert {gbk.exit_code, directory.exit_code, missing.exit_code} == {USAGE}


def test_a_message_is_one_line_whatever_the_exception_text() -> None:
    found = explain(UserError("first line\n   second line\tthird", exit_code=UNAVAILABLE))

    assert found is not None
    assert found.message == "first line second line third"
    assert found.exit_code == UNAVAILABLE


@pytest.mark.parametrize("bug", [KeyError("listing_id"), IndexError("x"), TypeError("y")])
def test_a_bug_is_not_explained_away(bug: Exception) -> None:
    assert explain(raised(bug)) is None
    assert INTERNAL == 70  # what the command line exits with for these


@pytest.mark.parametrize(
    ("error", "exit_code", "words"),
    [
        ("auth", USAGE, "OMM_KAFKA_SASL_USERNAME"),
        ("config", USAGE, "security settings"),
        ("topic_acl", USAGE, "no ACL"),
        ("group_acl", USAGE, "no ACL"),
        ("outage", UNAVAILABLE, "outage budget"),
    ],
)
def test_security_refusals_and_a_spent_outage_budget_are_one_line_not_a_bug(
    error: str, exit_code: int, words: str
) -> None:
    # Regression (review): these fell through to "unexpected error ... (a bug)", exit 70.
    from kafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

    from connectors.delivery import BrokerUnavailable
    from connectors.security import AuthenticationFailed, SecurityConfigError

    exc = {
        "auth": AuthenticationFailed("the broker refused the login of user 'tmall'"),
        "config": SecurityConfigError("SASL_SSL needs a CA file"),
        "topic_acl": TopicAuthorizationFailedError({"omm.tasks.jd"}),
        "group_acl": GroupAuthorizationFailedError("jd.tail"),
        "outage": BrokerUnavailable(
            "Kafka unreachable for 300s while writing (outage budget 300s, "
            "OMM_OUTAGE_BUDGET_S): giving up"
        ),
    }[error]

    found = explain(raised(exc, RuntimeError))

    assert found is not None and found.exit_code == exit_code != INTERNAL
    assert words in found.message and "\n" not in found.message
