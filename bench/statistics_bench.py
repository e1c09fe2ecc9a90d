"""Time the survival estimators at registry size (100,000 subjects, every time distinct: the worst case).

Run: .venv/bin/python bench/statistics_bench.py   (no database needed)
"""

import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reports.statistics import aalen_johansen, kaplan_meier  # noqa: E402


def timed(function, repeats=5):
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        runs.append(time.perf_counter() - start)
    return min(runs), statistics.median(runs), max(runs)


def main():
    rng = np.random.default_rng(2024)
    n = 100_000
    exits = rng.exponential(400.0, n)
    events = (rng.random(n) < 0.5).astype(int)
    statuses = rng.choice([0, 1, 2], n, p=[0.5, 0.2, 0.3])
    entries = np.where(rng.random(n) < 0.3, exits * rng.random(n) * 0.9, 0.0)
    days = np.floor(exits)
    cases = {
        "kaplan_meier, distinct times": lambda: kaplan_meier(exits, events),
        "kaplan_meier, distinct times, delayed entry": lambda: kaplan_meier(exits, events, entries=entries),
        "aalen_johansen, distinct times": lambda: aalen_johansen(exits, statuses),
        "aalen_johansen, distinct times, delayed entry": lambda: aalen_johansen(exits, statuses, entries=entries),
        "aalen_johansen, whole days, delayed entry": lambda: aalen_johansen(
            days, statuses, entries=np.floor(entries) - 0.5
        ),
    }
    print(f"{'estimator (100,000 subjects)':50} {'min':>8} {'median':>8} {'max':>8}")
    for label, function in cases.items():
        low, mid, high = timed(function)
        print(f"{label:50} {low:8.3f} {mid:8.3f} {high:8.3f}")


if __name__ == "__main__":
    main()
