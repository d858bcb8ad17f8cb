"""Driver memory of a batch job: peak RSS of the process that runs `run_batch`.

With the Ray engine and `--format parquet`, the actors write the shards and the driver receives
shard descriptors only, so its memory should not grow with the images' bytes; with an
imagefolder, every image travels to the driver, which writes it. Each job runs in a fresh
process, whose peak RSS is its `VmHWM` (not `ru_maxrss`, which Linux carries over from the
parent that forked it); Ray's workers are processes of their own and not counted. Images are
about 256 KB: uncompressed 296x296 PNGs from the fake backend.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import Row

IMAGES = 5_000
FEW_IMAGES = 1_000
ROUNDS = 3
SIDE = 296  # 296 * 296 * 3 bytes: about 257 KB per uncompressed PNG
SHARD_ROWS = 500
ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mb(variant: str, count: int) -> float:
    """Median peak RSS (MB) of a driver running `variant` on `count` images."""
    peaks = []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as folder:
            result = subprocess.run(
                [sys.executable, "-m", "bench.batch_memory", variant, str(count), folder],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
        peaks.append(float(result.stdout.split()[-1]))
    return statistics.median(peaks)


def run() -> list[Row]:
    ray_parquet = _peak_rss_mb("ray-parquet", IMAGES)
    local_folder = _peak_rss_mb("local-imagefolder", IMAGES)
    ray_folder = _peak_rss_mb("ray-imagefolder", IMAGES)
    ray_parquet_few = _peak_rss_mb("ray-parquet", FEW_IMAGES)
    size = f"{IMAGES:,} fake images of ~257 KB"
    return [
        Row(
            f"driver peak RSS, {size}: ray engine (2 actors) + parquet vs local engine + "
            "imagefolder",
            f"{ray_parquet:.0f} MB",
            f"{local_folder:.0f} MB",
            ray_parquet / local_folder,
            "report",
            comment="The Ray driver holds Ray's client and Ray Data, and no image: it needs as "
            "much for 1,000 images (third row). The local driver makes and writes every image, "
            "with up to 256 rows of images between generation and writing.",
        ),
        Row(
            f"driver peak RSS, {size}: ray engine + parquet vs ray engine + imagefolder",
            f"{ray_parquet:.0f} MB",
            f"{ray_folder:.0f} MB",
            ray_parquet / ray_folder,
            "report",
            comment="With an imagefolder every image travels from the actors to the driver, "
            "which writes it; with Parquet only shard descriptors do.",
        ),
        Row(
            f"driver peak RSS, ray engine + parquet: {IMAGES:,} vs {FEW_IMAGES:,} images of "
            "~257 KB",
            f"{ray_parquet:.0f} MB",
            f"{ray_parquet_few:.0f} MB",
            ray_parquet / ray_parquet_few,
            "<= 1.1x",
            comment="Five times the images, about the same driver memory: it grows with the "
            "metadata, not the image bytes.",
        ),
    ]


def _job(variant: str, count: int, folder: str) -> None:
    """One job in this process; print its peak RSS in MB."""
    from imgen.batch import RayEngine, run_batch
    from imgen.testing.fake import FakeImageGeneration

    engine_name, dataset_format = variant.split("-")
    engine = "local"
    if engine_name == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        engine = RayEngine(num_actors=2, batch_size=4)  # type: ignore[assignment]
    options = {"shard_rows": SHARD_ROWS} if dataset_format == "parquet" else {}
    model = FakeImageGeneration(width=SIDE, height=SIDE, compression_level=0)
    prompts = [f"a glass marble, number {i}" for i in range(count)]
    summary = run_batch(
        model,
        prompts,
        Path(folder) / "dataset",
        engine=engine,  # type: ignore[arg-type]
        progress=False,
        format=dataset_format,  # type: ignore[arg-type]
        **options,  # type: ignore[arg-type]
    )
    assert summary.images_written == count, summary
    print(_peak_rss_kb() / 1024)


def _peak_rss_kb() -> int:
    """This process's peak resident set size, in KB, since it started its program."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status: Linux only")


if __name__ == "__main__":
    _job(sys.argv[1], int(sys.argv[2]), sys.argv[3])
