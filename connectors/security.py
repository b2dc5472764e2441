"""How a Kafka client proves who it is: SASL (SCRAM-SHA-512, PLAIN) and TLS settings.

One frozen, picklable value that every client constructor of the project
accepts (``security=``) and turns into kafka-python keyword arguments. Beam
DoFns and job objects carry it, so it travels in a pickled pipeline: the
password should travel *by reference* (``password_file``, read when a client
is made, in the worker) rather than inline, so the job graph never holds the
secret. Neither form ever appears in ``repr`` or a log line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]

PROTOCOLS: tuple[str, ...] = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS: tuple[str, ...] = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


class SecurityConfigError(ValueError):
    """The security settings contradict each other or name a file that cannot be read."""


class AuthenticationFailed(RuntimeError):
    """The broker refused the credentials; the message names the user, never the secret."""


@dataclass(frozen=True)
class KafkaSecurity:
    """Credentials and transport of one principal. The default is an unsecured client."""

    protocol: Protocol = "PLAINTEXT"
    sasl_mechanism: Mechanism | None = None
    username: str | None = None
    # Inline secret (masked in repr); prefer password_file for anything pickled.
    password: SecretStr | None = None
    # By reference: a file (mode 0600) holding the password, read per client.
    password_file: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise SecurityConfigError(
                f"security protocol {self.protocol!r} is not one of {list(PROTOCOLS)}"
            )
        if self.uses_sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise SecurityConfigError(
                    f"{self.protocol} needs a SASL mechanism, one of {list(MECHANISMS)} "
                    f"(got {self.sasl_mechanism!r})"
                )
            if not self.username:
                raise SecurityConfigError(f"{self.protocol} needs a SASL user name")
            if self.password is None and self.password_file is None:
                raise SecurityConfigError(
                    f"{self.protocol} needs a password for {self.username!r} "
                    "(inline or as a password file)"
                )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise SecurityConfigError("a TLS client certificate needs its key, and vice versa")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def principal(self) -> str:
        """The principal the broker will see, as ACLs name it (``User:<name>``)."""
        return f"User:{self.username}" if self.uses_sasl and self.username else "User:ANONYMOUS"

    def describe(self) -> str:
        """Who and how, without the secret: for messages an operator reads."""
        if self.uses_sasl:
            return f"{self.protocol} {self.sasl_mechanism} as {self.username!r}"
        return self.protocol

    def resolve_password(self) -> str:
        if self.password is not None:
            return self.password.get_secret_value()
        assert self.password_file is not None  # __post_init__ guarantees one of the two
        path = Path(self.password_file)
        try:
            text = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecurityConfigError(
                f"cannot read the password file for {self.username!r}: {path} ({exc.strerror})"
            ) from exc
        if not text:
            raise SecurityConfigError(f"the password file for {self.username!r} is empty: {path}")
        return text

    def kafka_kwargs(self) -> dict[str, Any]:
        """kafka-python keyword arguments (producer, consumer and admin accept the same)."""
        if self.protocol == "PLAINTEXT":
            return {}
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.uses_sasl:
            out["sasl_mechanism"] = self.sasl_mechanism
            out["sasl_plain_username"] = self.username
            out["sasl_plain_password"] = self.resolve_password()
        if self.uses_tls:
            out["ssl_check_hostname"] = self.ssl_check_hostname
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                value = getattr(self, key)
                if value:
                    out[key] = value
        return out


_SECRET_KWARGS = frozenset({"sasl_plain_password", "ssl_password"})


class _MaskSecretKwargs(logging.Filter):
    """kafka-python's admin client logs its whole configuration at DEBUG, password included."""

    def filter(self, record: logging.LogRecord) -> bool:
        # logging unwraps a lone mapping argument: record.args is then the dict itself
        if isinstance(record.args, dict):
            record.args = _masked(record.args)
        elif isinstance(record.args, tuple):
            record.args = tuple(_masked(a) if isinstance(a, dict) else a for a in record.args)
        return True


def _masked(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: "***" if k in _SECRET_KWARGS and v else v for k, v in kwargs.items()}


# a filter on the logger that creates the record (not on a parent): it runs
# before any handler sees the message, whatever level or handlers are configured
logging.getLogger("kafka.admin.client").addFilter(_MaskSecretKwargs())


def client_kwargs(security: KafkaSecurity | None) -> dict[str, Any]:
    """kafka-python kwargs for an optional security value (None: an unsecured client)."""
    return security.kafka_kwargs() if security is not None else {}


def write_secret_file(path: Path, secret: str) -> None:
    """Write a secret readable by its owner only (0600), replacing any earlier one atomically."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secret + "\n")
    os.replace(partial, path)


class _AuthFailureLog(logging.Handler):
    """Keeps the SASL refusals kafka-python logs while it retries a bootstrap.

    kafka-python retries a refused login until its bootstrap timeout and then
    raises only "Unable to bootstrap", the same as for a broker that is down;
    the broker's actual answer is only in its log records.
    """

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.refusals: list[BaseException] = []

    def emit(self, record: logging.LogRecord) -> None:
        from kafka.errors import SaslAuthenticationFailedError

        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, SaslAuthenticationFailedError):
                self.refusals.append(arg)


_KAFKA_NET_LOGGER = "kafka.net"


@contextlib.contextmanager
def login_errors(security: KafkaSecurity | None, bootstrap: str) -> Iterator[None]:
    """Turn a refused SASL login while a client bootstraps into one clear error.

    A bootstrap that times out for another reason (broker down) is re-raised as is.
    """
    if security is None or not security.uses_sasl:
        yield
        return
    # kafka is imported here, not at the top: omm.settings imports this module
    # and every `omm` command (even --help) imports the settings
    from kafka.errors import KafkaTimeoutError

    handler = _AuthFailureLog()
    # The refusal is logged at ERROR ("Connection failed"), which passes any
    # sensible level; the logger's level is left alone (other threads log too).
    logger = logging.getLogger(_KAFKA_NET_LOGGER)
    logger.addHandler(handler)
    try:
        yield
    except KafkaTimeoutError as exc:
        if handler.refusals:
            said = f"Broker said: {handler.refusals[-1]}"
        elif any(_accepts_tcp(server) for server in bootstrap.split(",")):
            # Kafka 4 closes the connection on a bad SCRAM proof without an
            # error response; a reachable broker that drops every login attempt
            # is refusing the credentials.
            said = "The broker accepts connections but closed each one during the login."
        else:
            raise  # nothing listens: not a login problem
        raise AuthenticationFailed(
            f"{bootstrap} refused the login ({security.describe()}): wrong user name or "
            "password, no such user, or a listener that does not speak "
            f"{security.protocol}/{security.sasl_mechanism}. Check OMM_KAFKA_SASL_USERNAME "
            "and OMM_KAFKA_SASL_PASSWORD_FILE (or OMM_KAFKA_SASL_PASSWORD). " + said
        ) from exc
    finally:
        logger.removeHandler(handler)


def _accepts_tcp(server: str, timeout_s: float = 2.0) -> bool:
    host, _, port = server.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
