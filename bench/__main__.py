"""`python -m bench [NAME ...]`: run the benchmarks, print the table, write docs/benchmarks.md."""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from harness import Row  # noqa: E402

SUITES = ["core", "registry", "cli", "openai", "diffusers", "batch"]
REPORT = HERE.parent / "docs" / "benchmarks.md"


def machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | imgen (median) | baseline (median) | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row.benchmark} | {row.subject} | {row.baseline} | "
            f"{row.ratio:.2f}x | {row.target} |"
        )
    return "\n".join(lines)


def main(names: list[str]) -> None:
    rows: list[Row] = []
    for name in names or SUITES:
        print(f"running bench/{name}.py ...", file=sys.stderr, flush=True)
        rows.extend(importlib.import_module(name).run())
        print(table(rows), file=sys.stderr)
    body = table(rows)
    print(body)
    if not names:
        REPORT.parent.mkdir(exist_ok=True)
        REPORT.write_text(
            "# Benchmarks\n\n"
            "Produced by `nox -s bench`, which writes this page. Every row measures imgen and its\n"
            "baseline side by side in the same run, alternating, and reports medians; the ratio\n"
            "is imgen / baseline (for throughputs, higher is better; for times, lower is better).\n\n"
            f"Machine: {machine()}.\n\n{body}\n"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
