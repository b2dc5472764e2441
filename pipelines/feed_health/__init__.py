"""Feed health: Great Expectations suites over batches of one platform's feed.

One package, split by job:

- :mod:`~pipelines.feed_health.suites`: the suites in ``config/expectations`` and the
  columns derived for them, typed and checked (pure);
- :mod:`~pipelines.feed_health.results`: the ``omm.feed.health`` record (pure);
- :mod:`~pipelines.feed_health.gx`: the Great Expectations adapter that judges a batch;
- :mod:`~pipelines.feed_health.stage`: the Beam stage ingest runs (batches, windows,
  quarantine);
- :mod:`~pipelines.feed_health.report` and :mod:`~pipelines.feed_health.offline_views`: Data
  Docs for regulators and platform engineers, from the records alone.
"""
