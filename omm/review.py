"""`omm review`: what a regulator decides that enforce and comply cannot.

Two kinds of item wait for a person: an uncertain match enforce sent to
omm.review.matches instead of issuing a task (`confirm` or `reject` it), and a
task its platform DISPUTED (`uphold` or `withdraw` it). Each decision is one
ReviewDecision record on omm.review.decisions, keyed by the review or task id,
naming who decided, when and why: a record, never an edit (deciding again
publishes another; the latest wins). Enforce acts on CONFIRM and REJECT the
next time it runs; UPHOLD and WITHDRAW are the compliance pipeline's.

Errors are one line with the exit codes of :mod:`omm.errors` (the root
command turns them into that); an id that names nothing is exit 2.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import TypeAdapter, ValidationError
from rich.console import Console
from rich.markup import escape

from connectors.topics import TopicNames
from omm.settings import get_settings
from omm.tables import table
from pipelines.rules.review import (
    DISPUTED,
    DecisionKind,
    dispute_decision,
    latest_by,
    match_decision,
    undecided_disputes,
    undecided_reviews,
)
from schemas.models import LongText, Text, utc_now

if TYPE_CHECKING:
    from connectors.probe import Cluster

# omm.errors (and anything else importing kafka) is imported where it is used: every
# `omm` command imports this module, and kafka-python costs ~0.1 s to import.

console = Console()

review_app = typer.Typer(
    help="A regulator's decisions: uncertain matches (confirm, reject) and disputed tasks "
    "(uphold, withdraw).",
    no_args_is_help=True,
)

Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", help="Kafka bootstrap servers (default OMM_KAFKA_BOOTSTRAP)."),
]
Prefix = Annotated[str, typer.Option("--prefix", help="Topic namespace prefix (tests, tenants).")]
By = Annotated[
    str, typer.Option("--by", help="Who decides: your user or office, as it is to be recorded.")
]
Reason = Annotated[str, typer.Option("--reason", help="Why, in words; recorded with the decision.")]
ReviewId = Annotated[str, typer.Argument(help="The review_id, as `omm review list` shows it.")]
TaskId = Annotated[str, typer.Argument(help="The task_id, as `omm review list` shows it.")]


# ---------------------------------------------------------------- reading the cluster


def _reach(bootstrap: str | None, prefix: str, topics: Iterable[str]) -> Cluster:
    """The cluster, once it answered within OMM_KAFKA_PROBE_TIMEOUT_S and has ``topics``."""
    from connectors.probe import probe

    settings = get_settings()
    cluster = probe(
        bootstrap or settings.kafka_bootstrap,
        settings.kafka_probe_timeout_s,
        security=settings.kafka_security(),
    )
    cluster.require(topics, prefix)
    return cluster


def _records(cluster: Cluster, topic: str) -> list[dict[str, Any]]:
    """Every decoded record of ``topic`` now, in offset order per partition (undecodable
    bytes are skipped: only the contracts' records can be decided on)."""
    from connectors.tail import read_to_end

    security = get_settings().kafka_security()
    return [
        line["value"]
        for line in read_to_end(cluster.bootstrap, topic, security)
        if isinstance(line.get("value"), dict)
    ]


def _publish(cluster: Cluster, topics: TopicNames, key: str, record: dict[str, Any]) -> str:
    """Publish one decision and wait for the broker's acknowledgement; its position."""
    from kafka.errors import (
        KafkaConnectionError,
        KafkaError,
        KafkaTimeoutError,
        TopicAuthorizationFailedError,
    )

    from connectors.kafka_client import send_acknowledged
    from omm.errors import UNAVAILABLE, UserError
    from schemas.registry import SchemaRegistry

    value = SchemaRegistry.load().encode("review_decision", record)
    try:
        partition, offset = send_acknowledged(
            cluster.bootstrap,
            topics.decisions,
            key.encode("utf-8"),
            value,
            get_settings().kafka_security(),
        )
    except (TopicAuthorizationFailedError, KafkaTimeoutError, KafkaConnectionError):
        raise  # omm.errors words these (no ACL: exit 2; the cluster went away: exit 3)
    except KafkaError as exc:
        what = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise UserError(
            f"the broker did not acknowledge the decision ({what}); it may or may not be "
            "recorded: `omm review list` shows whether it is, and deciding again is harmless "
            "(the latest decision wins)",
            UNAVAILABLE,
        ) from exc
    return f"{topics.decisions}/{partition}/{offset}"


# ---------------------------------------------------------------- what a decision says


def _checked(by: str, reason: str) -> tuple[str, str]:
    """``--by`` and ``--reason`` as every text field of the contracts is checked: not blank,
    no control characters, within the field limits. Checked before any Kafka work."""
    from omm.errors import UserError

    for option, value, kind in (("--by", by, Text), ("--reason", reason, LongText)):
        try:
            TypeAdapter(kind).validate_python(value)
        except ValidationError as exc:
            raise UserError(f"{option} {exc.errors()[0]['msg']}") from exc
    return by, reason


def _decision_id() -> str:
    return f"d-{uuid.uuid4().hex[:16]}"


def _ms_precision(at: datetime) -> datetime:
    # what Avro timestamp-millis keeps: shown as it will be read back
    return at.replace(microsecond=at.microsecond // 1000 * 1000)


def _superseded(decisions: Iterable[Mapping[str, Any]], field: str, subject: str) -> str:
    earlier = [d for d in decisions if d.get(field) == subject]
    if not earlier:
        return ""
    last = max(earlier, key=lambda d: d["decided_at"])
    return (
        f" (it supersedes the {last['decision']} by {last['decided_by']} of "
        f"{last['decided_at']:%Y-%m-%d %H:%M} UTC)"
    )


def _decide_match(
    kind: DecisionKind, review_id: str, by: str, reason: str, bootstrap: str | None, prefix: str
) -> None:
    from omm.errors import UserError

    by, reason = _checked(by, reason)
    topics = TopicNames(prefix)
    inspections = topics.valid("inspection")
    cluster = _reach(bootstrap, prefix, [topics.review, topics.decisions, inspections])
    review = latest_by(_records(cluster, topics.review), "review_id").get(review_id)
    if review is None:
        raise UserError(
            f"no match review {review_id!r} on {topics.review}: `omm review list"
            + (f" --prefix {prefix}" if prefix else "")
            + "` shows the reviews waiting"
        )
    result = latest_by(_records(cluster, inspections), "inspection_id").get(review["inspection_id"])
    if result is None:
        # enforce made the review from it, so another namespace or a deleted topic
        raise UserError(
            f"review {review_id!r} names inspection {review['inspection_id']!r}, which is not "
            f"on {inspections}: check --prefix"
        )
    record = match_decision(
        kind,
        review,
        result,
        decided_by=by,
        reason=reason,
        decided_at=_ms_precision(utc_now()),
        decision_id=_decision_id(),
    )
    earlier = _superseded(_records(cluster, topics.decisions), "review_id", review_id)
    where = _publish(cluster, topics, review_id, record)
    effect = (
        "enforce issues its DELIST and REMEDIATION tasks on its next run"
        if kind is DecisionKind.CONFIRM
        else "enforce will never issue a task for this listing and result"
    )
    console.print(
        f"{kind.value} of review {escape(review_id)} (listing {escape(review['platform'])}/"
        f"{escape(review['listing_id'])}, result {escape(review['inspection_id'])}) published "
        f"as {record['decision_id']} at {escape(where)}{escape(earlier)}: {effect}",
        soft_wrap=True,
        highlight=False,
    )


def _decide_dispute(
    kind: DecisionKind, task_id: str, by: str, reason: str, bootstrap: str | None, prefix: str
) -> None:
    from omm.errors import UserError

    by, reason = _checked(by, reason)
    topics = TopicNames(prefix)
    cluster = _reach(bootstrap, prefix, [topics.compliance_status, topics.decisions])
    status = latest_by(_records(cluster, topics.compliance_status), "task_id").get(task_id)
    if status is None:
        raise UserError(
            f"no compliance status for task {task_id!r} on {topics.compliance_status}: only a "
            "task its platform DISPUTED can be upheld or withdrawn"
        )
    if status["status"] != DISPUTED:
        raise UserError(
            f"task {task_id!r} is not disputed (its status is {status['status']}): only a task "
            "its platform DISPUTED can be upheld or withdrawn"
        )
    # the status names the platform and listing; the task itself names the inspection
    task_topic = topics.tasks(status["platform"])
    task: Mapping[str, Any] = {}
    if task_topic in cluster.topics:
        task = latest_by(_records(cluster, task_topic), "task_id").get(task_id) or {}
    listing_id = status.get("listing_id") or task.get("listing_id")
    if listing_id is None:
        # ReviewDecision.listing_id is required, and a task without a listing has none
        raise UserError(
            f"task {task_id!r} concerns no listing (a {task.get('kind', 'REMEDIATION')} task): "
            "a decision records the listing it is about, so it cannot be decided here"
        )
    record = dispute_decision(
        kind,
        status,
        listing_id,
        task.get("inspection_id"),
        decided_by=by,
        reason=reason,
        decided_at=_ms_precision(utc_now()),
        decision_id=_decision_id(),
    )
    earlier = _superseded(_records(cluster, topics.decisions), "task_id", task_id)
    where = _publish(cluster, topics, task_id, record)
    effect = (
        "the task stands, with a new deadline counted from now"
        if kind is DecisionKind.UPHOLD
        else "the task is withdrawn"
    )
    console.print(
        f"{kind.value} of disputed task {escape(task_id)} (listing {escape(status['platform'])}/"
        f"{escape(listing_id)}) published as {record['decision_id']} at {escape(where)}"
        f"{escape(earlier)}: {effect} once the compliance pipeline reads it",
        soft_wrap=True,
        highlight=False,
    )


# ---------------------------------------------------------------- commands


@review_app.command("list")
def review_list(bootstrap: Bootstrap = None, prefix: Prefix = "") -> None:
    """What waits for a decision: uncertain matches, and tasks their platform DISPUTED."""
    topics = TopicNames(prefix)
    inspections = topics.valid("inspection")
    cluster = _reach(
        bootstrap,
        prefix,
        [topics.review, topics.decisions, topics.compliance_status, inspections],
    )
    with console.status("reading reviews, decisions and compliance status…"):
        decisions = _records(cluster, topics.decisions)
        reviews = undecided_reviews(_records(cluster, topics.review), decisions)
        disputes = undecided_disputes(_records(cluster, topics.compliance_status), decisions)
        results = latest_by(_records(cluster, inspections), "inspection_id") if reviews else {}
    _show_reviews(reviews, results)
    _show_disputes(disputes)


def _show_reviews(
    reviews: list[Mapping[str, Any]], results: Mapping[str, Mapping[str, Any]]
) -> None:
    if not reviews:
        console.print("no match reviews waiting")
        return
    # listing and result side by side, as the regulator compares them; ids unbroken,
    # since they are copied into `omm review confirm|reject`
    waiting = table(
        "review id", "listing", "listing brand / model", "result", "match", "why uncertain",
        title=f"match reviews to confirm or reject ({len(reviews)})",
    )  # fmt: skip
    waiting.columns[0].no_wrap = True
    for r in reviews:
        result = results.get(r["inspection_id"])
        product = (
            f"{result['verdict']} {result['brand']} / {result['model']}"
            if result
            else r["product_key"]
        )
        waiting.add_row(
            f"{r['review_id']}\nsince {r['created_at']:%Y-%m-%d %H:%M}",
            escape(f"{r['platform']}/{r['listing_id']}\n{r['listing_title']}"),
            escape(f"{r.get('listing_brand') or '-'} / {r.get('listing_model') or '-'}"),
            escape(f"{r['inspection_id']}\n{product}"),
            f"{r['match_method']} {r['match_confidence']:.2f}",
            escape(r["reason"]),
        )
    console.print(waiting)


def _show_disputes(disputes: list[Mapping[str, Any]]) -> None:
    if not disputes:
        console.print("no disputed tasks waiting")
        return
    waiting = table(
        "task id", "platform", "listing", "disputed at", "deadline", "platform's reason",
        title=f"disputed tasks to uphold or withdraw ({len(disputes)})",
    )  # fmt: skip
    waiting.columns[0].no_wrap = True
    for s in disputes:
        waiting.add_row(
            s["task_id"],
            s["platform"],
            s.get("listing_id") or "-",
            f"{s['changed_at']:%Y-%m-%d %H:%M}",
            f"{s['deadline_at']:%Y-%m-%d %H:%M}",
            escape(s.get("note") or "-"),
        )
    console.print(waiting)


@review_app.command("confirm")
def review_confirm(
    review_id: ReviewId, by: By, reason: Reason, bootstrap: Bootstrap = None, prefix: Prefix = ""
) -> None:
    """The match is right: enforce issues the task it would have issued for a confident one."""
    _decide_match(DecisionKind.CONFIRM, review_id, by, reason, bootstrap, prefix)


@review_app.command("reject")
def review_reject(
    review_id: ReviewId, by: By, reason: Reason, bootstrap: Bootstrap = None, prefix: Prefix = ""
) -> None:
    """The match is wrong: this listing and result never become a task (until confirmed)."""
    _decide_match(DecisionKind.REJECT, review_id, by, reason, bootstrap, prefix)


@review_app.command("uphold")
def review_uphold(
    task_id: TaskId, by: By, reason: Reason, bootstrap: Bootstrap = None, prefix: Prefix = ""
) -> None:
    """The disputed task stands (its new deadline counts from the decision)."""
    _decide_dispute(DecisionKind.UPHOLD, task_id, by, reason, bootstrap, prefix)


@review_app.command("withdraw")
def review_withdraw(
    task_id: TaskId, by: By, reason: Reason, bootstrap: Bootstrap = None, prefix: Prefix = ""
) -> None:
    """The disputed task is withdrawn."""
    _decide_dispute(DecisionKind.WITHDRAW, task_id, by, reason, bootstrap, prefix)
