"""The README's main job, end to end on a machine with no model hub access.

1. Build a tiny Stable Diffusion pipeline with random weights (about 6.5 MB).
2. Run `imgen batch` with it over examples/prompts.txt, into an imagefolder dataset.
3. Say where the dataset is and how to load it.

The images are noise: the weights are random. The same command with a real model id
(`diffusers:stabilityai/sd-turbo`, `openai:gpt-image-1`) makes real images.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from imgen_diffusers.testing import build_tiny_pipeline

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "examples" / "prompts.txt"


def main(output: Path = ROOT / "demo-output") -> None:
    pipeline = build_tiny_pipeline(ROOT / ".demo" / "tiny-sd")
    imgen = shutil.which("imgen") or sys.exit("the `imgen` command is not on PATH")
    model = f"diffusers:{pipeline}"
    options = ["-p", "num_inference_steps=2", "-p", "height=64", "-p", "width=64"]
    command = [imgen, "batch", model, str(PROMPTS), "-o", str(output), "-n", "2", *options]
    command += ["-p", "seed=0"]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
    print(
        f"\nThe dataset is in {output}/ (images/ and metadata.jsonl). Load it with:\n\n"
        "    import datasets\n"
        f'    ds = datasets.load_dataset("imagefolder", data_dir="{output}")\n\n'
        "Run this again and the job resumes: finished rows are skipped."
    )
    first = json.loads((output / "metadata.jsonl").read_text(encoding="utf-8").splitlines()[0])
    again = [model, first["prompt"], "-p", f"seed={first['seed']}", *options]
    print(f"\nEach image has its own seed; make {first['file_name']} again with:\n")
    print("    imgen generate " + " ".join(shlex.quote(arg) for arg in again))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "demo-output")
