"""Every command README.md and docs/*.md show names something that exists, and every relative link resolves.

Commands are read from the shell code blocks (```bash, ```sh, ```console or no language) and from inline code
spans. Checked:

- ``-S key=value`` (also quoted, ``--set-param``, ``++key=value``): applied to a copy of params.yaml by DVC's own
  ``-S`` implementation (Hydra's override grammar: a key that is not there needs ``++``, a bare comma is a sweep),
  then validated by :func:`lossbench.config.params.parse_params`, so the key must exist and the value fit;
- ``dvc repro`` / ``dvc exp run`` / ``dvc dag`` / ``dvc commit`` targets: a stage of dvc.yaml as DVC resolves it
  (``train@arcface-0``), a matrix group (``train``) or, with ``-g``, a shell-style pattern matching some stage;
- ``python bench/<file>.py`` and ``python -m <lossbench or stages module>``: the file exists;
- ``lossbench <command>`` (or ``python -m lossbench``): a command of the CLI, with options it accepts;
- ``make <target>``: a target of the Makefile;
- code paths in backticks (``lossbench/…``, ``stages/…``, ``bench/…``, ``tests/…``, ``presets/…``) exist.

Placeholders (``<loss>``, ``…``, ``$f``, ``/path/to/…`` values) are not resolved: for those only the key (or the
command name) is checked.
"""

from __future__ import annotations

import copy
import fnmatch
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console", "zsh"}
PLACEHOLDER = re.compile(r"[<>…$]|\.\.\.")
CODE_PATH = re.compile(r"^(lossbench|stages|bench|tests|presets)/[\w./-]*$")
# dvc options that take a value (everything else that starts with "-" is a flag)
DVC_VALUED = {"-S", "--set-param", "-n", "--name", "-j", "--jobs", "-m", "--message", "-C", "--copy-paths", "-r"}
DVC_TARGETED = {("repro",), ("exp", "run"), ("dag",), ("commit",), ("status",)}


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@dataclass(frozen=True)
class Snippet:
    """A command line (from a code block) or an inline code span, with where it was found."""

    file: str
    line: int
    text: str
    inline: bool

    def where(self) -> str:
        return f"{self.file}:{self.line}: `{self.text}`"


def snippets(path: Path) -> Iterator[Snippet]:
    """The shell lines of the code blocks (continuations joined, prompts dropped) and the inline code spans."""
    name = str(path.relative_to(ROOT))
    fence: str | None = None  # the language of the open code block
    pending, start = "", 0
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower() if fence is None else None
            continue
        if fence is None:
            for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", line):
                yield Snippet(name, number, span.strip(), inline=True)
        elif fence in SHELL_LANGUAGES:
            text = stripped.removeprefix("$ ")
            if not pending:
                start = number
            if text.endswith("\\"):
                pending += text[:-1] + " "
                continue
            if pending + text:
                yield Snippet(name, start, pending + text, inline=False)
            pending = ""


def simple_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell line: split at ``&&``, ``||``, ``|``, ``;`` and ``&``, comments dropped."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token and set(token) <= set(";&|"):
            commands.append([])
        elif token in {"do", "then", "else"} and commands[-1] == []:
            continue
        else:
            commands[-1].append(token)
    return [cmd for cmd in commands if cmd]


# ------------------------------------------------------------------------------------------------ what exists


@cache
def stage_names() -> tuple[frozenset[str], frozenset[str]]:
    """(every stage of dvc.yaml as DVC resolves it, the names of its matrix/foreach groups)."""
    from dvc_stages import load_stages  # tests/dvc_stages.py

    names = frozenset(getattr(stage, "name", None) or stage.addressing for stage in load_stages(ROOT))
    groups = frozenset(name.partition("@")[0] for name in names if "@" in name)
    return names, groups


@cache
def cli_options() -> dict[str | None, frozenset[str]]:
    """Command name → its option strings (``None``: the top-level parser's)."""
    import argparse

    from lossbench.apps.cli import build_parser

    parser = build_parser()
    found: dict[str | None, frozenset[str]] = {None: frozenset(s for a in parser._actions for s in a.option_strings)}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found[name] = frozenset(s for a in sub._actions for s in a.option_strings)
    return found


@cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    return frozenset(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, flags=re.MULTILINE))


@cache
def params_raw() -> dict:
    return yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------------------------ the checks


def is_placeholder(text: str) -> bool:
    return bool(PLACEHOLDER.search(text))


def apply_overrides(overrides: tuple[str, ...]) -> dict:
    """params.yaml with ``overrides`` applied the way ``dvc exp run -S`` applies them (DVC's Hydra parser and
    Hydra's struct-mode merge, as in :func:`dvc.utils.hydra.apply_overrides`), without writing a file."""
    from dvc.utils.hydra import to_hydra_overrides
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from omegaconf import OmegaConf

    config = OmegaConf.create(copy.deepcopy(params_raw()), flags={"allow_objects": True})
    OmegaConf.set_struct(config, True)
    ConfigLoaderImpl._apply_overrides_to_config(to_hydra_overrides(list(overrides)), config)
    return OmegaConf.to_object(config)


@cache
def override_problem(overrides: tuple[str, ...]) -> str | None:
    """Why DVC or the params validator would refuse ``overrides`` applied together (None: they work)."""
    from lossbench.config.params import parse_params

    try:
        raw = apply_overrides(overrides)
    except Exception as exc:  # Hydra's composition and parse errors
        return f"-S {' '.join(overrides)!r}: DVC refuses it: {exc.__cause__ or exc}"
    try:
        parse_params(yaml.safe_load(yaml.safe_dump(raw)))  # through YAML, as the stage reads the file DVC wrote
    except Exception as exc:
        return f"-S {' '.join(overrides)!r}: params.yaml would be invalid: {exc}"
    return None


def check_overrides(overrides: list[str], queued: bool) -> list[str]:
    """Problems of a set of ``-S`` overrides applied together, as ``dvc exp run`` applies them."""
    from dvc.utils.hydra import get_hydra_sweeps

    problems: list[str] = []
    concrete = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if not sep:
            if not is_placeholder(override):
                problems.append(f"-S {override!r} is not key=value")
            continue
        if is_placeholder(value) or is_placeholder(key):
            if not is_placeholder(key) and not key.startswith("+"):  # the key alone: it must be there
                node = params_raw()
                for part in key.split("."):
                    if not isinstance(node, dict) or part not in node:
                        problems.append(f"-S {override!r}: params.yaml has no key {key!r}")
                        break
                    node = node[part]
            continue
        concrete.append(override)
    if not concrete:
        return problems
    try:
        sweeps = get_hydra_sweeps({"params.yaml": concrete})
    except Exception as exc:  # Hydra's parse errors
        return [*problems, f"-S {' '.join(concrete)!r}: DVC cannot parse it: {exc}"]
    if len(sweeps) > 1 and not queued:
        problems.append(f"-S {' '.join(concrete)!r} is a sweep (a bare comma): DVC needs --queue, or quote the value")
    problems += [p for sweep in sweeps if (p := override_problem(tuple(sweep["params.yaml"])))]
    return problems


def check_stage_target(target: str, glob: bool) -> str | None:
    if is_placeholder(target) or target == "dvc.yaml":
        return None
    names, groups = stage_names()
    name = target.rpartition(":")[2] if ":" in target and not glob else target
    if glob:
        if not fnmatch.filter(names, name.rpartition(":")[2]):
            return (
                f"the pattern {name!r} matches no stage (-g takes shell-style wildcards like 'train@arcface-*', "
                "not regular expressions)"
            )
        return None
    if name not in names and name not in groups:
        return f"no stage {name!r} in dvc.yaml (stages: {', '.join(sorted(groups | names)[:12])}, …)"
    return None


def check_dvc(args: list[str]) -> list[str]:
    problems: list[str] = []
    words = [a for a in args if not a.startswith("-")][:2]
    sub = ("exp", "run") if words[:2] == ["exp", "run"] else tuple(words[:1])
    overrides, targets, glob, queued = [], [], False, False
    rest = args[len(sub) :]
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg in ("-S", "--set-param") and i + 1 < len(rest):
            overrides.append(rest[i + 1])
        elif arg.startswith("--set-param="):
            overrides.append(arg.partition("=")[2])
        elif arg in ("-g", "--glob"):
            glob = True
        elif arg == "--queue":
            queued = True
        elif arg.startswith("-") and not arg.startswith("--") and len(arg) > 2 and "g" in arg[1:]:
            glob = True  # combined short flags, e.g. -fg
        if arg in DVC_VALUED:
            i += 2
            continue
        if not arg.startswith("-") and sub in DVC_TARGETED:
            targets.append(arg)
        i += 1
    if overrides:
        problems += check_overrides(overrides, queued)
    for target in targets:
        if problem := check_stage_target(target, glob):
            problems.append(problem)
    return problems


def check_lossbench(args: list[str]) -> list[str]:
    options = cli_options()
    if not args:
        return []
    command = None if args[0].startswith("-") else args[0]
    if command is not None and command.endswith(":"):  # a line of output (`lossbench preprocess: warning: …`)
        return []
    if command is not None and command not in options:
        if is_placeholder(command) or command.upper() == command:
            return []
        known = ", ".join(sorted(c for c in options if c))
        return [f"lossbench has no command {command!r} (commands: {known})"]
    problems = []
    for arg in args[1:] if command else args:
        flag = arg.strip("[]").partition("=")[0]
        if flag.startswith("-") and not re.fullmatch(r"-[\d.e-]+", flag) and flag not in options[command]:
            problems.append(f"`lossbench {command or ''}` has no option {flag!r}")
    return problems


def check_python(args: list[str]) -> list[str]:
    problems = []
    for i, arg in enumerate(args):
        if arg == "-m" and i + 1 < len(args):
            module = args[i + 1]
            if is_placeholder(module):
                break
            if module == "lossbench":
                problems += check_lossbench(args[i + 2 :])
            elif module.split(".")[0] in ("lossbench", "stages"):
                base = ROOT / module.replace(".", "/")
                if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
                    problems.append(f"no module {module} in the project")
            break
        if re.fullmatch(r"bench/.+\.py", arg):
            if not (ROOT / arg).is_file():
                return [f"no file {arg}"]
            source = (ROOT / arg).read_text(encoding="utf-8")
            for flag in args[i + 1 :]:
                if flag.startswith("--") and f'"{flag.partition("=")[0]}"' not in source:
                    problems.append(f"{arg} has no option {flag.partition('=')[0]}")
            break
    return problems


def check_command(tokens: list[str]) -> list[str]:
    """Problems of one simple command (or of an inline span that only shows -S / ++ overrides)."""
    while tokens and (re.fullmatch(r"[A-Z_]+=\S*", tokens[0]) or tokens[0] in ("time", "nice", "env", "sudo")):
        tokens = tokens[1:]
        if tokens[:1] == ["-n"]:  # nice -n 19
            tokens = tokens[2:]
    if not tokens:
        return []
    program = tokens[0].rsplit("/", 1)[-1]
    if program == "dvc":
        return check_dvc(tokens[1:])
    if program == "lossbench":
        return check_lossbench(tokens[1:])
    if program in ("python", "python3", "torchrun"):
        return check_python(tokens[1:])
    if program == "make":
        unknown = [t for t in tokens[1:] if not t.startswith("-") and "=" not in t and t not in make_targets()]
        return [f"the Makefile has no target {t!r}" for t in unknown]
    # an inline span showing overrides only: `-S losses.triplet.margin=0.3`, `'++losses.triplet.train.epochs=15'`
    overrides = [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t in ("-S", "--set-param")]
    overrides += [t for t in tokens if t.startswith("++") and "=" in t]
    return check_overrides(overrides, queued=False) if overrides else []


TRIGGERS = re.compile(r"(^|\s)(-S|--set-param)\s|\+\+\w|^(dvc|lossbench|python3?|torchrun|make|\.venv/bin/)\b")


def check_snippet(snippet: Snippet) -> list[str]:
    text = snippet.text
    if snippet.inline and CODE_PATH.match(text) and not is_placeholder(text):
        path = text.split("::")[0].rstrip("/")
        return [] if (ROOT / path).exists() else [f"no such file or folder {path}"]
    if snippet.inline and not TRIGGERS.search(text):
        return []
    try:
        commands = simple_commands(text)
    except ValueError as exc:  # unbalanced quotes
        return [f"cannot read it as a shell command: {exc}"]
    return [problem for tokens in commands for problem in check_command(tokens)]


def doc_problems() -> list[str]:
    return [
        f"{snippet.where()}: {problem}"
        for path in doc_files()
        for snippet in snippets(path)
        for problem in check_snippet(snippet)
    ]


# ------------------------------------------------------------------------------------------------ links


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    return {slug(m) for m in re.findall(r"^#{1,6}\s+(.+?)\s*#*$", text, flags=re.MULTILINE)}


def link_problems() -> list[str]:
    problems = []
    for path in doc_files():
        text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):  # https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists():
                problems.append(f"{path.relative_to(ROOT)}: link to a missing file: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                problems.append(f"{path.relative_to(ROOT)}: link to a missing heading: {target}")
    return problems


# ------------------------------------------------------------------------------------------------ tests


def test_every_command_in_the_docs_names_something_that_exists():
    assert (ROOT / "docs").is_dir(), "docs/ is missing"
    problems = doc_problems()
    assert not problems, "commands in the docs that would not work as written:\n" + "\n".join(problems)


MESSAGE_TARGET = re.compile(r"`dvc repro(?: -[-\w]+)* ([^`\s-][^`\s]*)`")
FIELD = re.compile(r"(\{[^}]*\}|<[^>]*>)")


def message_target_problems(text: str, source: str) -> list[str]:
    """Stages that ``dvc repro`` advice in code names but dvc.yaml lacks; a field (``{loss}``, ``<seed>``) stands
    for one name part without a dash."""
    names, _ = stage_names()
    problems = []
    for target in MESSAGE_TARGET.findall(text):
        pattern = "".join("[^-]+" if FIELD.fullmatch(part) else re.escape(part) for part in FIELD.split(target))
        if not any(re.fullmatch(pattern, name) for name in names):
            problems.append(f"{source}: `dvc repro {target}` names no stage of dvc.yaml")
    return problems


def test_every_stage_the_code_tells_the_user_to_run_exists():
    sources = [path for folder in ("lossbench", "stages", "bench") for path in sorted((ROOT / folder).rglob("*.py"))]
    problems = [p for path in sources for p in message_target_problems(path.read_text(), path.relative_to(ROOT))]
    assert not problems, "\n".join(problems)


def test_the_message_checker_rejects_a_stage_that_does_not_exist():
    assert message_target_problems("run `dvc repro index@{loss}-{seed}` first", "x.py")
    assert message_target_problems("run `dvc repro --force embed@<loss>-<seed>`", "x.py")
    assert not message_target_problems("run `dvc repro train@{run.parent.name}-{run.name.removeprefix('seed')}`", "x")
    assert not message_target_problems("run `dvc repro index@<loss>` or `dvc repro`", "x.py")
    assert message_target_problems("run `dvc repro -f -s weight`, then `dvc repro`", "x.py")
    assert not message_target_problems("run `dvc repro -f -s weights`, then `dvc repro compare`", "x.py")


def test_every_relative_link_in_the_docs_resolves():
    problems = link_problems()
    assert not problems, "\n".join(problems)


def test_the_code_map_names_every_folder_and_module_of_the_package():
    """docs/development.md's code map has a row per folder of lossbench/ naming each of its modules."""
    text = (ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| `(\w+)/` \|.*$", text, flags=re.MULTILINE)}
    missing = []
    for folder in sorted(p for p in (ROOT / "lossbench").iterdir() if (p / "__init__.py").is_file()):
        row = rows.get(folder.name)
        if row is None:
            missing.append(f"lossbench/{folder.name}/ has no row")
            continue
        modules = [m for m in folder.rglob("*.py") if m.name != "__init__.py" and "__pycache__" not in m.parts]
        missing += [
            f"lossbench/{m.relative_to(ROOT / 'lossbench')} is not named in its row"
            for m in sorted(modules)
            if f"`{m.stem}`" not in row
        ]
        missing += [
            f"lossbench/{sub.relative_to(ROOT / 'lossbench')}/ is not named in its row"
            for sub in sorted(folder.iterdir())
            if (sub / "__init__.py").is_file() and f"`{sub.name}/`" not in row
        ]
    assert rows, "docs/development.md has no code map"
    assert not missing, "docs/development.md's code map does not match the package:\n" + "\n".join(missing)


def test_readme_stays_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 250, f"README.md has {lines} lines; move detail to docs/ (the limit is 250)"


@pytest.mark.parametrize(
    "text",
    [
        "dvc exp run -S losses.triplet.margn=0.3",  # a made-up key
        "dvc exp run -S train.epochs=many",  # a wrong type
        "dvc exp run -S losses.triplet.train.epochs=15",  # a key that is not there, without ++
        "dvc exp run -S data.val_ids=0.95",  # out of bounds
        "dvc exp run -S loss=nope",  # not a configured loss
        "dvc exp run -S index.factory=IVF64,PQ16",  # a bare comma: a sweep, without --queue
        "dvc repro train@nope-0",
        "dvc repro -g 'tune@.*'",  # a regular expression: DVC matches shell-style patterns
        "dvc dag nope",
        "python bench/nope.py",
        "python bench/pipeline.py --nope",
        "python -m stages.nope",
        "lossbench nope",
        "lossbench search face.jpg --nope",
        "make nope",
    ],
)
def test_the_checker_rejects_what_does_not_exist(text):
    assert check_snippet(Snippet("made-up.md", 1, text, inline=False)), text


@pytest.mark.parametrize(
    "text",
    [
        "dvc exp run -S '++losses.triplet.train.epochs=15' -S losses.triplet.margin=0.3",
        "dvc exp run --queue -S 'losses.arcface.margin=0.2,0.4'",
        "dvc exp run -S \"index.factory='IVF64,PQ16'\"",
        "dvc repro -g 'train@arcface-*' && dvc repro compare",
        "python bench/pipeline.py --tiny",
        "lossbench search face.jpg --loss triplet -k 5",
    ],
)
def test_the_checker_accepts_what_works(text):
    assert check_snippet(Snippet("made-up.md", 1, text, inline=False)) == []
