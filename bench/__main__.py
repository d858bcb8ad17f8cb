"""`python -m bench [NAME ...]`: run the benchmarks, print the table, write docs/benchmarks.md.

With no names, every suite runs and the report page is rewritten.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path

from bench.harness import Row

SUITES = [
    "core",
    "registry",
    "cli",
    "images",
    "openai",
    "hf_inference",
    "diffusers",
    "batch",
    "batch_memory",
]
REPORT = Path(__file__).parent.parent / "docs" / "benchmarks.md"
INTRO = """\
# Benchmarks

Written by `nox -s bench`. Every row measures imgen and its baseline side by side in the same
run, alternating, and reports medians. The ratio is imgen / baseline: for throughputs higher
is better, for times lower is better. A row that misses its target says so, and why, in its
comment. See [how the benchmarks work](benchmarks-howto.md).
"""


def machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


def table(rows: list[Row]) -> str:
    lines = [
        "| benchmark | imgen (median) | baseline (median) | ratio | target | comment |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.benchmark} | {r.subject} | {r.baseline} | {r.ratio:.2f}x | {r.target} | "
        f"{r.verdict} |"
        for r in rows
    ]
    missed = [r for r in rows if r.misses_target]
    with_target = [r for r in rows if r.target != "report"]
    lines += ["", f"{len(missed)} of {len(with_target)} rows with a target miss it."]
    return "\n".join(lines)


def main(names: list[str]) -> None:
    rows: list[Row] = []
    for name in names or SUITES:
        print(f"running bench.{name} ...", file=sys.stderr, flush=True)
        rows.extend(importlib.import_module(f"bench.{name}").run())
    body = table(rows)
    print(body)
    for row in rows:
        if row.misses_target and not row.comment:
            print(f"warning: no comment explains the miss of: {row.benchmark}", file=sys.stderr)
    if not names:
        REPORT.write_text(f"{INTRO}\nMachine: {machine()}.\n\n{body}\n")


if __name__ == "__main__":
    main(sys.argv[1:])
