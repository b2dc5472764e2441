"""`make bench` (``python -m omm.bench``): throughput and latency beside the raw limit
measured in the same run (limits.py), for ingest (ingest.py) and enforce (enforce.py)."""
