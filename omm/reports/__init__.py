"""Reports for regulators and operators: self-contained HTML pages.

A report is one HTML file a regulator can open on an air-gapped workstation or
attach to a letter: styles inline, charts as inline SVG drawn here, no script,
no font, image or stylesheet fetched from anywhere. Each page is rendered by a
pure function from decoded records to a string, so it is tested without Kafka.

- :mod:`~omm.reports.page`: the shared shell (styles, header), tables, formats and
  the SVG charts;
- :mod:`~omm.reports.compliance`: ``omm report compliance`` (scorecards and
  compliance status of every task);
- :mod:`~omm.reports.intel`: the compliance page's intelligence sections (targeted
  sampling, case leads, the serious-violation list with live listings);
- :mod:`~omm.reports.feeds`: ``omm report feeds`` (the latest health of every
  platform feed, failing feeds first, with the Great Expectations pages beside it).
"""
