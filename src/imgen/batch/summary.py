"""What a batch job did: the summary `run_batch` returns and the command prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgen.batch.inputs import BadRow, row_noun

__all__ = ["BatchInterrupted", "BatchSummary"]

_BAD_ROWS_LISTED = 5


@dataclass
class BatchSummary:
    """The counts of one run of a batch job.

    Attributes:
        output_dir: The dataset's folder.
        prompts: Where the prompts came from.
        rows_total: Rows with a prompt in the source.
        rows_done: Rows completed by this run.
        rows_skipped: Rows an earlier run completed.
        rows_failed: Rows that failed in this run; they are in errors.jsonl and are retried
            by the next run.
        bad_rows: Source rows skipped as malformed or without a prompt.
        images_written: Images this run added to the dataset.
        seconds: How long the run took.
        interrupted: Whether Ctrl-C stopped the run; the next run resumes it.
    """

    output_dir: Path
    prompts: str
    rows_total: int = 0
    rows_done: int = 0
    rows_skipped: int = 0
    rows_failed: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    images_written: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def images_per_second(self) -> float:
        """Images written per second of the run."""
        return self.images_written / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        """Whether every row with a prompt is in the dataset now."""
        return self.rows_done + self.rows_skipped == self.rows_total

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data."""
        data = asdict(self)
        data["output_dir"] = str(self.output_dir)
        data["images_per_second"] = round(self.images_per_second, 3)
        return data

    def __str__(self) -> str:
        status = "Interrupted" if self.interrupted else "Finished"
        lines = [
            f"{status} in {self.seconds:.1f}s: {self.rows_done} rows done, "
            f"{self.rows_skipped} skipped (done before), {self.rows_failed} failed; "
            f"{self.images_written} images, {self.images_per_second:.1f} images/s.",
            f"Dataset: {self.output_dir}",
        ]
        if self.bad_rows:
            shown = self.bad_rows[:_BAD_ROWS_LISTED]
            noun = row_noun(self.prompts)
            listed = "; ".join(f"{noun} {bad.row}: {bad.reason}" for bad in shown)
            more = len(self.bad_rows) - _BAD_ROWS_LISTED
            lines.append(
                f"Skipped {len(self.bad_rows)} bad rows of {self.prompts} ({listed}"
                + (f"; and {more} more" if more > 0 else "")
                + ")."
            )
        if self.rows_failed:
            lines.append(
                f"Failures are in {self.output_dir / 'errors.jsonl'}; run again to retry them."
            )
        elif self.interrupted:
            lines.append("Run the same command again to resume.")
        return "\n".join(lines)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a batch job cleanly; the next run resumes it.

    Attributes:
        summary: What the run did before it stopped.
    """

    def __init__(self, summary: BatchSummary) -> None:
        super().__init__(str(summary))
        self.summary = summary
