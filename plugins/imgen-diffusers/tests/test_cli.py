"""The `imgen` command on a diffusers pipeline shows imgen's output only; Python is unchanged.

Loading a pipeline makes diffusers and transformers print warnings, notices and tqdm bars.
Each case runs in a fresh process, as a user's command or script does, so that every library
is imported the way it is in real use.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

IMGEN = "from imgen.cli import main; main()"
FAST = ["-p", "num_inference_steps=1", "-p", "height=64", "-p", "width=64", "-O", "device=cpu"]
# What diffusers prints while it loads any pipeline: a tqdm bar over its components.
LOADING_BAR = "Loading pipeline components"
# Variables that would silence the libraries on their own, whoever runs the tests.
LIBRARY_SWITCHES = (
    "TRANSFORMERS_VERBOSITY",
    "DIFFUSERS_VERBOSITY",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "TQDM_DISABLE",
    "PYTHONWARNINGS",
    "IMGEN_DEBUG",
)


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if name not in LIBRARY_SWITCHES}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_generate_prints_only_imgen_output(tmp_path: Path, tiny_pipeline_path: Path) -> None:
    command = [sys.executable, "-c", IMGEN, "generate", f"diffusers:{tiny_pipeline_path}"]
    result = run([*command, "a red fox", "-o", "out", *FAST], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == [str(Path("out") / "a-red-fox-0.png")]


def test_batch_prints_only_imgen_output(tmp_path: Path, tiny_pipeline_path: Path) -> None:
    (tmp_path / "prompts.txt").write_text("a red fox\nthe sea\n")
    command = [sys.executable, "-c", IMGEN, "batch", f"diffusers:{tiny_pipeline_path}"]
    result = run([*command, "prompts.txt", "-o", "dataset", *FAST], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith("Finished in ")
    assert "2 rows done" in result.stdout


def test_debug_shows_the_libraries_output(tmp_path: Path, tiny_pipeline_path: Path) -> None:
    command = [
        sys.executable,
        "-c",
        IMGEN,
        "--debug",
        "generate",
        f"diffusers:{tiny_pipeline_path}",
    ]
    result = run([*command, "a red fox", "-o", "out", *FAST], tmp_path)
    assert result.returncode == 0, result.stderr
    assert LOADING_BAR in result.stderr


def test_python_use_keeps_the_libraries_output(tmp_path: Path, tiny_pipeline_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import imgen

        with imgen.get_model("diffusers:{tiny_pipeline_path}", device="cpu") as model:
            model.generate_outputs(["a red fox"], num_inference_steps=1, height=64, width=64)
        """
    )
    result = run([sys.executable, "-c", script], tmp_path)
    assert result.returncode == 0, result.stderr
    assert LOADING_BAR in result.stderr
