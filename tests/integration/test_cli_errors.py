"""Errors a user makes get one line with the fix to try, a non-zero exit, and no traceback.

The commands run as a user runs them: the installed ``omm`` in a subprocess, so the
whole stderr (interpreter start, imports, logging) is what is checked, and the wall
time includes everything the user waits for. Tracebacks only with ``omm --debug``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.broker.manager import free_port
from omm.generate import FeedGenerator
from tests.helpers import fresh_namespace, read_all

pytestmark = pytest.mark.integration

OMM = Path(sys.executable).with_name("omm")
# an unreachable bootstrap must be told within this (the probe's default is 5 s)
BOUND_S = 15.0


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


def omm(*args: str, timeout_s: float = 120.0) -> Run:
    env = {**os.environ, "COLUMNS": "400"}
    env.pop("OMM_DEBUG", None)
    started = time.monotonic()
    done = subprocess.run(
        [str(OMM), *args], capture_output=True, text=True, env=env, timeout=timeout_s, check=False
    )
    return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)


def assert_one_line(run: Run, *expected: str, code: int) -> str:
    """The run failed with exactly one stderr line holding every expected fragment."""
    assert run.code == code, run
    assert "Traceback" not in run.stderr, run.stderr
    assert len(run.error_lines) == 1, run.stderr
    (line,) = run.error_lines
    assert line.startswith("error: "), line
    for fragment in expected:
        assert fragment in line, (fragment, line)
    return line


@pytest.fixture(scope="module")
def closed_port_bootstrap() -> str:
    """A free port on localhost: nothing listens there, the connection is refused."""
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def listing_file(tmp_path: Path) -> Path:
    path = tmp_path / "listings.jsonl"
    path.write_text('{"listing_id": "jd-L1"}\n', encoding="utf-8")
    return path


# ------------------------------------------------------------------ broker unreachable


@pytest.mark.parametrize(
    "command",
    [
        ["push", "listings", "{file}", "--platform", "jd"],
        ["publish", "inspections", "{file}"],
        ["topics", "create"],
        ["tail", "omm.dlq", "--timeout", "1"],
        ["run", "ingest", "--until-idle", "1"],
        ["run", "enforce", "--until-idle", "1"],
        ["run", "all", "--until-idle", "1"],
        ["report", "feeds", "--out", "{dir}"],
        ["report", "compliance", "--out", "{dir}"],
    ],
    ids=lambda c: " ".join(w for w in c if not w.startswith("{")),
)
def test_an_unreachable_bootstrap_is_one_line_within_seconds(
    command: list[str], closed_port_bootstrap: str, listing_file: Path, tmp_path: Path
) -> None:
    args = [a.format(file=listing_file, dir=tmp_path / "docs") for a in command]

    run = omm(*args, "--bootstrap", closed_port_bootstrap)

    assert_one_line(run, closed_port_bootstrap, "omm broker start", "--bootstrap", code=3)
    assert run.seconds < BOUND_S, run.seconds


def test_the_probe_timeout_is_a_setting(closed_port_bootstrap: str, listing_file: Path) -> None:
    env_run = subprocess.run(
        [str(OMM), "push", "listings", str(listing_file), "-p", "jd"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "OMM_KAFKA_BOOTSTRAP": closed_port_bootstrap,
            "OMM_KAFKA_PROBE_TIMEOUT_S": "1.5",
        },
        timeout=60,
        check=False,
    )

    assert env_run.returncode == 3, env_run.stderr
    assert f"no Kafka broker answered at {closed_port_bootstrap} within 1.5s" in env_run.stderr


def test_debug_shows_the_traceback_and_still_the_one_line(
    closed_port_bootstrap: str, listing_file: Path
) -> None:
    run = omm("--debug", "push", "listings", str(listing_file), "-p", "jd",
              "--bootstrap", closed_port_bootstrap)  # fmt: skip

    assert run.code == 3
    assert "Traceback (most recent call last)" in run.stderr
    assert "KafkaTimeoutError" in run.stderr and "BrokerUnreachable" in run.stderr
    assert run.error_lines[-1].startswith("error: no Kafka broker answered")


def test_a_bootstrap_that_is_not_host_port_is_one_line(listing_file: Path) -> None:
    run = omm("push", "listings", str(listing_file), "-p", "jd", "--bootstrap", "localhost:kafka")

    assert_one_line(run, "'localhost:kafka'", "--bootstrap HOST:PORT", code=2)


# ------------------------------------------------------------------ topics not created


def test_pushing_before_topics_create_is_one_line_naming_the_command(
    kafka_bootstrap: str, listing_file: Path
) -> None:
    run = omm("push", "listings", str(listing_file), "-p", "jd",
              "--bootstrap", kafka_bootstrap, "--prefix", "nosuch.")  # fmt: skip

    assert_one_line(
        run, "'nosuch.omm.feed.jd.listings'", "`omm topics create --prefix nosuch.`", code=2
    )
    assert run.seconds < BOUND_S, run.seconds  # it used to wait 60 s for the metadata


@pytest.mark.parametrize("stage", ["ingest", "enforce", "all"])
def test_a_run_with_a_prefix_nobody_created_is_one_line(kafka_bootstrap: str, stage: str) -> None:
    run = omm("run", stage, "--until-idle", "1", "--bootstrap", kafka_bootstrap,
              "--prefix", "nosuch.")  # fmt: skip

    line = assert_one_line(run, "`omm topics create --prefix nosuch.`", "--prefix", code=2)
    assert "'nosuch.omm." in line


def test_tail_of_a_topic_that_does_not_exist_is_one_line(kafka_bootstrap: str) -> None:
    run = omm("tail", "omm.no-such-topic", "--bootstrap", kafka_bootstrap)

    assert_one_line(run, "'omm.no-such-topic'", "does not exist", "omm topics list", code=2)


# ------------------------------------------------------------------ the file


def test_a_directory_given_as_file_is_one_line(tmp_path: Path, closed_port_bootstrap: str) -> None:
    # the file is read before the broker is asked: no broker needed to be told
    run = omm("push", "listings", str(tmp_path), "-p", "jd", "--bootstrap", closed_port_bootstrap)

    assert_one_line(run, str(tmp_path), "is a directory", ".jsonl or .csv", code=2)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_gbk_encoded_file_is_one_line_naming_the_line_and_the_fix(
    tmp_path: Path, closed_port_bootstrap: str, suffix: str
) -> None:
    path = tmp_path / f"listings{suffix}"
    header = "listing_id,title\n" if suffix == ".csv" else '{"listing_id": "jd-L0"}\n'
    body = "jd-L1,美的电饭煲\n" if suffix == ".csv" else '{"title": "美的电饭煲"}\n'
    path.write_bytes(header.encode("ascii") + body.encode("gbk"))

    run = omm("push", "listings", str(path), "-p", "jd", "--bootstrap", closed_port_bootstrap)

    assert_one_line(run, str(path), "not UTF-8", "line 2", "GBK", "CSV UTF-8", code=2)


def test_a_missing_file_is_one_line(tmp_path: Path, closed_port_bootstrap: str) -> None:
    run = omm("push", "listings", str(tmp_path / "absent.jsonl"), "-p", "jd",
              "--bootstrap", closed_port_bootstrap)  # fmt: skip

    assert_one_line(run, "absent.jsonl", code=2)


# ------------------------------------------------------------------ which command takes which feed


@pytest.mark.parametrize("feed", ["inspections", "penalties"])
def test_push_refuses_a_regulator_feed_and_names_publish(
    kafka_bootstrap: str, listing_file: Path, feed: str
) -> None:
    topics = fresh_namespace(["jd"], kafka_bootstrap)
    inspection = FeedGenerator(seed=61).inspection(1)
    listing_file.write_text(json.dumps({"inspection_id": inspection["inspection_id"]}) + "\n")

    run = omm("push", feed, str(listing_file), "--platform", "jd",
              "--bootstrap", kafka_bootstrap, "--prefix", topics.prefix)  # fmt: skip

    assert_one_line(run, f"'{feed}' is a regulator feed", f"omm publish {feed}", code=2)
    assert read_all(kafka_bootstrap, topics.regulator(feed)) == []


def test_publish_refuses_a_platform_feed_without_asking_for_a_platform(
    kafka_bootstrap: str, listing_file: Path
) -> None:
    topics = fresh_namespace(["jd"], kafka_bootstrap)

    run = omm("publish", "listings", str(listing_file),
              "--bootstrap", kafka_bootstrap, "--prefix", topics.prefix)  # fmt: skip

    line = assert_one_line(run, "'listings' is a platform feed", "omm push listings", code=2)
    assert "needs --platform" not in line
    assert read_all(kafka_bootstrap, topics.feed("jd", "listings")) == []


def test_the_help_of_push_and_publish_offers_only_their_own_feeds() -> None:
    push_help, publish_help = omm("push", "--help"), omm("publish", "--help")

    assert push_help.code == 0 and publish_help.code == 0
    assert "listings | complaints | takedowns" in push_help.stdout
    assert "inspections" not in push_help.stdout and "penalties" not in push_help.stdout
    assert "inspections | penalties" in publish_help.stdout
    assert "--platform" not in publish_help.stdout
