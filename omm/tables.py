"""Rich tables that never cut a name short, and the account tables the CLI and the
demo both print (one place, so neither imports the other).

Rich's default overflow is an ellipsis, and a topic name is one long word, so on
an 80-column terminal (or any pipe, which rich treats as 80 columns) a prefixed
``omm.feed.amazon_cn.listings`` lost its end. Here nothing is ever replaced by
an ellipsis: text cells fold (the rest continues on the next line of the cell),
the widest text column giving way first when the terminal is narrow; count
columns keep their width, since a number split over two lines misreads.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
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


def print_enforce_account(account: Any, console: Console) -> None:
    """Enforce's account, in = keyed + unkeyed + dead letters + disputes (decisions on
    disputed tasks, left to comply) with the regulator's decisions among what was
    read; then what it emitted. Two tables, so each fits 80 columns (a pipe's width)."""
    read = ("in", "decisions", "keyed", "unkeyed", "dead letters", "disputes")
    account_table = table(
        *read, "balanced", counts=read,
        title="enforce account (in = keyed + unkeyed + dead letters + disputes for comply)",
    )  # fmt: skip
    account_table.add_row(
        *(
            str(getattr(account, f))
            for f in ("read", "decisions", "keyed", "unkeyed", "dead", "disputes")
        ),
        "[green]yes[/green]" if account.balanced else "[red]NO[/red]",
    )
    console.print(account_table)
    made = ("tasks", "reviews", "withdrawn")
    made_table = table(*made, counts=made, title="enforce output")
    made_table.add_row(*(str(getattr(account, f)) for f in made))
    console.print(made_table)


def print_comply_account(account: Any, console: Console) -> None:
    """Comply's account: in = tracked + untracked + dead letters, and what it published."""
    counts = ("in", "tracked", "untracked", "dead letters", "statuses", "deadlines", "scorecards")
    account_table = table(
        "in", "tracked", "untracked", "dead letters", "balanced",
        "statuses", "deadlines", "scorecards",
        counts=counts, title="comply account (in = tracked + untracked + dead letters)",
    )  # fmt: skip
    account_table.add_row(
        *(str(getattr(account, f)) for f in ("read", "tracked", "untracked", "dead")),
        "[green]yes[/green]" if account.balanced else "[red]NO[/red]",
        *(str(getattr(account, f)) for f in ("statuses", "deadlines_fired", "scorecards")),
    )
    console.print(account_table)


def print_intel_account(account: Any, console: Console) -> None:
    """Intel's account: in = complaints + penalties + inspections + listings + dead letters;
    then what it published, and what arrived too late for a window already published."""
    read = ("in", "complaints", "penalties", "inspections", "listings", "dead letters")
    fields = ("read", "complaints", "penalties", "inspections", "listings", "dead")
    account_table = table(
        *read, "balanced", counts=read,
        title="intel account (in = complaints + penalties + inspections + listings + dead letters)",
    )  # fmt: skip
    account_table.add_row(
        *(str(getattr(account, f)) for f in fields),
        "[green]yes[/green]" if account.balanced else "[red]NO[/red]",
    )
    console.print(account_table)
    made = ("sampling", "leads", "comp. first", "credit events", "flags", "late")
    made_fields = (
        "recommendations", "leads", "compensation_first", "credit_events", "flags", "late",
    )  # fmt: skip
    made_table = table(*made, counts=made, title="intel output")
    made_table.add_row(*(str(getattr(account, f)) for f in made_fields))
    console.print(made_table)


def print_accounts(accounts: list[Any], console: Console) -> None:
    """Ingest's account per source topic: in = valid + quarantined + dead letters."""
    account_table = table(
        "source topic", "in", "valid", "quarantined", "dead letters", "balanced",
        counts=("in", "valid", "quarantined", "dead letters"),
        title="ingest account (in = valid + quarantined + dead letters)",
    )  # fmt: skip
    for a in accounts:
        account_table.add_row(
            a.topic,
            str(a.read),
            str(a.valid),
            str(a.quarantined),
            str(a.dead),
            "[green]yes[/green]" if a.balanced else "[red]NO[/red]",
        )
    total = [sum(getattr(a, f) for a in accounts) for f in ("read", "valid", "quarantined", "dead")]
    account_table.add_row("[b]total[/b]", *map(str, total), "", end_section=True)
    console.print(account_table)
