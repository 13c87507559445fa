"""Pipeline overhead in a temporary copy of the project (a fresh git + DVC repository).

1. the full ``dvc repro`` (wall time, and each stage's own time from its summary line);
2. ``dvc repro`` with nothing changed (median of 3; no stage runs: DVC's own cost of checking the pipeline);
3. ``dvc exp run -S loss=<another loss>`` after the full run (which stages re-ran, wall time);
4. peak memory of embedding the headline loss's first seed (``embed_run``, what ``embed@<loss>`` does per seed)
   for the default test gallery and for galleries 10× and 100× larger (gallery rows duplicated into a
   larger processed array): peak RSS and peak anonymous RSS (RSS minus file-backed pages such as the
   read-only image memmap). The anonymous peak must not grow with the gallery: embeddings go straight
   into a memmap.

Default = the real params.yaml (the full study: several minutes); ``--tiny`` = :func:`tiny_params` (about
three minutes). Child processes get the caller's environment as it was (no benchmark-only settings), so the
times are what ``dvc repro`` gives a user.

    python bench/pipeline.py [--tiny] [--keep]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from _common import ORIGINAL_ENV, ROOT, table  # first: it configures the environment

from lossbench.data.store import load_processed, write_images, write_manifest

PROJECT_FILES = [
    "lossbench",
    "stages",
    "presets",
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    ".dvcignore",
    ".gitignore",
]
"""The project's code, pipeline and params (as tests/conftest.py copies them): no data, outputs, lock or tuning
records, so every stage runs, tuning included."""

ENV = {
    **ORIGINAL_ENV,
    "TQDM_DISABLE": "1",
    "PATH": f"{Path(sys.executable).parent}:{ORIGINAL_ENV.get('PATH', '')}",
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
EMBED = (
    "import sys; from lossbench.config.params import load_params; from lossbench.embedding.extract import embed_run; "
    "print(embed_run(load_params(), sys.argv[1], int(sys.argv[2])))"
)
"""One seed of the stage ``embed@<loss>`` in-process (its memory is what step 4 measures)."""
SUMMARY = re.compile(r"^lossbench (\S+): .*\((\d+(?:\.\d+)?)s\)$")


def tiny_params(path: Path) -> None:
    """Shrink the study in ``path`` to a few minutes while keeping its shape: its headline loss, the first other
    trained loss (what step 3 switches to) and the baseline, its first two seeds, and its model and training
    settings except sizes (a from-scratch ``timm:test_resnet``: no weights to load). The stage graph and the
    frozen / fine-tuned choice are the real study's, so the per-stage overhead is too; only the data is tiny."""
    params = yaml.safe_load(path.read_text())
    headline = params["loss"]
    other = next(name for name in params["losses"] if name not in (headline, "baseline"))
    kept = [name for name in dict.fromkeys(("baseline", headline, other)) if name in params["losses"]]
    params["losses"] = {name: params["losses"][name] for name in kept}
    params["seeds"] = params["seeds"][:2]
    params["synthetic"].update(identities=16, images_per_id=6, image_size=32)
    params["data"].update(image_size=32, val_ids=0.25, test_ids=0.25)
    params["model"].update(backbone="timm:test_resnet", pretrained=None, embed_dim=16, hidden=32)
    params["train"].update(epochs=2, ids_per_batch=4, images_per_id=2, feature_views=2, patience=2)
    params["stats"].update(resamples=200)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def ran_stages(output: str) -> set[str]:
    """The stages ``dvc repro`` / ``dvc exp run`` ran (``Running stage 'train@arcface-0':``), not the cached ones."""
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")}


def run(args: list[str], cwd: Path) -> tuple[str, float]:
    """Run a command; return its stdout and wall seconds (raise with its output if it fails)."""
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout, seconds


def dvc(*args: str, cwd: Path) -> tuple[str, float]:
    """``dvc <args>`` in a fresh interpreter through DVC's entry point (what the ``dvc`` script runs)."""
    return run([sys.executable, "-c", "import sys; from dvc.cli import main; sys.exit(main(sys.argv[1:]))", *args], cwd)


def make_repo(root: Path, tiny: bool) -> None:
    for name in PROJECT_FILES:
        source = ROOT / name
        if not source.exists():
            continue
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    if tiny:
        tiny_params(root / "params.yaml")
    run(["git", "init", "-q"], root)
    dvc("init", "-q", cwd=root)
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc" / "plots")  # the plot templates dvc.yaml names
    dvc("config", "core.analytics", "false", cwd=root)
    commit(root, "project")


def commit(root: Path, message: str) -> None:
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-qm", message], root)


def stage_times(output: str) -> list[tuple[str, float]]:
    """``(stage, seconds)`` from the stages' own summary lines, attributed to the stage dvc ran."""
    times, current = [], None
    for line in output.splitlines():
        if line.startswith("Running stage '"):
            current = line.split("'")[1]
        elif (match := SUMMARY.match(line.strip())) and current:
            times.append((current, float(match.group(2))))
    return times


def peak_memory(args: list[str], cwd: Path, interval: float = 0.02) -> tuple[float, float, float]:
    """``(peak RSS MB, peak anonymous RSS MB, seconds)`` of a child process, sampled from /proc."""
    start = time.perf_counter()
    process = subprocess.Popen(args, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    hwm = anon = 0
    while process.poll() is None:
        try:
            status = Path(f"/proc/{process.pid}/status").read_text()
        except OSError:
            break
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        hwm = max(hwm, int(fields.get("VmHWM", " 0 kB").split()[0]))
        anon = max(anon, int(fields.get("RssAnon", " 0 kB").split()[0]))
        time.sleep(interval)
    output = process.communicate()[0]
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{output}")
    return hwm / 1024, anon / 1024, time.perf_counter() - start


def enlarged_copy(repo: Path, target: Path, factor: int) -> int:
    """A directory where ``embed_run`` sees the repo's models and a test gallery ``factor`` times larger.

    No feature cache is linked (its key names the original data), so a frozen-backbone run embeds from images.

    Returns the gallery size. Extra gallery rows duplicate the real ones (new row numbers and paths).
    """
    for name in ("lossbench", "stages", "params.yaml", "models"):
        (target / name).symlink_to(repo / name)
    images, manifest = load_processed(repo / "data/processed")
    gallery = manifest[(manifest["split"] == "test") & (manifest["role"] == "gallery")]
    copies = [gallery.assign(path=gallery["path"] + f"#copy{i}") for i in range(1, factor)]
    big = pd.concat([manifest, *copies], ignore_index=True)
    big["row"] = np.arange(len(big))
    source_rows = np.concatenate([manifest["row"].to_numpy(), *[c["row"].to_numpy() for c in copies]])
    processed = target / "data/processed"
    processed.mkdir(parents=True)
    write_images(processed, images, source_rows)
    write_manifest(processed, big)
    return len(gallery) * factor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny params (a few minutes) instead of params.yaml")
    parser.add_argument("--keep", action="store_true", help="keep the temporary repository (its path is printed)")
    parser.add_argument("--factors", type=int, nargs="+", default=[1, 10, 100], help="gallery size factors")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="lbbench-"))
    repo = tmp / "repo"
    repo.mkdir()
    try:
        make_repo(repo, args.tiny)
        params = yaml.safe_load((repo / "params.yaml").read_text())
        headline, seed = params["loss"], params["seeds"][0]
        other = next(name for name in params["losses"] if name not in (headline, "baseline"))

        output, full = dvc("repro", cwd=repo)
        per_stage = stage_times(output)
        commit(repo, "full run")
        noops = [dvc("repro", cwd=repo) for _ in range(3)]
        noop = statistics.median(seconds for _, seconds in noops)
        noop_ran = sorted(set.union(*(ran_stages(out) for out, _ in noops)))
        output, switch = dvc("exp", "run", "-S", f"loss={other}", cwd=repo)
        switched = sorted(ran_stages(output))

        memory = []
        for factor in args.factors:
            target = tmp / f"embed_x{factor}"
            target.mkdir()
            size = enlarged_copy(repo, target, factor)
            hwm, anon, seconds = peak_memory([sys.executable, "-c", EMBED, headline, str(seed)], target)
            memory.append([f"{factor}×", size, f"{hwm:.0f}", f"{anon:.0f}", f"{seconds:.1f}"])
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"params: {'tiny (bench/pipeline.py)' if args.tiny else 'params.yaml'}; "
        f"backbone {params['model']['backbone']}, {len(params['losses'])} losses × {len(params['seeds'])} seeds, "
        f"{params['synthetic']['identities']} identities × {params['synthetic']['images_per_id']} images"
    )
    print(
        table(
            ["run", "wall s", "stages run"],
            [
                ["full `dvc repro`", f"{full:.0f}", len(per_stage)],
                ["no-op `dvc repro` (median of 3)", f"{noop:.1f}", ", ".join(noop_ran) or "none"],
                [f"`dvc exp run -S loss={other}`", f"{switch:.1f}", ", ".join(switched)],
            ],
        )
    )
    by_kind: dict[str, float] = {}  # train@arcface-0, embed@triplet, ... -> train, embed
    for stage, seconds in per_stage:
        by_kind[stage.split("@")[0]] = by_kind.get(stage.split("@")[0], 0.0) + seconds
    print()
    by_kind["(rest: process start-up, imports, DVC)"] = full - sum(by_kind.values())
    print(
        table(
            ["stage (summed over losses and seeds)", "s", "share of full repro"],
            [[kind, f"{s:.1f}", f"{s / full:.0%}"] for kind, s in sorted(by_kind.items(), key=lambda kv: -kv[1])],
        )
    )
    print()
    print(
        table(
            [f"embed {headline} seed {seed} gallery", "gallery images", "peak RSS MB", "peak anonymous MB", "wall s"],
            memory,
        )
    )


if __name__ == "__main__":
    main()
