"""The README's main job, end to end on a machine with no model hub access.

1. Build a tiny Stable Diffusion pipeline with random weights (about 6.5 MB).
2. Run `imgen batch` with it over examples/prompts.txt, into an imagefolder dataset.
3. Load the dataset with `datasets` and show its schema, its size and its first row.

The images are noise: the weights are random. The same command with a real model id
(`diffusers:stabilityai/sd-turbo`, `openai:gpt-image-1`) makes real images.

Usage: `python examples/demo.py [OUTPUT_DIR]` (default: demo-output/ in the repository).
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from imgen.quiet import quiet_libraries
from imgen_diffusers.testing import build_tiny_pipeline

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "examples" / "prompts.txt"


def imgen_command() -> str:
    """The `imgen` of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("imgen")
    found = str(beside) if beside.is_file() else shutil.which("imgen")
    return found or sys.exit("The `imgen` command is not installed: pip install imgen.")


def show_dataset(output: Path) -> None:
    """Load the dataset as a user would, and print its schema, size and first row."""
    try:
        import datasets
    except ModuleNotFoundError:
        sys.exit('Loading the dataset needs `datasets`: pip install "imgen[datasets]".')
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    loaded = datasets.load_dataset("imagefolder", data_dir=str(output), split="train")
    print(f'\n>>> datasets.load_dataset("imagefolder", data_dir={str(output)!r}, split="train")')
    print(f"{loaded.num_rows} rows. Schema:")
    for name, feature in loaded.features.items():
        print(f"  {name}: {describe_feature(feature)}")
    print("First row:")
    for name, value in loaded[0].items():
        print(f"  {name}: {describe_value(value)}")


def describe_feature(feature: Any) -> str:
    dtype = getattr(feature, "dtype", None)
    return f"{type(feature).__name__}({dtype})" if dtype else type(feature).__name__


def describe_value(value: Any) -> str:
    size = getattr(value, "size", None)
    if isinstance(size, tuple):  # a decoded PIL image
        return f"{value.format or 'an'} image, {size[0]}x{size[1]}, {value.mode}"
    return repr(value)


def main(output: Path, work: Path = ROOT / ".demo", prompts: Path = PROMPTS) -> None:
    with quiet_libraries():  # transformers' notices while it writes the pipeline
        pipeline = build_tiny_pipeline(work / "tiny-sd")
    model = f"diffusers:{pipeline}"
    options = ["-p", "num_inference_steps=2", "-p", "height=64", "-p", "width=64"]
    arguments = ["batch", model, str(prompts), "-o", str(output), "-n", "2", *options]
    arguments += ["-p", "seed=0"]
    print("$", shlex.join(["imgen", *arguments]), flush=True)
    subprocess.run([imgen_command(), *arguments], check=True)
    show_dataset(output)
    first = json.loads((output / "metadata.jsonl").read_text(encoding="utf-8").splitlines()[0])
    again = ["generate", model, first["prompt"], *options, "-p", f"seed={first['seed']}"]
    print(f"\nEach image has its own seed; make {first['file_name']} again with:\n")
    print("    " + shlex.join(["imgen", *again]))
    print("\nRun this again and the job resumes: finished rows are skipped.")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "demo-output")
