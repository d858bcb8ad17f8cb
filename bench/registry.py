"""Registry benchmark: discovery plus resolution against `import imgen`, with and without 300
other distributions on sys.path."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.harness import Row, processes_side_by_side, python


def _dummy_site(root: Path, count: int) -> None:
    for i in range(count):
        info = root / f"dummy_dist_{i}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: dummy-dist-{i}\nVersion: 1.0\n"
        )
        # Half carry entry points of another group, as real environments do.
        if i % 2:
            (info / "entry_points.txt").write_text(f"[console_scripts]\ndummy{i} = os:getcwd\n")


def resolution_cost(extra_path: str | None, runs: int) -> tuple[float, float]:
    env_path = os.environ.get("PYTHONPATH", "")
    if extra_path:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (extra_path, env_path) if p)
    try:
        return processes_side_by_side(
            python("import imgen", "imgen.get_model('fake:x')"), python("import imgen"), runs
        )
    finally:
        os.environ["PYTHONPATH"] = env_path


def run(runs: int = 15) -> list[Row]:
    rows = []
    plain = resolution_cost(None, runs)
    rows.append(
        Row(
            "`imgen.get_model('fake:x')` (discovery + resolution) vs `import imgen`",
            f"{plain[0] * 1000:.0f} ms",
            f"{plain[1] * 1000:.0f} ms",
            plain[0] / plain[1],
            "<= 1.35x",
            comment="Discovery reads every distribution's entry points and imports each imgen "
            "plugin with the backend class it registers, a pydantic model whose schema is built "
            "at import: the cost grows with the plugins installed (four here, the echo example "
            "included).",
        )
    )
    with tempfile.TemporaryDirectory() as site:
        _dummy_site(Path(site), 300)
        crowded = resolution_cost(site, runs)
    rows.append(
        Row(
            "the same, with 300 more distributions on sys.path",
            f"{crowded[0] * 1000:.0f} ms",
            f"{crowded[1] * 1000:.0f} ms",
            crowded[0] / crowded[1],
            "report",
            comment="Against the row above: what 300 more distributions' metadata cost to scan.",
        )
    )
    return rows
