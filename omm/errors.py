"""What an error a user can fix means, in one line, with the fix to try.

The command line shows these instead of a traceback (``omm --debug`` shows the
traceback too). One table, so every command words the same problem the same
way; anything not in it is a bug, reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from connectors.acl import AccessError
from connectors.broker.manager import BrokerError
from connectors.delivery import BrokerUnavailable
from connectors.probe import BadBootstrap, BrokerUnreachable, MissingTopics
from connectors.push import FileNotUtf8
from connectors.security import AuthenticationFailed, SecurityConfigError

# exit codes, beside 0 (done) and 1 (records rejected or an account that does not balance)
USAGE = 2  # the command line or the input file is wrong
UNAVAILABLE = 3  # the cluster is not reachable, not ready, or did not acknowledge
INTERNAL = 70  # a bug: sysexits' EX_SOFTWARE


class UserError(Exception):
    """A problem a command recognised itself; the message already says what to do."""

    def __init__(self, message: str, exit_code: int = USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Explanation:
    message: str
    exit_code: int


_START_BROKER = (
    "start it (`omm broker start`), or point --bootstrap / OMM_KAFKA_BOOTSTRAP at a running cluster"
)


def explain(exc: BaseException) -> Explanation | None:
    """The one-line explanation of ``exc`` or of what caused it; None for a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        found = _explain_one(current)
        if found is not None:
            return Explanation(" ".join(found.message.split()), found.exit_code)
        current = current.__cause__ or current.__context__
    return None


def _explain_one(exc: BaseException) -> Explanation | None:
    if isinstance(exc, UserError):
        return Explanation(str(exc), exc.exit_code)
    if isinstance(exc, BrokerUnreachable):
        return Explanation(f"{exc}: {_START_BROKER}", UNAVAILABLE)
    if isinstance(exc, BadBootstrap):
        return Explanation(f"{exc}: pass --bootstrap HOST:PORT", USAGE)
    if isinstance(exc, MissingTopics | FileNotUtf8):
        return Explanation(str(exc), USAGE)
    if isinstance(exc, BrokerUnavailable):  # its message is the one line, budget included
        return Explanation(str(exc), UNAVAILABLE)
    if isinstance(exc, AuthenticationFailed):
        return Explanation(f"{exc}: check OMM_KAFKA_SASL_USERNAME and the password (file)", USAGE)
    if isinstance(exc, SecurityConfigError):
        return Explanation(f"Kafka security settings: {exc}", USAGE)
    if isinstance(exc, TopicAuthorizationFailedError | GroupAuthorizationFailedError):
        return Explanation(
            f"the cluster refused access ({type(exc).__name__}: {exc}): this principal "
            "has no ACL for it; a platform may write only omm.feed.<itself>.* and read "
            "only its own tasks and feedback",
            USAGE,
        )
    if isinstance(exc, AccessError):
        return Explanation(f"provisioning refused: {exc}", USAGE)
    if isinstance(exc, KafkaTimeoutError | KafkaConnectionError):
        # the probe passed, so the cluster went away (or stalled) while working
        return Explanation(
            f"Kafka stopped answering ({type(exc).__name__}: {exc}): check the broker "
            "(`omm broker status`) and run the command again",
            UNAVAILABLE,
        )
    if isinstance(exc, BrokerError):
        return Explanation(f"embedded broker: {exc}", UNAVAILABLE)
    if isinstance(exc, IsADirectoryError):
        return Explanation(
            f"{exc.filename} is a directory: give the path of one .jsonl or .csv file", USAGE
        )
    if isinstance(exc, FileNotFoundError):
        return Explanation(f"no such file: {exc.filename}", USAGE)
    if isinstance(exc, PermissionError):
        return Explanation(f"not allowed to read {exc.filename}: check its permissions", USAGE)
    if isinstance(exc, UnicodeDecodeError):
        return Explanation(
            f"input is not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8",
            USAGE,
        )
    if type(exc) is LookupError:  # not KeyError/IndexError: those are bugs
        return Explanation(str(exc), USAGE)
    return None
