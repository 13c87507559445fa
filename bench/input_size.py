"""Input size of the default study, chosen on the VAL split: pretrained-feature quality vs featurize cost.

For each stored/input size, in a temporary copy of the project that reuses an existing ``data/synthetic``
(or makes it once with the ``synthesize`` stage), it runs the real stages ``preprocess``,
``weights``, ``featurize`` (timed) and ``train`` for the untrained ``baseline`` and one trained loss with the
first training seed, and reports their validation metrics (the test split is never looked at: the size is a
model-selection choice). Run it alone: it is CPU-bound.

    python bench/input_size.py [--sizes 96 112 128] [--loss supcon] [--data data/synthetic]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import ORIGINAL_ENV, ROOT, table  # first: it configures the environment

ENV = {**ORIGINAL_ENV, "TQDM_DISABLE": "1", "PATH": f"{Path(sys.executable).parent}:{ORIGINAL_ENV.get('PATH', '')}"}
VAL = re.compile(r"val top1=([0-9.]+), top5=([0-9.]+), mAP=([0-9.]+)")


def stage(root: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", *args], cwd=root, env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def measure(size: int, loss: str, data: Path, work: Path) -> list[object]:
    root = work / f"size{size}"
    for name in ("lossbench", "stages"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["data"].update(image_size=size, original="data/synthetic")
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "data").mkdir()
    (root / "data/synthetic").symlink_to(data.resolve())
    seed = str(params["seeds"][0])
    stage(root, "stages.preprocess")
    stage(root, "stages.weights")
    start = time.perf_counter()
    stage(root, "stages.featurize")
    featurize = time.perf_counter() - start
    baseline = [float(v) for v in VAL.search(stage(root, "stages.train", "baseline", seed)).groups()]
    trained = [float(v) for v in VAL.search(stage(root, "stages.train", loss, seed)).groups()]
    return [size, featurize, *(100 * v for v in baseline), *(100 * v for v in trained)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[96, 112, 128])
    parser.add_argument("--loss", default="supcon", help="the trained loss to compare (first training seed)")
    parser.add_argument("--data", type=Path, default=ROOT / "data/synthetic")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.data.is_dir():  # no data yet: the synthetic faces of params.yaml, made once for every size
            maker = Path(tmp) / "synthesize"
            for name in ("lossbench", "stages"):
                shutil.copytree(ROOT / name, maker / name, ignore=shutil.ignore_patterns("__pycache__"))
            shutil.copy(ROOT / "params.yaml", maker / "params.yaml")
            stage(maker, "stages.synthesize")
            args.data = maker / "data/synthetic"
        rows = [measure(size, args.loss, args.data, Path(tmp)) for size in args.sizes]
    print(f"val split, {args.loss} with the first training seed; featurize = wall seconds of the stage")
    headers = [
        "size",
        "featurize s",
        "baseline top-1",
        "baseline top-5",
        "baseline mAP",
        f"{args.loss} top-1",
        f"{args.loss} top-5",
        f"{args.loss} mAP",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
