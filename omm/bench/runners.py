"""Which Beam runner a benchmark runs on, and the memory of the processes that hold its state.

FnApiRunner (the default) keeps state in this process. Prism keeps it in its own
process (a Go binary started by the SDK); with the LOOPBACK environment the
Python workers run in this process, so the memory a run adds is this process's
growth plus Prism's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# Where `make prism` (Beam's Go runner, built from the Go module proxy) leaves its binary;
# OMM_PRISM or --prism-location wins.
DEFAULT_PRISM = Path.home() / ".cache" / "omm" / "prism-2.77.0" / "prism"


@dataclass(frozen=True)
class Runner:
    name: str  # "fnapi" or "prism"
    prism_location: str | None = None

    @property
    def label(self) -> str:
        return "FnApiRunner" if self.name == "fnapi" else "Prism"

    def args(self) -> list[str] | None:
        """Arguments for pipeline_args_with_defaults (None: its default, the FnApiRunner)."""
        if self.name == "fnapi":
            return None
        return [
            "--runner=PrismRunner",
            f"--prism_location={self.prism_location}",
            "--environment_type=LOOPBACK",
        ]


def runner(name: str, prism_location: str | None) -> Runner:
    if name == "fnapi":
        return Runner("fnapi")
    location = prism_location or os.environ.get("OMM_PRISM") or str(DEFAULT_PRISM)
    if not Path(location).is_file():
        raise SystemExit(
            f"no Prism binary at {location}: build it (`make prism`) or pass --prism-location"
        )
    return Runner("prism", location)


def _rss_of(pid: int | str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # the process ended between the listing and the read
        return 0
    return 0


def prism_rss() -> int:
    """Resident memory of this process's Prism children (none on the FnApiRunner). Only
    Prism's: the embedded Kafka broker may be a child too, and its heap is not state."""
    me = str(os.getpid())
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii") as stat:
                # the command may hold spaces and parentheses: the ppid follows the last ')'
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me and _is_prism(entry):
            total += _rss_of(entry)
    return total


def _is_prism(pid: str) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            program = cmdline.read().split(b"\0", 1)[0]
    except OSError:
        return False
    return Path(program.decode(errors="replace")).name == "prism"


def rss_bytes() -> int:
    """This process's resident memory plus its Prism children's."""
    return _rss_of("self") + prism_rss()


def load_average() -> str:
    """The machine's load (1, 5, 15 min) as /proc/loadavg says, printed beside every figure."""
    with open("/proc/loadavg", encoding="ascii") as loadavg:
        return " ".join(loadavg.read().split()[:3])
