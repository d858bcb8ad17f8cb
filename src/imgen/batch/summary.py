"""What a batch job did: the summary `run_batch` returns and the command prints."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imgen.batch.inputs import BadRow, row_noun
from imgen.errors import ImgenError

__all__ = ["BatchInterrupted", "BatchStopped", "BatchSummary"]

_BAD_ROWS_LISTED = 5


@dataclass
class BatchSummary:
    """The counts of one run of a batch job.

    Attributes:
        output_dir: The dataset's folder, or its URL (a Parquet dataset on S3, say).
        prompts: Where the prompts came from.
        rows_total: Rows with a prompt in the source.
        rows_done: Rows completed by this run.
        rows_skipped: Rows an earlier run completed.
        rows_failed: Rows that failed in this run; they are in errors.jsonl and are retried
            by the next run.
        bad_rows: Source rows skipped as malformed or without a prompt.
        images_written: Images this run added to the dataset.
        seconds: How long the run took.
        interrupted: Whether Ctrl-C or a signal (`signal`) stopped the run; the next run
            resumes it.
        signal: The signal that stopped the run ("SIGINT" for Ctrl-C, "SIGTERM"...), if any.
        seed: The job seed every image's seed derives from; None when the backend takes no
            seed. It is kept in job.json, and the next run reuses it.
        dataset_format: "imagefolder" or "parquet".
    """

    output_dir: Path | str
    prompts: str
    rows_total: int = 0
    rows_done: int = 0
    rows_skipped: int = 0
    rows_failed: int = 0
    bad_rows: list[BadRow] = field(default_factory=list)
    images_written: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    signal: str | None = None
    seed: int | None = None
    dataset_format: str = "imagefolder"

    @property
    def errors_location(self) -> str:
        """Where the failures of the run are listed: errors.jsonl in the dataset."""
        if isinstance(self.output_dir, Path):
            return str(self.output_dir / "errors.jsonl")
        return f"{self.output_dir.rstrip('/')}/errors.jsonl"

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
        cause = f" by {self.signal}" if self.interrupted and self.signal else ""
        lines = [
            f"{status} in {self.seconds:.1f}s{cause}: {self.rows_done} rows done, "
            f"{self.rows_skipped} skipped (done before), {self.rows_failed} failed; "
            f"{self.images_written} images, {self.images_per_second:.1f} images/s.",
            f"Dataset: {self.output_dir}",
        ]
        if self.seed is not None:
            where = "metadata.jsonl" if self.dataset_format == "imagefolder" else "its row"
            lines.append(f"Job seed: {self.seed} (each image's own seed is in {where}).")
        if self.bad_rows:
            shown = self.bad_rows[:_BAD_ROWS_LISTED]
            noun = row_noun(self.prompts)
            listed = "; ".join(f"{noun} {bad.row}: {bad.reason}" for bad in shown)
            more = len(self.bad_rows) - _BAD_ROWS_LISTED
            rows = "row" if len(self.bad_rows) == 1 else "rows"
            lines.append(
                f"Skipped {len(self.bad_rows)} bad {rows} of {self.prompts} ({listed}"
                + (f"; and {more} more" if more > 0 else "")
                + ")."
            )
        if self.rows_failed:
            lines.append(f"Failures are in {self.errors_location}; run again to retry them.")
        elif self.interrupted:
            lines.append("Run the same command again to resume.")
        return "\n".join(lines)


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C or a signal (SIGTERM, SIGHUP) stopped a batch job cleanly; the next run resumes it.

    Attributes:
        summary: What the run did before it stopped.
        signum: The number of the signal that stopped it.
    """

    def __init__(self, summary: BatchSummary, signum: int) -> None:
        super().__init__(str(summary))
        self.summary = summary
        self.signum = signum


class BatchStopped(ImgenError):
    """A fault of the job itself stopped it: its dataset could not be written (a full disk, a
    removed folder). What was written is kept; the next run resumes.

    Attributes:
        summary: What the run did before it stopped.
    """

    def __init__(self, summary: BatchSummary, cause: OSError) -> None:
        super().__init__(
            f"The job stopped: cannot write the dataset in {str(summary.output_dir)!r}: "
            f"{cause.strerror or cause}"
            + (f" ({cause.filename})" if cause.filename else "")
            + ". What was written is kept: fix the cause and run the same command again to "
            "resume."
        )
        self.summary = summary
