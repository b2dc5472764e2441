"""Where a key lives in a stateful stage: its shard, and its slot in an ordered list.

Comply and intel keep many small per-key states in few Beam keys (shards), each shard's
states in an ordered-list state used as a map: a key's slot is a timestamp derived from
its digest. Both must place a key the same way on every runner and every replay, so the
digest is a stable hash (never Python's salted ``hash``).
"""

from __future__ import annotations

import hashlib

from apache_beam.utils.timestamp import Timestamp


def digest(text: str) -> int:
    """A stable 64-bit digest of ``text``."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def shard_of(key: str, shards: int) -> int:
    return digest(key) % shards


def slot(key: str, room: int = 1) -> Timestamp:
    """The key's place in its shard's ordered list: 40 bits of its digest, times ``room``
    (places for versions of its entry), within the ordered list's range. Equal slots
    (rare) share one entry list, so readers keep each entry's key beside its value."""
    return Timestamp(micros=(digest("slot|" + key) >> 24) * room)
