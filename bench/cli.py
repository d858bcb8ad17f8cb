"""CLI benchmarks, each as fresh processes, alternating with its baseline.

- Startup: `imgen backends` (discovery, every plugin's hook, the table) against
  `python -c "import imgen"`.
- Logging: `imgen generate fake` logged to the SQLite log against the same with `--no-log`.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from bench.harness import Row, processes_side_by_side, python

# The console script pip installed beside this interpreter.
IMGEN = str(Path(sys.executable).with_name("imgen"))


def run(runs: int = 10) -> list[Row]:
    """Median wall times of both pairs, and their ratios."""
    subject, baseline = processes_side_by_side([IMGEN, "backends"], python("import imgen"), runs)
    rows = [
        Row(
            "`imgen backends` (fresh process) vs `python -c 'import imgen'`",
            f"{subject * 1000:.0f} ms",
            f"{baseline * 1000:.0f} ms",
            subject / baseline,
            "<= 1.5x",
            comment="Discovery as in the registry rows, plus importing click and the command.",
        )
    ]
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["IMGEN_USER_DIR"] = str(Path(scratch) / "user-dir")
        generate = [IMGEN, "generate", "fake", "a red fox", "-o", str(Path(scratch) / "out")]
        try:
            subject, baseline = processes_side_by_side(generate, [*generate, "--no-log"], runs)
        finally:
            del os.environ["IMGEN_USER_DIR"]
    rows.append(
        Row(
            "`imgen generate fake` logged vs `--no-log` (fresh process)",
            f"{subject * 1000:.0f} ms",
            f"{baseline * 1000:.0f} ms",
            subject / baseline,
            "<= 1.1x",
        )
    )
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
