"""The Kafka admin side of access control: SCRAM users and ACLs, through kafka-python.

kafka-python 3.0.12's admin client speaks AlterUserScramCredentials (KIP-554)
and CreateAcls, so no Java tool is launched. Grants here are plain values;
which principal gets which grant is decided by the caller (omm/platforms.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from kafka import KafkaAdminClient
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
    UserScramCredentialUpsertion,
)

from connectors.security import KafkaSecurity

Operation = Literal["READ", "WRITE", "DESCRIBE"]
Resource = Literal["TOPIC", "GROUP"]


class AccessError(RuntimeError):
    """The broker refused to store a credential or an ACL; the message says which and why."""


@dataclass(frozen=True, order=True)
class Grant:
    """ALLOW ``operation`` on a topic or group (by exact name or by name prefix), from any host."""

    principal: str  # "User:<name>"
    operation: Operation
    resource: Resource
    name: str
    prefixed: bool = False

    def describe(self) -> str:
        pattern = f"{self.name}*" if self.prefixed else self.name
        return f"{self.principal} {self.operation} {self.resource.lower()} {pattern}"

    def to_acl(self) -> ACL:
        return ACL(
            principal=self.principal,
            host="*",
            operation=ACLOperation[self.operation],
            permission_type=ACLPermissionType.ALLOW,
            resource_pattern=ResourcePattern(
                ResourceType[self.resource],
                self.name,
                ACLResourcePatternType.PREFIXED
                if self.prefixed
                else ACLResourcePatternType.LITERAL,
            ),
        )


def upsert_scram_user(
    client: KafkaAdminClient,
    user: str,
    password: str,
    mechanism: str = "SCRAM-SHA-512",
    iterations: int = 8192,
) -> None:
    """Create the user's SCRAM credential, or replace it (a new password) if it exists."""
    result = client.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(user, mechanism, password, iterations=iterations)]
    )
    error = result.get(user)
    if error:
        raise AccessError(f"the broker refused the SCRAM credential of {user!r}: {error}")


def apply_grants(client: KafkaAdminClient, grants: Iterable[Grant]) -> list[Grant]:
    """Create the ACLs (creating an existing one again is a no-op); return those applied."""
    wanted = sorted(set(grants))
    if not wanted:
        return []
    result = client.create_acls([g.to_acl() for g in wanted])
    failed = result.get("failed") or []
    if failed:
        raise AccessError(f"the broker refused {len(failed)} ACL(s): {failed[0]!r}")
    return wanted


def grants_of(client: KafkaAdminClient, principal: str) -> list[Grant]:
    """Every ALLOW ACL on topics and groups the cluster holds for ``principal``."""
    found: list[Grant] = []
    for resource in ("TOPIC", "GROUP"):
        acls, _ = client.describe_acls(
            ACLFilter(
                principal=principal,
                host="*",
                operation=ACLOperation.ANY,
                permission_type=ACLPermissionType.ALLOW,
                resource_pattern=ResourcePatternFilter(
                    ResourceType[resource], None, ACLResourcePatternType.ANY
                ),
            )
        )
        for acl in acls:
            found.append(
                Grant(
                    principal=acl.principal,
                    operation=acl.operation.name,
                    resource=resource,
                    name=acl.resource_pattern.resource_name,
                    prefixed=acl.resource_pattern.pattern_type == ACLResourcePatternType.PREFIXED,
                )
            )
    return sorted(found)


def raise_if_unauthorized(bootstrap: str, topics: Iterable[str], security: KafkaSecurity) -> None:
    """Raise ``TopicAuthorizationFailedError`` naming the topics this principal may not see.

    A client that lacks DESCRIBE on a topic is told nothing about it: the
    consumer's metadata simply leaves it out, so a read looks like "no such
    topic" or waits for ever. Asking for the topics by name gets the broker's
    real answer. Call it when an expected topic is missing on a secured cluster.
    """
    from kafka.errors import TopicAuthorizationFailedError

    client = KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","),
        client_id="omm-access-check",
        **security.kafka_kwargs(),
    )
    try:
        described = client.describe_topics(list(topics))
    finally:
        client.close()
    denied = sorted(
        str(t.get("name") or t.get("topic"))
        for t in described
        if t.get("error_code") == TopicAuthorizationFailedError.errno
    )
    if denied:
        raise TopicAuthorizationFailedError(
            f"{security.describe()} is not allowed to use {', '.join(denied)} "
            "(the ACLs config/security.yaml grants through `omm platform add`)"
        )
