"""Resumable batch jobs: prompts in, a Hugging Face dataset out (an `imagefolder`, or Parquet
shards on any fsspec filesystem).

    from imgen.batch import run_batch
    summary = run_batch("openai:gpt-image-1", "prompts.txt", "out", num_generations=2)
    summary = run_batch("fake", "prompts.txt", "s3://bucket/out", format="parquet")

On the command line: `imgen batch MODEL PROMPTS_FILE -o DIR [--format parquet]`. See
`run_batch`.
"""

from __future__ import annotations

from imgen.batch.engines import Engine
from imgen.batch.inputs import PromptsText
from imgen.batch.job import run_batch
from imgen.batch.local import LocalEngine
from imgen.batch.ray_engine import RayEngine
from imgen.batch.summary import BatchInterrupted, BatchStopped, BatchSummary

__all__ = [
    "BatchInterrupted",
    "BatchStopped",
    "BatchSummary",
    "Engine",
    "LocalEngine",
    "PromptsText",
    "RayEngine",
    "run_batch",
]
