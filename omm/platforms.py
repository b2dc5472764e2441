"""Principals and their ACLs on a secured cluster: `omm platform add NAME`, `omm platform services`.

Each platform logs in as its own SCRAM user (its id) and may write only its
feeds (``omm.feed.<id>.*``) and read only its tasks, its feedback and its
compliance view, as config/security.yaml says. The pipelines run as
``omm-pipelines`` and the regulator as ``regulator``. A broker with
``allow.everyone.if.no.acl.found=false`` refuses everything else, so one
platform can neither write another's feed nor read another's tasks; ingest
still checks the ``platform`` field of each record against the feed it came
from (a platform can put any value in its own feed).

The generated password is written once to ``<home>/credentials/<user>.password``
(mode 0600) and never printed or logged: a terminal's scroll-back or a CI log
is not a place for a secret. Hand the file to the platform over a secure
channel. Running the command again keeps the password (and re-applies the
ACLs, which is idempotent); ``--rotate`` replaces it.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from connectors.security import AuthenticationFailed, KafkaSecurity, write_secret_file
from connectors.topics import TopicNames
from omm.config import _read_yaml, config_path, load_platforms, load_topic_catalog
from omm.settings import Settings, get_settings

if TYPE_CHECKING:
    # connectors.acl imports kafka (slow); every `omm` command imports this module
    from connectors.acl import Grant

PIPELINES = "omm-pipelines"
REGULATOR = "regulator"
ADMIN = "admin"
_RESERVED = {PIPELINES, REGULATOR, ADMIN}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessRules(_Strict):
    """Catalog topic names (a trailing '*' = prefix) and consumer-group prefixes."""

    read: list[str] = []
    write: list[str] = []
    groups: list[str] = []


class SecurityConfig(_Strict):
    scram_mechanism: str = "SCRAM-SHA-512"
    scram_iterations: int = Field(default=8192, ge=4096)
    credentials_dir: str = "credentials"
    platform: AccessRules
    services: dict[str, AccessRules]


@lru_cache(maxsize=8)
def load_security_config(config_dir: Path | None = None) -> SecurityConfig:
    return SecurityConfig.model_validate(_read_yaml(config_path("security.yaml", config_dir)))


def _topic_grants(
    principal: str, names: list[str], operation: str, topics: TopicNames
) -> list[Grant]:
    from connectors.acl import Grant

    out: list[Grant] = []
    for name in names:
        prefixed = name.endswith("*")
        full = topics.prefix + name.rstrip("*")
        for op in (operation, "DESCRIBE"):
            out.append(Grant(principal, op, "TOPIC", full, prefixed))  # type: ignore[arg-type]
    return out


def _group_grants(principal: str, patterns: list[str], topics: TopicNames) -> list[Grant]:
    from connectors.acl import Grant

    out: list[Grant] = []
    for pattern in patterns:
        prefixed = pattern.endswith("*")
        name = pattern.rstrip("*")
        # a namespaced run's groups carry the namespace in front or after the
        # "omm." of consumer_group_prefix (see omm/cli.py): grant both spellings
        for full in {name, topics.prefix + name}:
            out.append(Grant(principal, "READ", "GROUP", full, prefixed))
    return out


def grants_for(
    user: str,
    rules: AccessRules,
    topics: TopicNames,
    platform: str | None = None,
    catalog_names: set[str] | None = None,
) -> list[Grant]:
    """Every ACL ``user`` gets; with ``catalog_names``, exact names outside the catalog are skipped.

    ``platform`` fills ``{platform}`` in the rules.
    """
    principal = f"User:{user}"

    def expand(names: list[str]) -> list[str]:
        kept = []
        for name in names:
            if catalog_names is not None and not name.endswith("*") and name not in catalog_names:
                continue
            kept.append(name.format(platform=platform) if platform else name)
        return kept

    return sorted(
        set(
            _topic_grants(principal, expand(rules.write), "WRITE", topics)
            + _topic_grants(principal, expand(rules.read), "READ", topics)
            + _group_grants(principal, expand(rules.groups), topics)
        )
    )


@dataclass(frozen=True)
class Provisioned:
    """A principal that now exists with its ACLs, and where its secret is."""

    user: str
    password_file: Path
    grants: list[Grant]
    new_password: bool
    mechanism: str

    def client_security(self) -> KafkaSecurity:
        """How this principal's clients log in: the password by reference."""
        return KafkaSecurity(
            protocol="SASL_PLAINTEXT",
            sasl_mechanism=self.mechanism,  # type: ignore[arg-type]
            username=self.user,
            password_file=str(self.password_file),
        )

    def client_settings(self) -> str:
        """The environment lines a client of this principal sets (no secret in them)."""
        return (
            f"OMM_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT OMM_KAFKA_SASL_MECHANISM={self.mechanism} "
            f"OMM_KAFKA_SASL_USERNAME={self.user} OMM_KAFKA_SASL_PASSWORD_FILE={self.password_file}"
        )


def provision(
    user: str,
    rules: AccessRules,
    *,
    bootstrap: str,
    admin: KafkaSecurity,
    home: Path,
    topics: TopicNames,
    platform: str | None = None,
    rotate: bool = False,
    config_dir: Path | None = None,
) -> Provisioned:
    """Create (or keep) the user's SCRAM credential and apply its ACLs."""
    from connectors import kafka_client
    from connectors.acl import apply_grants, upsert_scram_user

    cfg = load_security_config(config_dir)
    catalog = {spec.name for spec in load_topic_catalog(config_dir).topics}
    grants = grants_for(user, rules, topics, platform, catalog)
    password_file = home / cfg.credentials_dir / f"{user}.password"
    new_password = rotate or not password_file.exists()
    client = kafka_client.admin(bootstrap, admin)
    try:
        password = (
            secrets.token_urlsafe(32)
            if new_password
            else password_file.read_text(encoding="utf-8").strip()
        )
        upsert_scram_user(client, user, password, cfg.scram_mechanism, cfg.scram_iterations)
        if new_password:
            # written only once the broker has it: a file naming a password the
            # broker never accepted would only mislead
            write_secret_file(password_file, password)
        apply_grants(client, grants)
    finally:
        client.close()
    return Provisioned(user, password_file, grants, new_password, cfg.scram_mechanism)


def add_platform(
    platform: str,
    *,
    bootstrap: str,
    admin: KafkaSecurity,
    home: Path,
    topics: TopicNames | None = None,
    rotate: bool = False,
    config_dir: Path | None = None,
) -> Provisioned:
    """The platform's user (named as its id) with write on its feeds, read on its own outputs."""
    if platform in _RESERVED:
        raise ValueError(f"{platform!r} is a reserved principal name, not a platform id")
    if platform not in load_platforms(config_dir):
        raise ValueError(
            f"platform {platform!r} is not registered: add it to config/platforms.yaml first"
        )
    rules = load_security_config(config_dir).platform
    return provision(
        platform,
        rules,
        bootstrap=bootstrap,
        admin=admin,
        home=home,
        topics=topics or TopicNames(),
        platform=platform,
        rotate=rotate,
        config_dir=config_dir,
    )


def add_services(
    *,
    bootstrap: str,
    admin: KafkaSecurity,
    home: Path,
    topics: TopicNames | None = None,
    rotate: bool = False,
    config_dir: Path | None = None,
) -> list[Provisioned]:
    """The pipelines' and the regulator's principals (config/security.yaml ``services``)."""
    return [
        provision(
            user,
            rules,
            bootstrap=bootstrap,
            admin=admin,
            home=home,
            topics=topics or TopicNames(),
            rotate=rotate,
            config_dir=config_dir,
        )
        for user, rules in load_security_config(config_dir).services.items()
    ]


def admin_security(settings: Settings) -> KafkaSecurity:
    """The admin login: the configured client security, else the secured embedded broker's."""
    configured = settings.kafka_security()
    if configured is not None:
        return configured
    from connectors.broker.manager import EmbeddedKafka

    broker = EmbeddedKafka(settings.home / "kafka", security="sasl_scram")
    if settings.broker_security == "sasl_scram" or broker.formatted_security() == "sasl_scram":
        return broker.admin_security()
    raise ValueError(
        "provisioning needs a secured cluster: start the embedded broker with "
        "OMM_BROKER_SECURITY=sasl_scram, or set OMM_KAFKA_SECURITY_PROTOCOL and the "
        "admin's OMM_KAFKA_SASL_* settings"
    )


# ---------------------------------------------------------------- command line

platform_app = typer.Typer(
    help="Principals and ACLs on a secured cluster (config/security.yaml).", no_args_is_help=True
)
_console = Console()
_err = Console(stderr=True)

_Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", help="Kafka bootstrap servers (default OMM_KAFKA_BOOTSTRAP)."),
]
_Prefix = Annotated[str, typer.Option("--prefix", help="Topic namespace prefix (tests, tenants).")]
_Rotate = Annotated[
    bool, typer.Option("--rotate", help="Replace an existing password with a new one.")
]


def _report(done: Provisioned) -> None:
    table = Table("operation", "resource", "name", title=f"ACLs of User:{done.user}")
    for grant in done.grants:
        table.add_row(
            grant.operation,
            grant.resource.lower(),
            grant.name + ("*" if grant.prefixed else ""),
        )
    _console.print(table)
    what = "new password written to" if done.new_password else "password kept in"
    _console.print(f"User:{escape(done.user)}: {what} {done.password_file} (mode 0600)")
    # one unbroken line, to copy into the client's environment
    _console.print(f"  client settings: {escape(done.client_settings())}", soft_wrap=True)


def _provision_or_exit(make: Callable[[], Provisioned | list[Provisioned]]) -> list[Provisioned]:
    from connectors.acl import AccessError

    try:
        result = make()
    except (ValueError, AccessError, AuthenticationFailed) as exc:
        _err.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    return result if isinstance(result, list) else [result]


@platform_app.command("add")
def platform_add(
    name: Annotated[str, typer.Argument(help="Platform id (config/platforms.yaml)")],
    bootstrap: _Bootstrap = None,
    prefix: _Prefix = "",
    rotate: _Rotate = False,
) -> None:
    """Create the platform's SCRAM user and ACLs: write its feeds, read its tasks and feedback."""
    settings = get_settings()
    for done in _provision_or_exit(
        lambda: add_platform(
            name,
            bootstrap=bootstrap or settings.kafka_bootstrap,
            admin=admin_security(settings),
            home=settings.home,
            topics=TopicNames(prefix),
            rotate=rotate,
        )
    ):
        _report(done)


@platform_app.command("services")
def platform_services(
    bootstrap: _Bootstrap = None,
    prefix: _Prefix = "",
    rotate: _Rotate = False,
) -> None:
    """Create the pipelines' (omm-pipelines) and the regulator's users and ACLs."""
    settings = get_settings()
    for done in _provision_or_exit(
        lambda: add_services(
            bootstrap=bootstrap or settings.kafka_bootstrap,
            admin=admin_security(settings),
            home=settings.home,
            topics=TopicNames(prefix),
            rotate=rotate,
        )
    ):
        _report(done)
