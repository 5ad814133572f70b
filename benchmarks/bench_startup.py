"""
Start-up benchmark: how long a fresh ``python3`` takes to import stacksim, print its help and run a scenario.

Each command runs in a new process; the rows are interleaved (one of each, then the next
round), and the table shows the best and the median of N rounds, with each best divided by the
best of ``python3 -c "import trio"``, the floor any trio-based command pays. The commands run this
checkout's stacksim (``PYTHONPATH`` is set to it), with ``python3 -m stacksim`` standing for the
``stacksim`` console script.

Bytecode: an installed stacksim starts from ``.pyc`` files, so by default the children keep
them in a temporary cache (``PYTHONPYCACHEPREFIX``; nothing is written beside the sources), filled
by one unmeasured warm-up round. ``--no-pyc`` sets ``PYTHONDONTWRITEBYTECODE=1`` instead, so every
start compiles stacksim's sources again (as where that variable is set, e.g. some containers).

Run on demand, not in the test suite:

    python3 benchmarks/bench_startup.py             # N = 15, ~20 s
    python3 benchmarks/bench_startup.py --rounds 5
    python3 benchmarks/bench_startup.py --no-pyc    # compile on every start
    python3 benchmarks/bench_engine.py --startup    # the same table
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SCENARIO = "scenarios/crash-nvme-bitlocker.toml"
"""The scenario the README runs first."""

COMMANDS: dict[str, list[str]] = {
    'python3 -c "pass"': ["-c", "pass"],
    'python3 -c "import trio"': ["-c", "import trio"],
    'python3 -c "import stacksim"': ["-c", "import stacksim"],
    "python3 -m stacksim --help": ["-m", "stacksim", "--help"],
    f"python3 -m stacksim run {DEFAULT_SCENARIO}": ["-m", "stacksim", "run", DEFAULT_SCENARIO],
}
BASELINE = 'python3 -c "import trio"'


def wall_s(args: list[str], env: dict[str, str]) -> float:
    """Wall time of one fresh ``python3 *args*`` in seconds (its output discarded; it must exit 0)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def measure(rounds: int, *, pyc: bool = True) -> dict[str, list[float]]:
    """Every command's wall times over *rounds* interleaved rounds (one run of each per round), with or without .pyc files."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    env |= {"PYTHONPATH": str(ROOT), "COLUMNS": "100"}
    with tempfile.TemporaryDirectory(prefix="stacksim-pyc-") as cache:
        env |= {"PYTHONPYCACHEPREFIX": cache} if pyc else {"PYTHONDONTWRITEBYTECODE": "1"}
        times: dict[str, list[float]] = {name: [] for name in COMMANDS}
        for args in COMMANDS.values():  # warm the file cache (and fill the .pyc cache); not counted
            wall_s(args, env)
        for _ in range(rounds):
            for name, args in COMMANDS.items():
                times[name].append(wall_s(args, env))
    return times


def report(times: dict[str, list[float]], *, pyc: bool = True) -> None:
    """Print the table: best and median in ms, and each best ÷ the best of ``import trio``."""
    base = min(times[BASELINE])
    rounds = len(times[BASELINE])
    cache = "from cached .pyc files" if pyc else "compiling stacksim's sources every time (PYTHONDONTWRITEBYTECODE=1)"
    print(f"start-up: fresh processes {cache}, {rounds} interleaved rounds; ratio = best ÷ best of {BASELINE}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("\n| command | best ms | median ms | ÷ import trio |")
    print("|---|---|---|---|")
    for name, walls in times.items():
        best = min(walls)
        print(f"| `{name}` | {best * 1e3:.0f} | {statistics.median(walls) * 1e3:.0f} | {best / base:.2f} |")


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    ap.add_argument("--no-pyc", action="store_true", help="no bytecode cache: every start compiles stacksim's sources")
    args = ap.parse_args(argv)
    report(measure(args.rounds, pyc=not args.no_pyc), pyc=not args.no_pyc)


if __name__ == "__main__":
    main()
