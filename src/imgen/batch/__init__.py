"""Resumable batch jobs: prompts in, a Hugging Face `imagefolder` dataset out.

    from imgen.batch import run_batch
    summary = run_batch("openai:gpt-image-1", "prompts.txt", "out", num_generations=2)

On the command line: `imgen batch MODEL PROMPTS_FILE -o DIR`. See `run_batch`.
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
