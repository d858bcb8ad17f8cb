"""`nox -s demo`: the README's main job, from the tiny pipeline to the dataset loaded back.

It runs examples/demo.py in a fresh process, as the nox session does, on two prompts instead
of the nine of examples/prompts.txt, to stay quick.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "examples" / "demo.py"


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, "HF_DATASETS_CACHE": str(cwd / "datasets-cache")},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_demo_ends_by_loading_its_dataset_and_echoes_a_runnable_command(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red fox in the snow\na lighthouse\n")
    script = (
        "import runpy, sys; from pathlib import Path; "
        f"runpy.run_path({str(DEMO)!r})['main'](*map(Path, sys.argv[1:]))"
    )
    result = run(
        [sys.executable, "-c", script, str(tmp_path / "out"), str(tmp_path / "work"), str(prompts)],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # imgen's lines only, and the demo's own
    lines = result.stdout.splitlines()

    # The command it shows is the one it ran, and runs as it is: the rerun resumes.
    assert lines[0].startswith("$ imgen batch diffusers:")
    echoed = shlex.split(lines[0][2:])
    again = run([str(Path(sys.executable).with_name("imgen")), *echoed[1:]], tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 rows done, 2 skipped" in again.stdout

    # Then the dataset, loaded with `datasets`: its size, its schema, its first row.
    loaded = lines.index("4 rows. Schema:")
    assert lines[loaded - 1].startswith('>>> datasets.load_dataset("imagefolder"')
    first_row = lines.index("First row:")
    schema = dict(line.strip().split(": ", 1) for line in lines[loaded + 1 : first_row])
    assert schema["image"] == "Image(PIL.Image.Image)"
    assert schema["prompt"] == "Value(string)"
    assert schema["seed"] == "Value(int64)"
    row = dict(
        line.strip().split(": ", 1) for line in lines[first_row + 1 : first_row + 1 + len(schema)]
    )
    assert row["image"] == "PNG image, 64x64, RGB"
    assert row["prompt"] in ("'a red fox in the snow'", "'a lighthouse'")
    assert lines[-1] == "Run this again and the job resumes: finished rows are skipped."
