"""Tables fold long names instead of cutting them short with an ellipsis."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from omm.tables import table

NAME = "demo1764560000-ab12cd.omm.feed.amazon_cn.listings"


def rendered(width: int) -> str:
    out = io.StringIO()
    t = table("source topic", "in", "valid", "dead letters", counts=("in", "valid", "dead letters"))
    t.add_row(NAME, "123456", "120000", "456")
    Console(file=out, width=width).print(t)
    return out.getvalue()


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_a_long_name_is_folded_whole_and_the_counts_stay_intact(width: int) -> None:
    text = rendered(width)

    assert "…" not in text
    rows = [line.split("│") for line in text.splitlines() if line.startswith("│")]
    assert "".join(cells[1].strip() for cells in rows) == NAME
    assert [cells[2].strip() for cells in rows if cells[2].strip()] == ["123456"]
    assert max(len(line) for line in text.splitlines()) <= width


def test_count_columns_must_be_headers() -> None:
    with pytest.raises(ValueError, match="dead"):
        table("topic", "in", counts=("dead",))
