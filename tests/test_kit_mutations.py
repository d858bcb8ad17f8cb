"""The conformance kit catches the mistakes backend authors make: 9 of 9.

Each mistake below is planted, one at a time, in a copy of the example plugin
(docs/examples/imgen-echo). The copy is installed the way pip leaves a package, as the package
beside its dist-info folder, on a folder put first on the path of a fresh Python process. That
process runs the copy's own `tests/test_contract.py`, that is the kit, exactly as the plugin's
author would. The kit must fail every mutant, and for the mistake planted, not for another one.
The unchanged copy is run too: it must pass, or every failure above would prove nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "docs" / "examples" / "imgen-echo"
MODEL = "src/imgen_echo/model.py"
OUTPUT_LINE = '**images_output(images),  # "images" (base64) and "format"'
ENCODED = 'images_output(images)["images"]'


def after_output(line: str) -> str:
    """The output line of the example, followed by a line that overrides one of its keys."""
    return f"{OUTPUT_LINE}\n                {line}"


@dataclass(frozen=True)
class Mutation:
    """One planted mistake: replace `old` by `new` in `file`; the kit must fail `check`."""

    file: str
    old: str
    new: str
    check: str
    also_says: str = ""


MUTATIONS = {
    "api_key typed str, not SecretStr": Mutation(
        MODEL,
        '    image_format: ImageFormat = Field("png", description="The encoding of the images.")\n',
        '    image_format: ImageFormat = Field("png", description="The encoding of the images.")\n'
        '    api_key: str = Field("", description="The service\'s API key.")\n',
        "test_credential_fields_are_secret",
        also_says="RuntimeParameter[SecretStr]",
    ),
    "import PIL.Image at the top of model.py": Mutation(
        MODEL,
        "from pydantic import Field\n",
        "import PIL.Image\nfrom pydantic import Field\n",
        "test_resolving_by_name_imports_nothing_beyond_imgen",
        also_says="PIL  (imported by imgen_echo.model)",
    ),
    # httpx2 is the httpx that the openai and huggingface_hub SDKs are built on here.
    "import httpx at the top of model.py": Mutation(
        MODEL,
        "from pydantic import Field\n",
        "import httpx2 as httpx\nfrom pydantic import Field\n",
        "test_resolving_by_name_imports_nothing_beyond_imgen",
        also_says="httpx2  (imported by imgen_echo.model)",
    ),
    "images with a data-URL prefix": Mutation(
        MODEL,
        OUTPUT_LINE,
        after_output(f'"images": ["data:image/png;base64," + b64 for b64 in {ENCODED}],'),
        "test_images_are_strict_base64",
        also_says="data-URL prefix",
    ),
    "a missing Args: entry": Mutation(
        MODEL,
        "            seed: Image k is coloured from the prompt and `seed + k`.\n",
        "",
        "test_every_parameter_documented",
        also_says="['seed']",
    ),
    "a wrong format": Mutation(
        MODEL,
        OUTPUT_LINE,
        after_output('"format": "jpeg",'),
        "test_declared_format_matches_the_bytes",
    ),
    "a wrong image count": Mutation(
        MODEL,
        OUTPUT_LINE,
        after_output(f'"images": {ENCODED}[:1],'),
        "test_output_contract",
    ),
    "**kwargs in the signature": Mutation(
        MODEL,
        "        seed: int = 0,\n    ) -> list[dict[str, Any]]:",
        "        seed: int = 0,\n        **kwargs: Any,\n    ) -> list[dict[str, Any]]:",
        "test_bad_input_rejected_before_generation",
    ),
    "raw bytes instead of base64": Mutation(
        MODEL,
        OUTPUT_LINE,
        after_output(f'"images": [__import__("base64").b64decode(b64) for b64 in {ENCODED}],'),
        "test_output_contract",
    ),
}
UNCHANGED = "the example as it is"


@dataclass(frozen=True)
class KitRun:
    failed: dict[str, str]  # test name (without parameters) -> the failure's text
    passed: int
    skipped: list[str]
    output: str


def install_copy(workdir: Path, mutation: Mutation | None) -> tuple[Path, Path]:
    """A copy of the example with `mutation` planted, installed in a site folder of its own.

    Returns:
        The site folder (for PYTHONPATH) and the copy's tests folder.
    """
    project = workdir / "imgen-echo"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    if mutation is not None:
        target = project / mutation.file
        source = target.read_text()
        assert source.count(mutation.old) == 1, (
            f"{mutation.old!r} no longer appears once in {mutation.file} of the example: "
            "update the mutation to plant the same mistake in the new code"
        )
        target.write_text(source.replace(mutation.old, mutation.new))
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    site = workdir / "site"
    shutil.copytree(project / "src" / "imgen_echo", site / "imgen_echo")
    dist_info = site / f"imgen_echo-{metadata['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {metadata['name']}\nVersion: {metadata['version']}\n"
    )
    entry_points = "".join(
        f"[{group}]\n" + "".join(f"{name} = {value}\n" for name, value in points.items())
        for group, points in metadata["entry-points"].items()
    )
    (dist_info / "entry_points.txt").write_text(entry_points)
    return site, project / "tests"


def run_kit(workdir: Path, mutation: Mutation | None) -> KitRun:
    site, tests = install_copy(workdir, mutation)
    report = workdir / "report.xml"
    env = {k: v for k, v in os.environ.items() if k not in ("IMGEN_PLUGINS", "PYTHONPATH")}
    env["PYTHONPATH"] = str(site)  # first on the path: it shadows the editable install
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(tests),
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            f"--rootdir={workdir}",
            f"--junitxml={report}",
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    failed: dict[str, str] = {}
    passed, skipped = 0, []
    for case in ElementTree.parse(report).getroot().iter("testcase"):
        name = case.get("name", "").partition("[")[0]
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            failed[name] = failed.get(name, "") + (problem.text or "")
        elif (skip := case.find("skipped")) is not None:
            skipped.append(skip.get("message", ""))
        else:
            passed += 1
    return KitRun(failed, passed, skipped, result.stdout + result.stderr)


@pytest.fixture(scope="module")
def kit_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, KitRun]:
    """The kit's verdict on every mutant and on the unchanged example, run side by side."""
    cases: dict[str, Mutation | None] = {UNCHANGED: None, **MUTATIONS}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            label: pool.submit(run_kit, tmp_path_factory.mktemp("mutant"), mutation)
            for label, mutation in cases.items()
        }
        return {label: future.result() for label, future in futures.items()}


def test_nine_mistakes_are_planted() -> None:
    assert len(MUTATIONS) == 9


def test_the_unchanged_example_passes_the_kit(kit_runs: dict[str, KitRun]) -> None:
    run = kit_runs[UNCHANGED]
    assert not run.failed, run.output
    assert run.passed >= 15, run.output
    # Checks that do not apply say why instead of passing vacuously.
    assert "no secret fields" in " ".join(run.skipped), run.skipped
    assert "no credential-named fields" in " ".join(run.skipped), run.skipped


@pytest.mark.parametrize("label", list(MUTATIONS))
def test_the_kit_fails_the_mutant_for_the_planted_mistake(
    kit_runs: dict[str, KitRun], label: str
) -> None:
    mutation, run = MUTATIONS[label], kit_runs[label]
    assert run.failed, f"the kit passed with {label} planted:\n{run.output}"
    assert mutation.check in run.failed, (
        f"with {label} planted, the kit failed {sorted(run.failed)}, not {mutation.check}:\n"
        f"{run.output}"
    )
    assert mutation.also_says in run.failed[mutation.check], run.failed[mutation.check]


def test_the_kit_catches_nine_of_nine(kit_runs: dict[str, KitRun]) -> None:
    caught = [label for label, m in MUTATIONS.items() if m.check in kit_runs[label].failed]
    assert f"{len(caught)}/{len(MUTATIONS)}" == "9/9", sorted(set(MUTATIONS) - set(caught))
