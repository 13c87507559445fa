"""lossbench command line: search the test gallery with image files, apply a preset, or check a data folder.

Installed as ``lossbench`` by ``make`` (``python -m lossbench`` works too).

Commands are registered in :data:`COMMANDS`; each adds its arguments and runs with the parsed namespace (a command
may return an exit status). A user error prints one ``error: …`` line with the fix and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lossbench import __version__
from lossbench.apps import evaluate_embeddings
from lossbench.core.errors import LossbenchError
from lossbench.core.stage import one_line_warnings

EXAMPLES = """examples (from the project root, after `dvc repro`):
  lossbench search face.jpg other.png -k 5 --grid results.png
  lossbench search face.jpg --loss triplet
  lossbench preset --list
  lossbench preset clip-vit-b32           # print the `dvc exp run -S ...` command
  lossbench preset clip-vit-b32 --apply   # or rewrite params.yaml, then `dvc repro`
  lossbench check-data path/to/faces      # before `dvc add`: links, unreadable entries, layout
"""


@dataclass(frozen=True)
class Command:
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int | None]


def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image file(s) to search with")
    parser.add_argument("--loss", help="whose model and index to use (default: params.yaml 'loss', the headline)")
    parser.add_argument(
        "--seed", type=int, help="which training seed's run (default: the first of params.yaml 'seeds')"
    )
    parser.add_argument("-k", type=int, default=10, help="results per image (default: 10)")
    parser.add_argument("--grid", metavar="PNG", help="also draw the queries and their results into this figure")


def _search(args: argparse.Namespace) -> None:
    from lossbench.apps.search import draw_grid, format_results, search_images
    from lossbench.config.params import load_params

    params = load_params()
    loss = args.loss or params.loss
    if loss not in params.losses:
        raise LossbenchError(
            f"unknown loss {loss!r}: --loss must be one of the configured losses "
            f"({', '.join(params.losses)}; params.yaml 'losses')"
        )
    seed = params.seeds[0] if args.seed is None else args.seed
    if seed not in params.seeds:
        raise LossbenchError(f"--seed {seed} is not one of the configured training seeds {params.seeds}")
    results = search_images(
        args.images,
        loss,
        seed,
        args.k,
        params.data.original,
        flip_tta=params.evaluate.flip_tta,
        batch_size=params.evaluate.batch_size,
        max_pixels=params.data.max_image_pixels,
    )
    print(format_results(results, loss))
    if args.grid:
        from lossbench.core import paths
        from lossbench.data.store import load_processed

        print(f"grid: {draw_grid(results, load_processed(paths.PROCESSED)[0], args.grid)}")


def _preset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="preset name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the presets with a one-line description")
    parser.add_argument(
        "--apply",
        action="store_true",
        help="rewrite params.yaml with the preset instead of printing the `dvc exp run` command",
    )
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")


def _preset(args: argparse.Namespace) -> None:
    from lossbench.config.presets import apply_preset, command, list_presets, resolve

    if args.list:
        presets = list_presets()
        width = max(map(len, presets), default=0)
        print("\n".join(f"{name:<{width}}  {preset.description}" for name, preset in presets.items()))
        return
    if not args.name:
        raise LossbenchError("name a preset (`python -m lossbench preset --list` shows them)")
    if args.apply:
        resolved = apply_preset(args.name, args.params)
        print(
            f"applied preset {args.name} to {args.params} ({len(resolved.overrides)} settings); "
            f"run it with `dvc repro` or `dvc exp run`"
        )
    else:
        print(command(resolve(args.name, args.params).overrides))


def _check_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="the data folder (what data.original will point to)")


def _check_data(args: argparse.Namespace) -> int:
    from lossbench.data.audit import audit_folder, format_problems

    problems = audit_folder(args.path)
    print(format_problems(args.path, problems))
    return 1 if problems else 0


COMMANDS: dict[str, Command] = {
    "search": Command(
        "top-k test gallery matches of image files, using a trained model and its FAISS index",
        _search_arguments,
        _search,
    ),
    "preset": Command("print (or --apply) the params of a source project's setup", _preset_arguments, _preset),
    "check-data": Command(
        "report every problem of a data folder (dangling or looping links, links to folders, unreadable entries, "
        "special files, names that are not UTF-8, a misread layout); exit status 1 if any",
        _check_data_arguments,
        _check_data,
    ),
    "evaluate-embeddings": Command(
        "metrics with 95 percent identity-bootstrap intervals of saved query (and gallery) embeddings "
        "(all-vs-all without a gallery)",
        evaluate_embeddings.configure,
        evaluate_embeddings.run,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lossbench",
        description=__doc__.splitlines()[0],
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        cmd.configure(commands.add_parser(name, help=cmd.help, description=cmd.help))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (the command's, 0, or 2 after a one-line error)."""
    args = build_parser().parse_args(argv)
    try:
        with one_line_warnings("lossbench"):
            status = COMMANDS[args.command].run(args)
    except LossbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return status or 0
