"""Enforce warms its writer before it reads: the first FAIL after start must not wait
for the producer to fetch the metadata of ten task topics, one send at a time.

The latency itself is measured by ``python -m omm.bench`` (first FAIL apart from the
steady ones); these tests hold the mechanism: after the encoder's ``setup``, the
producer the writer shares already knows every task topic, and Enforce wires the
warm-up to that writer for every platform of the job.
"""

from __future__ import annotations

import uuid

import apache_beam as beam
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from connectors.sink import KafkaSink
from omm.config import load_platforms
from omm.jobs import enforce_job
from pipelines.enforce import Enforce, WriterWarmUp, _EncodeFn
from tests.helpers import fresh_namespace

pytestmark = pytest.mark.integration

CREATED = ["tmall", "jd", "suning"]


def _known(sink: KafkaSink, topic: str) -> bool:
    # the metadata a send to the topic would otherwise wait for
    return sink.knows(topic)


def test_the_writer_knows_every_task_topic_after_setup(kafka_bootstrap: str) -> None:
    topics = fresh_namespace(CREATED, kafka_bootstrap)
    job = enforce_job(kafka_bootstrap, topics)
    assert set(CREATED) < set(job.platforms)  # some platforms' topics were never created
    warm = WriterWarmUp(
        f"test-{uuid.uuid4().hex}",
        job.kafka,
        (*(topics.tasks(p) for p in job.platforms), topics.review),
    )
    fn = _EncodeFn(topics, warm)
    fn.setup()
    # a second user of the sink, as the writer is: the same producer, counted
    sink = KafkaSink.acquire(
        warm.sink, kafka_bootstrap, None, {}, job.kafka.delivery, job.kafka.security
    )
    try:
        for platform in CREATED:
            assert _known(sink, topics.tasks(platform)), platform
        assert _known(sink, topics.review)
        # missing topics are left to the first send (not waited on, not invented)
        for platform in set(job.platforms) - set(CREATED):
            assert not _known(sink, topics.tasks(platform)), platform
        # and a topic nobody asked for is not known: the check above can fail
        assert not _known(sink, topics.dlq)
    finally:
        KafkaSink.release(warm.sink)
        fn.teardown()
    assert warm.sink not in KafkaSink._shared  # both users gone: producer closed


def test_enforce_warms_the_writer_of_its_tasks_for_every_platform(kafka_bootstrap: str) -> None:
    topics = fresh_namespace(CREATED, kafka_bootstrap)
    job = enforce_job(kafka_bootstrap, topics)
    assert job.platforms == tuple(load_platforms().ids)
    pipeline = beam.Pipeline(options=PipelineOptions([]))
    _ = pipeline | "Enforce" >> Enforce(job)
    encoders = [
        t.transform.fn
        for t in _walk(pipeline.transforms_stack[0])
        if isinstance(t.transform, beam.ParDo) and isinstance(t.transform.fn, _EncodeFn)
    ]
    assert len(encoders) == 1
    warm = encoders[0]._warm
    assert warm is not None
    assert set(warm.topics) == {topics.tasks(p) for p in job.platforms} | {topics.review}
    writers = [
        t.transform.fn
        for t in _walk(pipeline.transforms_stack[0])
        if isinstance(t.transform, beam.ParDo) and type(t.transform.fn).__name__ == "_WriteFn"
    ]
    # the warmed sink is the one the task writer produces with
    assert warm.sink in {w._sink_id for w in writers}


def _walk(node: beam.pipeline.AppliedPTransform) -> list[beam.pipeline.AppliedPTransform]:
    out = [node]
    for part in node.parts:
        out += _walk(part)
    return out
