"""A regulator's decisions, end to end: `omm review` on the real broker, enforce in real Beam.

Each test has its own namespace (the Market of test_enforce.py). A look-alike
goes to review; `omm review confirm|reject` publishes the decision; the next
enforce run issues the task (or never does). Disputed tasks come from the
compliance pipeline, which is not part of this branch: their DISPUTED status
records are written here as it would write them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from omm.beam_runtime import pipeline_args_with_defaults
from omm.cli import app
from omm.jobs import enforce_job
from pipelines.enforce import EnforceAccount, run_enforce
from pipelines.rules.enforcement import task_id
from tests.helpers import fresh_namespace, produce_avro, read_all
from tests.integration.test_enforce import NOW, PLATFORMS, Market, delists

pytestmark = pytest.mark.integration

WIDE = {"COLUMNS": "400"}  # rich would otherwise fold the tables at 80 columns
OFFICER = "samr-officer-17"


class Desk(Market):
    """The market, and the regulator's desk: `omm review` on its namespace."""

    def omm(self, *args: str) -> Result:
        return CliRunner().invoke(
            app,
            ["review", *args, "--bootstrap", self.bootstrap, "--prefix", self.topics.prefix],
            env=WIDE,
        )

    def decide(self, kind: str, subject: str, reason: str = "checked the listing") -> Result:
        done = self.omm(kind, subject, "--by", OFFICER, "--reason", reason)
        assert done.exit_code == 0, done.output
        return done

    def decisions(self) -> list[Any]:
        return [m for m in read_all(self.bootstrap, self.topics.decisions) if m.record]

    def look_alike_in_review(self, n: int) -> tuple[dict, dict]:
        """A listing of model KX-2000AS against a FAIL of KX-2000A: review, not a task."""
        listing = self.list("gome", model="KX-2000AS", manufacturer=None, gtin=None)
        self.publish(n, verdict="FAIL")
        self.enforce()
        (review,) = self.reviews()
        assert self.tasks("gome") == []
        return listing, review

    def dispute(self, task: dict, note: str) -> None:
        """The DISPUTED status the compliance pipeline writes for a platform's dispute."""
        acted = NOW - timedelta(minutes=30)
        status = {
            "task_id": task["task_id"],
            "platform": task["platform"],
            "listing_id": task["listing_id"],
            "status": "DISPUTED",
            "deadline_at": task["deadline_at"],
            "changed_at": acted,
            "evidence_kind": "TAKEDOWN_NOTICE",
            "evidence_ref": f"{self.topics.prefix}omm.feed.jd.takedowns/0/1",
            "evidence_at": acted,
            "issued_at": task["issued_at"],
            "completed_at": None,
            "hours_to_takedown": None,
            "working_hours_to_takedown": None,
            "relisted_at": None,
            "relisted_removed": False,
            "first_outcome": None,
            "note": note,
        }
        topic = self.topics.compliance_status
        produce_avro(self.bootstrap, topic, "compliance_status", [status], "task_id")


@pytest.fixture
def desk(kafka_bootstrap: str) -> Desk:
    return Desk(kafka_bootstrap)


def test_a_confirmed_look_alike_becomes_the_task_a_confident_match_would_be(desk: Desk) -> None:
    listing, review = desk.look_alike_in_review(7)
    listed = desk.omm("list")
    assert listed.exit_code == 0, listed.output
    assert review["review_id"] in listed.stdout
    assert "Midea / KX-2000AS" in listed.stdout and "FAIL Midea / KX-2000A" in listed.stdout

    done = desk.decide("confirm", review["review_id"], "same cooker: AS is the colour code")

    assert "enforce issues its DELIST and REMEDIATION tasks" in done.stdout
    (published,) = desk.decisions()
    decision = published.record
    assert published.key == review["review_id"].encode()
    assert (decision["decision"], decision["review_id"], decision["task_id"]) == (
        "CONFIRM",
        review["review_id"],
        None,
    )
    assert (decision["platform"], decision["listing_id"], decision["inspection_id"]) == (
        "gome",
        listing["listing_id"],
        "SAMR-2026-00007",
    )
    assert (decision["brand"], decision["model"]) == ("Midea", "KX-2000A")
    assert decision["decided_by"] == OFFICER

    account = desk.enforce()

    assert (account.decisions, account.disputes) == (1, 0)
    (delist,) = delists(desk.tasks("gome")).values()
    assert delist["task_id"] == task_id("gome", listing["listing_id"], "SAMR-2026-00007", "DELIST")
    assert delist["state"] == "ISSUED"
    assert delist["match_method"] == review["match_method"] == "BRAND_MODEL"
    assert delist["match_confidence"] == review["match_confidence"]
    assert f"confirmed on review by {OFFICER}" in delist["reason"]
    assert "AS is the colour code" in delist["reason"]
    assert delist["issued_at"] == decision["decided_at"]
    (remediation,) = [t for t in desk.tasks("gome") if t["kind"] == "REMEDIATION"]
    assert remediation["seller_id"] == listing["seller_id"]
    # decided: off the list
    assert review["review_id"] not in desk.omm("list").stdout
    # a replay (state rebuilt from the earliest offsets) writes the same task again
    first = {t["task_id"]: t for t in desk.tasks("gome")}
    desk.enforce()
    assert all(t == first[t["task_id"]] for t in desk.tasks("gome"))


def test_a_decision_read_before_its_review_gives_the_same_tasks(desk: Desk) -> None:
    listing, review = desk.look_alike_in_review(8)
    desk.decide("confirm", review["review_id"])
    desk.enforce()
    expected = _without_prefix(desk.tasks("gome"), desk.topics.prefix)
    (result,) = [
        m.record for m in read_all(desk.bootstrap, desk.topics.valid("inspection")) if m.record
    ]
    (decision,) = [_record(m.record) for m in desk.decisions()]

    # the same records in a fresh namespace, the decision written first; then a
    # streaming run (as events arrive) and a bounded one (in event order)
    elsewhere = fresh_namespace(PLATFORMS, desk.bootstrap)
    produce_avro(desk.bootstrap, elsewhere.decisions, "review_decision", [decision], "review_id")
    produce_avro(
        desk.bootstrap,
        elsewhere.valid("inspection"),
        "inspection",
        [_record(result)],
        "inspection_id",
    )
    produce_avro(desk.bootstrap, elsewhere.valid("listing"), "listing", [listing], "listing_id")
    seen = 0
    for streaming in (True, False):
        job = enforce_job(desk.bootstrap, elsewhere, idle_timeout_s=3.0)
        account = run_enforce(job, pipeline_args_with_defaults(None, streaming=streaming))
        assert account.balanced and account.decisions == 1, account
        written = [m.record for m in read_all(desk.bootstrap, elsewhere.tasks("gome")) if m.record]
        run, seen = _without_prefix(written[seen:], elsewhere.prefix), len(written)
        assert sorted(map(repr, run)) == sorted(map(repr, expected)), f"streaming={streaming}"


def test_a_rejected_look_alike_never_becomes_a_task_even_after_a_replay(desk: Desk) -> None:
    _, review = desk.look_alike_in_review(9)

    done = desk.decide("reject", review["review_id"], "KX-2000AS is another cooker")

    assert "never issue a task" in done.stdout
    (published,) = desk.decisions()
    assert published.record["decision"] == "REJECT"
    assert desk.enforce().decisions == 1
    assert desk.tasks("gome") == []
    desk.enforce()  # a replay
    assert desk.tasks("gome") == []
    listed = desk.omm("list")
    assert review["review_id"] not in listed.stdout
    assert "no match reviews waiting" in listed.stdout


def test_disputed_tasks_are_listed_upheld_and_withdrawn_with_their_platform_and_listing(
    desk: Desk,
) -> None:
    first = desk.list("jd", gtin=None)
    second = desk.list("jd", gtin=None)
    desk.publish(10, verdict="FAIL", gtin=None)
    desk.enforce()
    tasks = delists(desk.tasks("jd"))
    upheld, withdrawn = tasks[("jd", first["listing_id"])], tasks[("jd", second["listing_id"])]
    desk.dispute(upheld, "the seller shows a newer certificate")
    desk.dispute(withdrawn, "listing sells spare parts, not the cooker")

    listed = desk.omm("list")
    assert listed.exit_code == 0, listed.output
    for task, note in (
        (upheld, "the seller shows a newer certificate"),
        (withdrawn, "listing sells spare parts, not the cooker"),
    ):
        line = next(ln for ln in listed.stdout.splitlines() if task["task_id"] in ln)
        assert note in line and task["listing_id"] in line

    desk.decide("uphold", upheld["task_id"], "the certificate predates the batch")
    desk.decide("withdraw", withdrawn["task_id"], "spare parts are not the product")

    by_task = {m.key.decode(): m.record for m in desk.decisions()}
    for task, kind in ((upheld, "UPHOLD"), (withdrawn, "WITHDRAW")):
        decision = by_task[task["task_id"]]
        assert (decision["decision"], decision["task_id"], decision["review_id"]) == (
            kind,
            task["task_id"],
            None,
        )
        assert (decision["platform"], decision["listing_id"], decision["inspection_id"]) == (
            "jd",
            task["listing_id"],
            "SAMR-2026-00010",
        )
    listed = desk.omm("list")
    assert "no disputed tasks waiting" in listed.stdout
    # enforce leaves them to the compliance pipeline, and says so in its account
    before = desk.tasks("jd")
    account = desk.enforce()
    assert (account.decisions, account.disputes) == (2, 2)
    again = desk.tasks("jd")[len(before) :]
    assert sorted(map(repr, again)) == sorted(map(repr, before))  # the same tasks, nothing else


def test_an_id_that_names_nothing_or_a_blank_reason_is_one_line_and_exit_2(desk: Desk) -> None:
    listing = desk.list("jd", gtin=None)
    desk.publish(11, verdict="FAIL", gtin=None)
    desk.enforce()
    (task,) = delists(desk.tasks("jd")).values()
    for args in (
        ("confirm", "REV-nope", "--by", OFFICER, "--reason", "x"),
        ("uphold", "DEL-nope", "--by", OFFICER, "--reason", "x"),
        ("withdraw", task["task_id"], "--by", OFFICER, "--reason", "x"),  # not disputed
        ("reject", "REV-nope", "--by", "  ", "--reason", "x"),
        ("reject", "REV-nope", "--by", OFFICER, "--reason", "bad\x00reason"),
    ):
        failed = desk.omm(*args)
        assert failed.exit_code == 2, (args, failed.output)
        assert failed.stderr.count("\n") == 1 and failed.stderr.startswith("error:"), failed.stderr
        assert "Traceback" not in failed.output
    assert desk.decisions() == []
    assert listing["listing_id"] == task["listing_id"]


def _record(decoded: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in decoded.items() if not k.startswith("__")}


def _without_prefix(tasks: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """Task records with the namespace taken out of their evidence references."""
    return [{**_record(t), "evidence_ref": t["evidence_ref"].replace(prefix, "")} for t in tasks]


def test_the_account_balances_with_decisions_in_it(desk: Desk) -> None:
    _, review = desk.look_alike_in_review(12)
    desk.decide("confirm", review["review_id"])
    desk.decide("reject", review["review_id"], "second thoughts")  # the latest wins
    account: EnforceAccount = desk.enforce()
    assert account.balanced
    assert account.read == account.keyed + account.unkeyed + account.dead + account.disputes
    assert account.decisions == 2
    # folded in event order: issued at the CONFIRM, withdrawn at the REJECT
    latest = {t["task_id"]: t for t in desk.tasks("gome")}
    assert len(latest) == 2 and {t["state"] for t in latest.values()} == {"WITHDRAWN"}
    assert all("second thoughts" in t["reason"] for t in latest.values())


def test_an_unreachable_cluster_is_one_line_and_exit_3() -> None:
    # as a user runs it: the installed command, its whole stderr
    from connectors.broker.manager import free_port
    from tests.integration.test_cli_errors import assert_one_line, omm

    for args in (("list",), ("confirm", "REV-x", "--by", OFFICER, "--reason", "x")):
        run = omm("review", *args, "--bootstrap", f"127.0.0.1:{free_port()}")
        assert_one_line(run, "no Kafka broker answered", code=3)
