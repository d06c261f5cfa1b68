"""``make fuzz``: the property-based fuzz tests (tests/fuzz) round after round, each with
fresh random seeds and more examples than make test gives them, until the time is up or a
property fails (Hypothesis then prints the smallest failing input and keeps it in
.hypothesis/ so that the next run tries it first)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--examples", type=int, default=2000, help="per property and round")
    args = parser.parse_args()
    deadline = time.monotonic() + args.minutes * 60
    env = {**os.environ, "HUBBUB_FUZZ_EXAMPLES": str(args.examples)}
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/fuzz", "-q", "-x", "-p", "no:cacheprovider"],
            cwd=ROOT,
            env=env,
        )
        print(f"fuzz round {rounds}: {time.monotonic() - started:.0f} s, exit {done.returncode}")
        if done.returncode != 0:
            return done.returncode
    print(f"fuzz: {rounds} rounds of {args.examples} examples per property, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
