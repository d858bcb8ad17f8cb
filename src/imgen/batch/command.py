"""`imgen batch MODEL PROMPTS_FILE -o DIR`: the command line face of `run_batch`."""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Literal

import click

from imgen.batch.engines import ENGINE_NAMES, Engine
from imgen.batch.formats import DatasetFormat
from imgen.batch.inputs import FORMATS, PromptsFormat
from imgen.batch.job import run_batch
from imgen.batch.manifest import DATASET_FORMATS
from imgen.batch.summary import BatchInterrupted, BatchStopped, BatchSummary
from imgen.cli_complete import complete_model
from imgen.cli_logs import logged
from imgen.cli_options import (
    FIELDS_OPTION,
    GENERATION_KWARGS_OPTION,
    NUM_GENERATIONS_OPTION,
    UserError,
    build_model,
)
from imgen.cli_stdin import STDIN, stdin_prompts_text
from imgen.cli_user import choose_batch_model
from imgen.command_log import current_log
from imgen.signals import exit_code

__all__ = ["batch"]


def _echo(summary: BatchSummary, as_json: bool) -> None:
    current_log().batch_finished(summary)
    click.echo(json.dumps(summary.to_dict(), default=str) if as_json else str(summary))


@click.command()
@click.argument("model", metavar="[MODEL]", required=False, shell_complete=complete_model)
# A str, not a Path: `./-` names a file called "-", and a Path would make it `-` (stdin).
@click.argument(
    "prompts_file", metavar="PROMPTS_FILE", required=False, type=click.Path(allow_dash=True)
)
@click.option(
    "-o",
    "--output-dir",
    # A str, not a Path: a Path would make s3://bucket/prefix into s3:/bucket/prefix.
    required=True,
    metavar="DIR",
    help="The dataset's folder: images/, metadata.jsonl, errors.jsonl, job.json. With --format "
    "parquet, also a URL: s3://bucket/prefix, gs://..., memory://...",
)
@NUM_GENERATIONS_OPTION
@GENERATION_KWARGS_OPTION
@FIELDS_OPTION
@click.option(
    "--prompt-column",
    help="The prompt column of a .jsonl or .csv file (default: prompt).",
)
@click.option(
    "--stdin-format",
    type=click.Choice(FORMATS),
    help="The format of the prompts file piped to stdin when PROMPTS_FILE is - (default: txt).",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINE_NAMES),
    default="local",
    show_default=True,
    help="local: in this process. ray: a Ray actor pool (pip install 'imgen[ray]').",
)
@click.option(
    "--actors",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --engine ray: actors in the pool, each holding one loaded model (default: one "
    "per GPU with --gpus-per-actor, else one per CPU).",
)
@click.option(
    "--gpus-per-actor",
    type=click.FloatRange(min=0),
    metavar="G",
    help="With --engine ray: GPUs each actor reserves, e.g. 1, or 0.5 to share a GPU between "
    "two (default: 0).",
)
@click.option(
    "--format",
    "dataset_format",
    type=click.Choice(DATASET_FORMATS),
    default="imagefolder",
    show_default=True,
    help="imagefolder: image files and metadata.jsonl in a local folder. parquet: shards of "
    "--shard-rows rows in DIR/data/, to a folder or a URL (pip install 'imgen[parquet]').",
)
@click.option(
    "--shard-rows",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --format parquet: the rows of PROMPTS_FILE each shard covers (default: the "
    "dataset's own when resuming, else 1000).",
)
@click.option("--no-resume", is_flag=True, help="Start the dataset over instead of resuming it.")
@click.option("--force", is_flag=True, help="Replace a dataset that another job made in DIR.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.pass_context
@logged("batch")
def batch(
    ctx: click.Context,
    model: str | None,
    prompts_file: str | None,
    output_dir: str,
    num_generations: int,
    generation_kwargs: tuple[tuple[str, Any], ...],
    fields: tuple[tuple[str, Any], ...],
    prompt_column: str | None,
    stdin_format: PromptsFormat | None,
    engine: Literal["local", "ray"],
    actors: int | None,
    gpus_per_actor: float | None,
    dataset_format: DatasetFormat,
    shard_rows: int | None,
    no_resume: bool,
    force: bool,
    as_json: bool,
) -> None:
    """Generate images for each prompt of PROMPTS_FILE into a dataset in DIR.

    PROMPTS_FILE is a .txt (a prompt a line), .jsonl or .csv file, or - for stdin; the other
    fields of its rows go into the metadata. DIR becomes a Hugging Face imagefolder dataset:
    datasets.load_dataset("imagefolder", data_dir=DIR) loads it. With --format parquet, DIR
    (a folder or a URL such as s3://bucket/prefix) gets Parquet shards of --shard-rows rows
    that datasets.load_dataset(DIR) loads. Run the same command again to resume: finished
    rows are skipped and failed ones retried. When the backend takes a seed,
    the job has one (-p seed=S, or drawn and kept in DIR/job.json) and every image gets its
    own seed, recorded in its metadata. Exit code 1 when rows failed or were skipped as bad
    (both are in DIR/errors.jsonl), 130 when interrupted with Ctrl-C, 143 when stopped by
    SIGTERM. Without MODEL, the default model is used (`imgen models default`).
    """
    model, prompts_file = choose_batch_model(model, prompts_file)
    runner = _engine(engine, actors, gpus_per_actor)
    if shard_rows is not None and dataset_format != "parquet":
        raise UserError("--shard-rows applies to --format parquet; add it.")
    built = build_model(model, dict(fields), dict(generation_kwargs))
    from_stdin = prompts_file == STDIN
    if stdin_format is not None and not from_stdin:
        raise UserError("--stdin-format applies when PROMPTS_FILE is - (stdin).")
    try:
        # stdout is the summary's (JSON with --json): what a library prints there while the job
        # runs (Ray's notes about its workers, say) goes to stderr instead.
        with contextlib.redirect_stdout(sys.stderr):
            summary = run_batch(
                built,
                stdin_prompts_text(stdin_format or "txt") if from_stdin else prompts_file,
                output_dir,
                num_generations=num_generations,
                prompt_column=prompt_column,
                engine=runner,
                resume=not no_resume,
                force=force,
                format=dataset_format,
                shard_rows=shard_rows,
            )
    except BatchInterrupted as stopped:
        _echo(stopped.summary, as_json)
        ctx.exit(exit_code(stopped))
    except BatchStopped as stopped:
        _echo(stopped.summary, as_json)
        raise
    _echo(summary, as_json)
    if summary.rows_failed or summary.bad_rows:  # each is in errors.jsonl: the job is not done
        ctx.exit(1)


def _engine(
    name: Literal["local", "ray"], actors: int | None, gpus_per_actor: float | None
) -> Literal["local", "ray"] | Engine:
    """The engine the options ask for.

    Raises:
        UserError: Ray options without --engine ray.
    """
    if name != "ray":
        if actors is not None or gpus_per_actor is not None:
            raise UserError("--actors and --gpus-per-actor apply to --engine ray; add it.")
        return name
    from imgen.batch.ray_engine import RayEngine

    return RayEngine(num_actors=actors, num_gpus=gpus_per_actor or 0.0)
