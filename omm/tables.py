"""Rich tables that never cut a name short.

Rich's default overflow is an ellipsis, and a topic name is one long word, so on
an 80-column terminal (or any pipe, which rich treats as 80 columns) a prefixed
``omm.feed.amazon_cn.listings`` lost its end. Here nothing is ever replaced by
an ellipsis: text cells fold (the rest continues on the next line of the cell),
the widest text column giving way first when the terminal is narrow; count
columns keep their width, since a number split over two lines misreads.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table


def table(*headers: str, counts: Iterable[str] = (), title: str | None = None) -> Table:
    """Text columns fold instead of truncating; ``counts`` columns align right, unwrapped."""
    numeric = set(counts)
    unknown = numeric - set(headers)
    if unknown:
        raise ValueError(f"count columns {sorted(unknown)} are not among the headers")
    out = Table(title=title)
    for header in headers:
        if header in numeric:
            out.add_column(header, justify="right", no_wrap=True, overflow="fold")
        else:
            out.add_column(header, overflow="fold")
    return out
