"""Shared helpers for the benchmarks: timing, medians and the rows of the report."""

from __future__ import annotations

import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgen import AsyncImageGenerationModel


@dataclass(frozen=True)
class Row:
    """One comparison: a subject measured side by side with its baseline.

    Attributes:
        benchmark: What is compared, e.g. "import imgen vs its dependency floor".
        subject: The subject's median, formatted with its unit.
        baseline: The baseline's median, formatted with its unit.
        ratio: subject / baseline for times (lower is better), or subject / baseline for
            throughputs (higher is better), as `kind` says.
        target: The issue's target: a ratio ("<= 1.2x", ">= 0.95x"), a time of the subject
            ("<= 80 ms", which needs `subject_ms`), or "report" for none.
        kind: "time" or "throughput".
        comment: What explains the ratio: where the gap comes from, why a target may be
            missed. The report shows it beside the row, and marks a row that misses its target
            without one.
        subject_ms: The subject's median in milliseconds, for a target in milliseconds.
    """

    benchmark: str
    subject: str
    baseline: str
    ratio: float
    target: str
    kind: str = "time"
    comment: str = ""
    subject_ms: float | None = None

    @property
    def misses_target(self) -> bool:
        """Whether the ratio is on the wrong side of the target; False for "report" rows.

        Raises:
            ValueError: The target is none of "report", "<= Nx", ">= Nx" and "<= N ms", or is
                in milliseconds for a row without `subject_ms`.
        """
        if self.target == "report":
            return False
        match = _TARGET.fullmatch(self.target)
        if match is None:
            raise ValueError(
                f"Unknown target {self.target!r}: use '<= 1.2x', '>= 0.95x', '<= 80 ms' or "
                "'report'."
            )
        if match["unit"] == "x":
            measured = self.ratio
        elif self.subject_ms is None:
            raise ValueError(f"The target {self.target!r} needs the row's subject_ms.")
        else:
            measured = self.subject_ms
        bound = float(match["bound"])
        return measured > bound if match["op"] == "<=" else measured < bound

    @property
    def verdict(self) -> str:
        """The report's comment cell: the comment, flagged when the row misses its target."""
        if not self.misses_target:
            return self.comment
        return f"**Misses its target.** {self.comment or 'No comment says why yet.'}"


_TARGET = re.compile(r"(?P<op><=|>=) ?(?P<bound>\d+(\.\d+)?) ?(?P<unit>x|ms)")


def side_by_side(
    subject: Callable[[], float], baseline: Callable[[], float], rounds: int
) -> tuple[float, float]:
    """Medians of `subject` and `baseline`, measured alternately so drift hits both alike."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(subject())
        theirs.append(baseline())
    return statistics.median(ours), statistics.median(theirs)


def python(*code: str) -> list[str]:
    """argv for a fresh interpreter running `code` (one statement per item)."""
    return [sys.executable, "-c", "; ".join(code)]


def processes_side_by_side(
    subject: Sequence[str], baseline: Sequence[str], runs: int = 10
) -> tuple[float, float]:
    """Median wall times of fresh processes, subject and baseline alternating."""

    def once(argv: Sequence[str]) -> Callable[[], float]:
        def run() -> float:
            start = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
            return time.perf_counter() - start

        return run

    return side_by_side(once(subject), once(baseline), runs)


async def imgen_throughput(model: AsyncImageGenerationModel, prompts: list[str]) -> float:
    """Prompts per second of one `agenerate_outputs` batch (one image each)."""
    start = time.perf_counter()
    outputs = await model.agenerate_outputs(prompts)
    elapsed = time.perf_counter() - start
    assert len(outputs) == len(prompts)
    return len(prompts) / elapsed
