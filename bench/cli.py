"""CLI startup benchmark: `imgen backends` (discovery, every plugin's hook, the table) against
`python -c "import imgen"`, each as fresh processes, alternating."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.harness import Row, processes_side_by_side, python

# The console script pip installed beside this interpreter.
IMGEN = str(Path(sys.executable).with_name("imgen"))


def run(runs: int = 10) -> list[Row]:
    """Median wall time of `imgen backends` and of `import imgen`, and their ratio."""
    subject, baseline = processes_side_by_side([IMGEN, "backends"], python("import imgen"), runs)
    return [
        Row(
            "`imgen backends` (fresh process) vs `python -c 'import imgen'`",
            f"{subject * 1000:.0f} ms",
            f"{baseline * 1000:.0f} ms",
            subject / baseline,
            "<= 1.5x",
            comment="Discovery as in the registry rows, plus importing click and the command.",
        )
    ]


if __name__ == "__main__":
    for row in run():
        print(row)
