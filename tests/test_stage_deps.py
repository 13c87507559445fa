"""Every DVC stage declares, in its ``deps``, every project file its Python code imports (issue 11, item 1).

DVC re-runs a stage only when a declared dependency changes, so a module imported by a stage but missing from
its ``deps`` lets an edit to that module leave stale outputs behind. This test reads the pipeline with DVC's
own loader (``Repo(root).index.stages``: ``foreach``/``matrix`` expanded and ``${...}`` interpolated from
params.yaml exactly as ``dvc repro`` does), finds the Python entry point in each stage's ``cmd``
(``python -m pkg.mod`` or ``python path/to/script.py``), computes the transitive closure of project files that
entry point imports, and fails for each file no dep covers (a dep covers a file when it is that file or a
folder above it).

How the closure is computed (statically, with ``ast``; no project code is executed):

* ``import a.b.c`` imports ``a``, ``a.b`` and ``a.b.c``: every package ``__init__.py`` on the way counts, as it
  runs. ``from a.b import x`` also counts ``a/b/x.py`` when ``x`` is a submodule; ``from a.b import *`` counts the
  submodules named in ``a.b.__all__``. Relative imports are resolved against the importing module's package.
  ``python -m stages.run`` runs ``stages/__init__.py`` too.
* Imports anywhere in a file count, including inside functions: a function-level import runs whenever the
  function is called, and the check does not try to prove it is not (no call graph; this over-reports at worst).
  One exception, or every stage would "import" every loss: imports inside a package's module-level
  ``__getattr__`` (PEP 562 lazy loading, as in ``lossbench/losses/__init__.py``) count only for a stage that
  may call it, i.e. whose closure does ``from pkg import X`` with ``X`` not bound at the top level of
  ``pkg/__init__.py`` (``from lossbench.losses import create_loss`` does; ``from lossbench.losses import
  loss_trains`` and ``from lossbench.config.loss_options import ...`` do not), or ``from pkg import *``, or binds the
  package itself to a name (``import pkg``, ``import pkg.sub`` without ``as``, ``from parent import pkg``,
  ``import_module("pkg")``): attribute access on such a name is not tracked, so it counts as a call.
* Imports under ``if TYPE_CHECKING:`` (or ``typing.TYPE_CHECKING``) do NOT count: they never run, so editing
  such a module cannot change a stage's outputs. Their ``else:`` branch does count.
* ``importlib.import_module(...)`` / ``__import__(...)`` with a string literal counts. With an f-string or a
  ``+`` concatenation, each placeholder is resolved from literals the ast can see: a name bound by a ``for`` loop
  or comprehension over a module-level tuple/list/set of strings (the loss registry:
  ``for module in IMPLEMENTATIONS: import_module(f"lossbench.losses.{module}")``), a module-level string, or a
  subscript of a module-level dict literal (``f"lossbench.losses.{_LAZY[name]}"`` -> its values). A placeholder
  the ast cannot resolve this way is widened to "any project module matching the literal parts" (e.g. every
  module under ``lossbench/losses/``), which can only over-report. A dynamic import with no literal part naming
  a project package, or ``runpy``/``exec``/``spec_from_file_location``/``pkgutil`` module discovery, cannot be
  followed; the test then fails naming the file and line, unless ``DYNAMIC_IMPORTS`` below lists what that file
  loads (the explicit escape hatch: "importing file X also imports modules Y").
* Project modules are resolved on the files found from the stage's working directory (``wdir``), as
  ``python -m`` does (for ``python path/script.py``, the script's folder first, then ``wdir``); a name that
  resolves to nothing there (torch, numpy, ...) is third-party and ignored. Only ``.py`` files count: data read
  at run time (params.yaml, presets/) is outside this check.
"""

from __future__ import annotations

import ast
import itertools
import re
import shlex
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dvc_stages import load_stages  # tests/dvc_stages.py

ROOT = Path(__file__).resolve().parents[1]


def _modules_in(package: str) -> tuple[str, ...]:
    """Every module file directly in project package ``package``: what a ``pkgutil.iter_modules`` discovery over
    it may import (listed from the files, so a module added there needs no edit here)."""
    folder = ROOT.joinpath(*package.split("."))
    return tuple(sorted(f"{package}.{path.stem}" for path in folder.glob("*.py") if path.stem != "__init__"))


DYNAMIC_IMPORTS: dict[str, tuple[str, ...]] = {
    # the loss registry discovers its loss modules with pkgutil.iter_modules over its own package
    "lossbench/losses/registry.py": _modules_in("lossbench.losses"),
}
"""Project file (relative to the project root) -> modules it loads in ways the ast cannot see."""

_PYTHON = re.compile(r"python(\d+(\.\d+)*)?(\.exe)?$")
_PY_OPTS_WITH_ARG = {"-W", "-X", "--check-hash-based-pycs"}
_SHELL_SEPARATORS = {"&&", "||", ";", "|", "&", "(", ")"}
_LOADERS = {"run_module", "run_path", "spec_from_file_location", "iter_modules", "walk_packages", "exec"}


# --------------------------------------------------------------------------------------------- import graph
@dataclass
class Module:
    name: str  # dotted name ("__main__" for a script)
    path: Path
    is_package: bool


@dataclass
class Imports:
    """What one import statement (or dynamic import call) loads."""

    names: list[str]  # modules it imports, parent packages included
    triggers: list[str]  # modules whose module-level __getattr__ it may call (attribute not bound statically)
    lazy: bool  # inside this module's own module-level __getattr__: runs only once that is triggered


@dataclass
class Closure:
    files: dict[Path, list[Path]] = field(default_factory=dict)  # file -> chain of files from the entry point
    unresolved: list[str] = field(default_factory=list)  # "file:line: what" for imports the check cannot follow


class ImportGraph:
    """Static import resolution over the project files found on ``search_path`` (a list of folders)."""

    def __init__(self, root: Path, search_path: list[Path]):
        self.root = root
        self.search_path = search_path
        self._trees: dict[Path, ast.Module] = {}
        self._imports: dict[tuple[Path, str | None], tuple[list[Imports], list[str]]] = {}
        self._closures: dict[tuple[Path, str | None], Closure] = {}
        self._found: dict[str, Module | None] = {}
        self._all_modules: list[str] | None = None

    # -- module lookup
    def find(self, name: str) -> Module | None:
        """The project file of module ``name`` (``a/b.py`` or ``a/b/__init__.py``), or None if not in the project."""
        if name not in self._found:
            self._found[name] = self._find(name)
        return self._found[name]

    def _find(self, name: str) -> Module | None:
        parts = name.split(".")
        if not all(p.isidentifier() for p in parts):
            return None
        for base in self.search_path:
            folder = base.joinpath(*parts[:-1])
            if not folder.is_dir():
                continue
            init = folder / parts[-1] / "__init__.py"
            if init.is_file():
                return Module(name, init, True)
            module = folder / f"{parts[-1]}.py"
            if module.is_file():
                return Module(name, module, False)
        return None

    def all_modules(self) -> list[str]:
        """Every module name under the search path's top-level packages (for widening unresolved f-strings)."""
        if self._all_modules is None:
            names = set()
            for base in self.search_path:
                for top in base.iterdir():
                    if not top.is_dir() or not top.name.isidentifier():
                        continue
                    for file in top.rglob("*.py"):
                        parts = file.relative_to(base).with_suffix("").parts
                        if parts[-1] == "__init__":
                            parts = parts[:-1]
                        if all(p.isidentifier() for p in parts):
                            names.add(".".join(parts))
            self._all_modules = sorted(names)
        return self._all_modules

    def _tree(self, path: Path) -> ast.Module:
        if path not in self._trees:
            self._trees[path] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        return self._trees[path]

    def lazy_module(self, name: str) -> bool:
        """Whether module ``name`` defines a module-level ``__getattr__`` (PEP 562)."""
        found = self.find(name)
        return found is not None and any(
            isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "__getattr__"
            for n in self._tree(found.path).body
        )

    def bound_names(self, name: str) -> set[str]:
        """Names bound at the top level of module ``name`` (assignments, defs, classes, imports)."""
        found = self.find(name)
        if found is None:
            return set()
        bound: set[str] = set()
        stack = list(self._tree(found.path).body)
        while stack:
            node = stack.pop()
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                bound.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                bound.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    bound.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
            elif isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While)):
                stack.extend(c for c in ast.iter_child_nodes(node) if isinstance(c, ast.stmt))
        return bound

    def _triggers(self, module: str, attrs: list[str]) -> list[str]:
        """[module] if getting ``attrs`` from it may call its ``__getattr__``."""
        if not self.lazy_module(module):
            return []
        return [module] if "*" in attrs or set(attrs) - self.bound_names(module) else []

    # -- imports of one file
    def imports_of(self, module: Module, source: str | None = None) -> tuple[list[Imports], list[str]]:
        """The imports of ``module``'s file (or of ``source``, for ``python -c``), and descriptions of the imports
        the check cannot follow."""
        key = (module.path, source)
        if key not in self._imports:
            self._imports[key] = self._imports_of(module, source)
        return self._imports[key]

    def _imports_of(self, module: Module, source: str | None) -> tuple[list[Imports], list[str]]:
        tree = ast.parse(source) if source is not None else self._tree(module.path)
        rel = self.rel(module.path)
        package = module.name if module.is_package else module.name.rpartition(".")[0]
        found: list[Imports] = []
        unresolved: list[str] = []

        def with_parents(name: str) -> list[str]:
            parts = name.split(".")
            return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]

        def absolute(level: int, name: str | None, lineno: int) -> str | None:
            if level == 0:
                return name
            base = package.split(".") if package and module.name != "__main__" else []
            if level > len(base):
                unresolved.append(f"{rel}:{lineno}: relative import outside a package")
                return None
            base = base[: len(base) - level + 1]
            return ".".join(base + ([name] if name else []))

        for node, up in _runtime_nodes(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom, ast.Call)):
                continue
            parents = _ancestors(up)
            lazy = (
                len(parents) > 1
                and isinstance(parents[1], (ast.FunctionDef, ast.AsyncFunctionDef))
                and parents[1].name == "__getattr__"
            )
            if isinstance(node, ast.Import):
                for alias in node.names:
                    names = with_parents(alias.name)
                    # `import a.b.c` binds `a` (so a.b.X may be looked up later); `import a.b.c as m` binds a.b.c
                    looked_up = names if alias.asname is None else names[-1:]
                    found.append(Imports(names, [t for n in looked_up for t in self._triggers(n, ["*"])], lazy))
            elif isinstance(node, ast.ImportFrom):
                target = absolute(node.level, node.module, node.lineno)
                if target is None:
                    continue
                attrs = [a.name for a in node.names]
                names = with_parents(target)
                triggers = self._triggers(target, attrs)  # from M import X: M.X looked up first (hasattr)
                for attr in attrs:
                    if attr == "*":
                        names += [f"{target}.{sub}" for sub in self._dunder_all(target)]
                    elif self.find(f"{target}.{attr}"):  # a submodule: imported, and bound (its attributes used)
                        names.append(f"{target}.{attr}")
                        triggers += self._triggers(f"{target}.{attr}", ["*"])
                found.append(Imports(names, triggers, lazy))
            elif isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                where = f"{rel}:{node.lineno}"
                if called in ("import_module", "__import__") and node.args:
                    dynamic = self._dynamic_names(node, tree, parents, package)
                    if dynamic is None:
                        if rel not in DYNAMIC_IMPORTS:
                            unresolved.append(
                                f"{where}: {called}({ast.unparse(node.args[0])}) names no project "
                                "module the check can resolve"
                            )
                        continue
                    for name in dynamic:
                        found.append(Imports(with_parents(name), self._triggers(name, ["*"]), lazy))
                elif called in _LOADERS and rel not in DYNAMIC_IMPORTS:
                    unresolved.append(f"{where}: {ast.unparse(node)[:80]} may load project code the check cannot see")
        for name in DYNAMIC_IMPORTS.get(rel, ()):
            found.append(Imports(with_parents(name), self._triggers(name, ["*"]), False))
        return found, unresolved

    def _dunder_all(self, package: str) -> list[str]:
        found = self.find(package)
        if found is None:
            return []
        for node in self._tree(found.path).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                values = _literal_strings(node.value)
                return [v for v in values or () if self.find(f"{package}.{v}")]
        return []

    def _dynamic_names(
        self, call: ast.Call, tree: ast.Module, parents: list[ast.AST], package: str
    ) -> list[str] | None:
        """Project modules ``import_module(<arg>)`` may load, or None when the check cannot tell."""
        pieces = _string_pieces(call.args[0], tree, parents)
        if pieces is None:
            return None
        relative_to = None
        if len(call.args) > 1 or call.keywords:  # import_module(".x", package=...)
            anchor = call.args[1] if len(call.args) > 1 else call.keywords[0].value
            anchor_values = _string_values(anchor, tree, parents)
            if isinstance(anchor, ast.Name) and anchor.id in ("__package__", "__name__"):
                relative_to = package
            elif anchor_values and len(anchor_values) == 1:
                relative_to = next(iter(anchor_values))
        candidates = []
        for combo in itertools.product(*pieces):
            if any(part is None for part in combo):  # an unresolved placeholder: widen to a pattern
                literal_top = (combo[0] or "").split(".")[0]
                if not literal_top:
                    return None
                if self.find(literal_top) is None:  # a third-party package: not the project's business
                    continue
                pattern = "".join(".+" if part is None else re.escape(part) for part in combo)
                candidates.extend(n for n in self.all_modules() if re.fullmatch(pattern, n))
                continue
            name = "".join(combo)
            if name.startswith("."):
                if relative_to is None:
                    return None
                level = len(name) - len(name.lstrip("."))
                base = relative_to.split(".")[: len(relative_to.split(".")) - level + 1]
                name = ".".join(base + [name.lstrip(".")]).strip(".")
            candidates.append(name)
        return [c for c in candidates if self.find(c)]  # names outside the project are third-party

    # -- closure
    def closure(self, entry: Module, source: str | None = None) -> Closure:
        """Project files ``entry`` runs: itself, the parent packages of a ``-m`` module, and their imports."""
        key = (entry.path, source)
        if key not in self._closures:
            self._closures[key] = self._closure(entry, source)
        return self._closures[key]

    def _closure(self, entry: Module, source: str | None) -> Closure:
        result = Closure()
        chain_of: dict[Path, list[Path]] = {}
        queue: deque[tuple[Module, list[Path], str | None]] = deque()
        triggered: dict[str, list[Path]] = {}  # module -> chain of a file that may call its __getattr__
        lazy_of: dict[str, tuple[Module, list[Imports]]] = {}  # visited module -> imports in its __getattr__
        released: set[str] = set()

        def visit(mod: Module, via: list[Path], text: str | None = None) -> None:
            if mod.path not in chain_of:
                chain_of[mod.path] = via + [mod.path]
                queue.append((mod, via + [mod.path], text))

        def follow(imports: Imports, chain: list[Path]) -> None:
            for name in imports.names:
                target = self.find(name)
                if target is not None:
                    visit(target, chain)
            for name in imports.triggers:
                triggered.setdefault(name, chain)
                release(name)

        def release(name: str) -> None:  # a module both imported and whose __getattr__ may run: follow it
            if name in released or name not in lazy_of or name not in triggered:
                return
            released.add(name)
            mod, lazies = lazy_of[name]
            via = triggered[name] + ([mod.path] if triggered[name][-1] != mod.path else [])
            for imports in lazies:
                follow(imports, via)

        if entry.name != "__main__":  # python -m a.b.c imports a and a.b first
            parts = entry.name.split(".")
            for i in range(1, len(parts)):
                parent = self.find(".".join(parts[:i]))
                if parent:
                    visit(parent, [entry.path])  # reported as "via <entry> → <package>/__init__.py"
        visit(entry, [], source)
        while queue:
            mod, chain, text = queue.popleft()
            imports, unresolved = self.imports_of(mod, text)
            result.unresolved.extend(u for u in unresolved if u not in result.unresolved)
            lazy_of[mod.name] = (mod, [i for i in imports if i.lazy])
            for item in imports:
                if not item.lazy:
                    follow(item, chain)
            release(mod.name)
        result.files = chain_of
        return result

    def rel(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)


def _runtime_nodes(tree: ast.Module):
    """Every node of ``tree`` that runs at some point, with a linked list of its ancestors (see ``_ancestors``);
    skips ``if TYPE_CHECKING:`` bodies."""
    stack: list[tuple[ast.AST, tuple | None]] = [(tree, None)]
    while stack:
        node, up = stack.pop()
        yield node, up
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children = node.orelse
        elif (
            isinstance(node, ast.If)
            and isinstance(node.test, ast.UnaryOp)
            and isinstance(node.test.op, ast.Not)
            and _is_type_checking(node.test.operand)
        ):
            children = node.body
        else:
            children = list(ast.iter_child_nodes(node))
        cell = (node, up)
        stack.extend((child, cell) for child in reversed(children))


def _ancestors(up: tuple | None) -> list[ast.AST]:
    """The ancestors in a ``_runtime_nodes`` linked list, outermost (the module) first."""
    out = []
    while up is not None:
        out.append(up[0])
        up = up[1]
    return out[::-1]


def _is_type_checking(test: ast.AST) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _literal_strings(node: ast.AST | None) -> list[str] | None:
    """The strings of a literal tuple/list/set of strings (or a single string), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and all(
        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts
    ):
        return [e.value for e in node.elts]
    return None


def _module_binding(tree: ast.Module, name: str) -> ast.AST | None:
    """The value a module-level ``name = <value>`` (or ``name: T = <value>``) assigns, if exactly one does and
    nothing changes it afterwards (``name += ...``, ``name.append(...)`` ...)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return None
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == name
            and node.func.attr in ("append", "extend", "insert", "add", "update", "setdefault", "__setitem__")
        ):
            return None
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == name
        ):
            return None
    values = []
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            or isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == name
            and node.value is not None
        ):
            values.append(node.value)
    return values[0] if len(values) == 1 else None


def _string_values(node: ast.AST, tree: ast.Module, parents: list[ast.AST]) -> set[str] | None:
    """Every string ``node`` may evaluate to, from literals the ast can see; None when unknown."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name):
        for scope in reversed(parents):  # a loop or comprehension variable in an enclosing scope
            for sub in ast.walk(scope):
                target_iter = None
                if isinstance(sub, (ast.For, ast.AsyncFor, ast.comprehension)):
                    target_iter = (sub.target, sub.iter)
                if target_iter and isinstance(target_iter[0], ast.Name) and target_iter[0].id == node.id:
                    return _iter_values(target_iter[1], tree, parents)
            if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                break
        value = _module_binding(tree, node.id)
        literal = _literal_strings(value) if isinstance(value, ast.Constant) else None
        return set(literal) if literal else None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        value = _module_binding(tree, node.value.id)
        if isinstance(value, ast.Dict):
            strings = [_literal_strings(v) for v in value.values]
            if all(s is not None and len(s) == 1 for s in strings):
                return {s[0] for s in strings}
    return None


def _iter_values(node: ast.AST, tree: ast.Module, parents: list[ast.AST]) -> set[str] | None:
    """The strings a ``for`` loop over ``node`` yields: a literal, a module-level literal, a dict's keys/values."""
    method = None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("keys", "values"):
        method, node = node.func.attr, node.func.value
    if isinstance(node, ast.Name):
        node = _module_binding(tree, node.id)
    if isinstance(node, ast.Dict):
        items = node.values if method == "values" else node.keys
        strings = [_literal_strings(v) for v in items]
        return {s[0] for s in strings} if all(s is not None and len(s) == 1 for s in strings) else None
    literal = _literal_strings(node) if method is None else None
    return set(literal) if literal is not None else None


def _string_pieces(node: ast.AST, tree: ast.Module, parents: list[ast.AST]) -> list[list[str | None]] | None:
    """``node`` (a string, f-string or ``+`` concatenation) as a sequence of pieces, each a list of the strings
    it may be; [None] marks a piece that is unknown. None if ``node`` is not string-like at all."""
    if isinstance(node, ast.JoinedStr):
        pieces: list[list[str | None]] = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                found = _string_values(value.value, tree, parents)
                pieces.append(sorted(found) if found else [None])
            else:
                pieces.append([value.value])
        return pieces
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _string_pieces(node.left, tree, parents), _string_pieces(node.right, tree, parents)
        return None if left is None or right is None else left + right
    found = _string_values(node, tree, parents)
    if found:
        return [sorted(found)]
    return [[None]] if isinstance(node, (ast.Name, ast.Subscript, ast.Attribute, ast.Call)) else None


# ------------------------------------------------------------------------------------------ stage entry points
def python_entries(cmd: str) -> list[tuple[str, str]]:
    """The Python entry points of a shell command: ("module", "a.b") for ``python -m a.b``, ("script", path) for
    ``python path.py``, ("code", source) for ``python -c source``."""
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    segments = [list(group) for sep, group in itertools.groupby(tokens, lambda t: t in _SHELL_SEPARATORS) if not sep]
    entries = []
    for segment in segments:
        start = next((i for i, token in enumerate(segment) if _PYTHON.search(Path(token).name)), None)
        if start is None:
            continue
        args = iter(segment[start + 1 :])
        for arg in args:
            if arg in ("-m", "-c"):
                value = next(args, None)
                if value is not None:
                    entries.append(("module" if arg == "-m" else "code", value))
                break
            if arg.startswith("-m") and len(arg) > 2:
                entries.append(("module", arg[2:]))
                break
            if arg in _PY_OPTS_WITH_ARG:
                next(args, None)
            elif arg == "-" or not arg.startswith("-"):
                if arg != "-":
                    entries.append(("script", arg))
                break
    return entries


# ---------------------------------------------------------------------------------------------------- checker
@dataclass
class StageReport:
    name: str
    checked: bool
    files: dict[Path, list[Path]]  # imported project file -> chain from the entry point
    uncovered: list[Path]
    unresolved: list[str]
    superfluous: list[Path] = field(default_factory=list)  # code deps (files or folders) it does not wholly import
    expected: list[str] = field(default_factory=list)  # the exact code deps: folders it imports wholly, else files


def stage_name(stage, root: Path) -> str:
    name = getattr(stage, "name", None) or Path(stage.path).name
    dvcfile = Path(stage.path)
    return name if dvcfile == root / "dvc.yaml" else f"{dvcfile.relative_to(root).as_posix()}:{name}"


def covered(path: Path, deps: list[Path]) -> bool:
    above = {path, *path.parents}
    return any(dep in above for dep in deps)


def code_files(path: Path) -> set[Path]:
    """The ``.py`` files a dep covers (itself, or every one below a folder)."""
    if path.is_file():
        return {path} if path.suffix == ".py" else set()
    return set(path.rglob("*.py")) if path.is_dir() else set()


def superfluous_deps(deps: list[Path], imported: set[Path]) -> list[Path]:
    """Code deps that cover a file the stage never imports: an edit there would re-run it for nothing."""
    return sorted(dep for dep in deps if (files := code_files(dep)) and not files <= imported)


def exact_deps(imported: set[Path], root: Path) -> list[str]:
    """The fewest deps that cover exactly ``imported``: a folder when every ``.py`` below it is imported, else files."""
    chosen: set[Path] = set()
    for path in sorted(imported):
        top = path
        for folder in path.parents:
            if folder == root or root not in folder.parents:
                break
            if code_files(folder) <= imported:
                top = folder
        chosen.add(top)
    chosen = {c for c in chosen if not any(parent in chosen for parent in c.parents)}
    return sorted(c.relative_to(root).as_posix() for c in chosen)


def check_stages(root: Path) -> list[StageReport]:
    """For each stage: the project files its Python code imports, and those its deps do not cover."""
    root = root.resolve()
    reports = []
    graphs: dict[tuple[Path, ...], ImportGraph] = {}  # shared by stages with the same search path (foreach)

    def graph_for(search_path: list[Path]) -> ImportGraph:
        return graphs.setdefault(tuple(search_path), ImportGraph(root, search_path))

    for stage in load_stages(root):
        cmds = stage.cmd if isinstance(stage.cmd, list) else [stage.cmd] if stage.cmd else []
        wdir = Path(stage.wdir).resolve()
        deps = [
            Path(dep.fs_path).resolve()
            for dep in stage.deps
            if getattr(dep, "fs", None) is not None and getattr(dep.fs, "protocol", "local") in ("local", "file")
        ]
        files: dict[Path, list[Path]] = {}
        unresolved: list[str] = []
        checked = False
        for kind, value in itertools.chain.from_iterable(python_entries(cmd) for cmd in cmds):
            if kind == "script":
                script = (wdir / value).resolve()
                if not script.is_file() or root not in script.parents:
                    continue
                graph = graph_for([script.parent, wdir])
                entry, source = Module("__main__", script, False), None
            else:
                graph = graph_for([wdir])
                if kind == "module":
                    entry, source = graph.find(value), None
                    if entry is None:  # python -m <third-party tool>
                        continue
                    if entry.is_package:  # python -m pkg runs pkg/__main__.py after pkg/__init__.py
                        main = graph.find(f"{value}.__main__")
                        entry = main if main else entry
                else:
                    entry, source = Module("__main__", wdir / "<python -c>", False), value
            checked = True
            closure = graph.closure(entry, source)
            for path, chain in closure.files.items():
                if path.name != "<python -c>" and path not in files:
                    files[path] = [c for c in chain if c.name != "<python -c>"]
            unresolved.extend(u for u in closure.unresolved if u not in unresolved)
        uncovered = sorted(p for p in files if not covered(p, deps))
        imported = set(files)
        reports.append(
            StageReport(
                stage_name(stage, root),
                checked,
                files,
                uncovered,
                unresolved,
                superfluous_deps(deps, imported) if checked else [],
                exact_deps(imported, root),
            )
        )
    return reports


def describe_problems(reports: list[StageReport], root: Path) -> list[str]:
    """One message per uncovered file or unfollowable import, stage by stage."""
    return [f"stage {report.name!r} {line}" for report in reports for line in _problem_lines(report, root)]


def _problem_lines(report: StageReport, root: Path) -> list[str]:
    rel = lambda p: p.relative_to(root.resolve()).as_posix()  # noqa: E731
    lines = [
        f"imports {rel(path)} (via {' → '.join(rel(p) for p in report.files[path])}) but its deps do not cover it"
        for path in report.uncovered
    ]
    lines += [
        f"lists {rel(dep)} but never imports {', '.join(sorted(rel(f) for f in code_files(dep) - set(report.files)))}"
        for dep in report.superfluous
    ]
    if report.uncovered or report.superfluous:
        lines.append("exact code deps: " + ", ".join(report.expected))
    lines += [
        f"cannot follow the dynamic import at {problem}; make it resolvable or list what it loads in "
        "DYNAMIC_IMPORTS (tests/test_stage_deps.py)"
        for problem in report.unresolved
    ]
    return lines


def summarize(reports: list[StageReport], root: Path) -> str:
    """The problems, stage by stage; stages with identical problems (foreach instances) are listed once."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for report in reports:
        lines = tuple(_problem_lines(report, root))
        if lines:
            groups.setdefault(lines, []).append(report.name)
    out = []
    for lines, names in groups.items():
        out += [f"stage {names[0]!r} {line}" for line in lines]
        if len(names) > 1:
            out.append(f"  (same for {', '.join(repr(n) for n in names[1:])})")
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------------ tests
def test_every_stage_depends_on_the_project_files_it_imports():
    reports = check_stages(ROOT)
    checked = [r for r in reports if r.checked]
    assert len(checked) > 0, "no stage runs `python -m <project module>` or `python <project script>`"
    for report in checked:  # the entry point itself is always part of its closure
        assert report.files, f"stage {report.name!r}: no project file found for its command"
    failing = [r for r in checked if r.uncovered or r.unresolved or r.superfluous]
    if failing:
        pytest.fail(
            f"{len(failing)} of {len(checked)} stages running project code have code deps that differ from what "
            "they import: a missing one lets an edit leave stale outputs, a superfluous one re-runs the stage for "
            "nothing; set each stage's code deps in dvc.yaml to the exact list shown:\n" + summarize(reports, ROOT),
            pytrace=False,
        )


# A tiny project exercising each kind of import the checker must follow.
SYNTHETIC_FILES = {
    "params.yaml": "items: [a, b]\nheadline: a\n",
    "stages/__init__.py": "",
    "stages/run.py": (
        "import sys\n"
        "import numpy  # third-party: ignored\n"
        "from pkg import core\n"
        "from pkg.registry import load_all\n"
        "if __name__ == '__main__':\n"
        "    core.main(sys.argv[1])\n"
    ),
    "stages/solo.py": "import pkg.leaf\nfrom lazy import light_value  # bound in lazy/__init__.py: no __getattr__\n",
    "lazy/__init__.py": (
        "from lazy.light import light_value\n"
        "_LAZY = {'Heavy': 'heavy'}\n"
        "def __getattr__(name):\n"
        "    import importlib\n"
        "    return getattr(importlib.import_module(f'lazy.{_LAZY[name]}'), name)\n"
    ),
    "lazy/light.py": "light_value = 1\n",
    "lazy/heavy.py": "class Heavy: ...\n",
    "pkg/__init__.py": "",
    "pkg/core.py": (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from pkg import typing_only\n"
        "else:\n"
        "    from pkg import runtime_only\n"
        "def main(name):\n"
        "    from pkg.helper import helper  # function-level import\n"
        "    from lazy import Heavy  # not bound in lazy/__init__.py: runs its __getattr__\n"
        "    return helper(name)\n"
    ),
    "pkg/helper.py": "from . import leaf\n\ndef helper(name):\n    return leaf.VALUE + name\n",
    "pkg/leaf.py": "VALUE = 'x'\n",
    "pkg/typing_only.py": "",
    "pkg/runtime_only.py": "",
    "pkg/registry.py": (
        "import importlib\n"
        "NAMES = ('p1', 'p2')\n"
        "LAZY = {'Thing': 'p3'}\n"
        "def load_all():\n"
        "    for n in NAMES:\n"
        "        importlib.import_module(f'pkg.plugins.{n}')\n"
        "    return importlib.import_module(f'pkg.plugins.{LAZY[\"Thing\"]}')\n"
    ),
    "pkg/plugins/__init__.py": "",
    "pkg/plugins/p1.py": "",
    "pkg/plugins/p2.py": "",
    "pkg/plugins/p3.py": "",
    "pkg/unused.py": "",
}
RUN_CLOSURE = [
    "stages/__init__.py",
    "stages/run.py",
    "pkg/__init__.py",
    "pkg/core.py",
    "pkg/runtime_only.py",
    "pkg/helper.py",
    "pkg/leaf.py",
    "pkg/registry.py",
    "pkg/plugins/__init__.py",
    "pkg/plugins/p1.py",
    "pkg/plugins/p2.py",
    "pkg/plugins/p3.py",
    "lazy/__init__.py",
    "lazy/light.py",
    "lazy/heavy.py",
]


def make_synthetic(tmp_path: Path, run_deps: list[str], extra_stage: str = "") -> Path:
    from dvc.repo import Repo

    for name, text in SYNTHETIC_FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    deps = "".join(f"      - {d}\n" for d in run_deps)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  run:\n"
        "    foreach: ${items}\n"
        "    do:\n"
        "      cmd: python -m stages.run ${item}\n"
        f"      deps:\n{deps}"
        "      outs:\n"
        "      - out/${item}\n"
        "  solo:\n"
        "    cmd: echo start && python3 -u stages/solo.py ${headline}\n"
        "    deps:\n"
        "    - stages/solo.py\n"
        "    - pkg/__init__.py\n"
        "    - pkg/leaf.py\n"
        "    - lazy/__init__.py\n"
        "    - lazy/light.py\n"
        "  shell:\n"
        "    cmd: echo no python here\n" + extra_stage
    )
    Repo.init(str(tmp_path), no_scm=True).close()
    return tmp_path


EXACT_RUN_DEPS = [
    "stages/__init__.py",
    "stages/run.py",
    "pkg/__init__.py",
    "pkg/core.py",
    "pkg/runtime_only.py",
    "pkg/helper.py",
    "pkg/leaf.py",
    "pkg/registry.py",
    "pkg/plugins",
    "lazy",
]
"""The exact code deps of ``run@…``: ``pkg/plugins`` and ``lazy`` are imported whole, ``pkg`` and ``stages`` not."""


def test_checker_accepts_exact_deps_and_follows_every_kind_of_import(tmp_path):
    root = make_synthetic(tmp_path, EXACT_RUN_DEPS)
    reports = {r.name: r for r in check_stages(root)}
    assert sorted(reports) == ["run@a", "run@b", "shell", "solo"]
    assert [name for name, r in reports.items() if r.checked] == ["run@a", "run@b", "solo"]
    assert describe_problems(list(reports.values()), root) == []
    imported = sorted(p.relative_to(root.resolve()).as_posix() for p in reports["run@a"].files)
    assert reports["run@a"].expected == sorted(EXACT_RUN_DEPS)
    assert imported == sorted(RUN_CLOSURE)  # not typing_only (TYPE_CHECKING), unused or third-party numpy
    # a script: no stages/__init__.py (not run), its imports resolved from wdir; lazy/__init__.py's __getattr__
    # is not called, so lazy/heavy.py is not imported
    assert sorted(p.relative_to(root.resolve()).as_posix() for p in reports["solo"].files) == [
        "lazy/__init__.py",
        "lazy/light.py",
        "pkg/__init__.py",
        "pkg/leaf.py",
        "stages/solo.py",
    ]
    heavy = reports["run@a"].files[root.resolve() / "lazy" / "heavy.py"]
    assert [p.relative_to(root.resolve()).as_posix() for p in heavy] == [
        "stages/run.py",
        "pkg/core.py",
        "lazy/__init__.py",
        "lazy/heavy.py",
    ]


@pytest.mark.parametrize(
    "removed",
    [
        "pkg/helper.py",
        "pkg/leaf.py",
        "pkg/plugins/p2.py",
        "pkg/plugins/p3.py",
        "pkg/plugins/__init__.py",
        "stages/__init__.py",
        "pkg/runtime_only.py",
        "lazy/heavy.py",
    ],
)
def test_checker_reports_a_removed_dep(tmp_path, removed):
    root = make_synthetic(tmp_path, [f for f in RUN_CLOSURE if f != removed])
    problems = [p for p in describe_problems(check_stages(root), root) if "exact code deps" not in p]
    assert len(problems) == 2, problems  # run@a and run@b
    for item, problem in zip("ab", problems):
        assert problem.startswith(f"stage 'run@{item}' imports {removed} (via stages/")
        assert problem.endswith(f"{removed}) but its deps do not cover it")


@pytest.mark.parametrize(
    ("extra", "unused"),
    [
        ("pkg/unused.py", "pkg/unused.py"),  # a file the stage never imports
        ("stages", "stages/solo.py"),  # a folder it imports only in part
    ],
)
def test_checker_reports_a_superfluous_dep(tmp_path, extra, unused):
    root = make_synthetic(tmp_path, [*EXACT_RUN_DEPS, extra])
    problems = describe_problems(check_stages(root), root)
    superfluous = [p for p in problems if " but never imports " in p]
    assert len(superfluous) == 2, problems  # run@a and run@b
    for item, problem in zip("ab", superfluous):
        assert problem.startswith(f"stage 'run@{item}' lists {extra} but never imports ")
        assert unused in problem
    assert any(p.endswith("exact code deps: " + ", ".join(sorted(EXACT_RUN_DEPS))) for p in problems)


def test_checker_reports_a_dynamic_import_it_cannot_follow(tmp_path):
    root = make_synthetic(
        tmp_path,
        EXACT_RUN_DEPS,
        extra_stage=(
            "  dyn:\n    cmd: python -m stages.dyn\n    deps:\n    - stages/__init__.py\n    - stages/dyn.py\n"
        ),
    )
    (root / "stages" / "dyn.py").write_text("import importlib, os\nimportlib.import_module(os.environ['MOD'])\n")
    problems = describe_problems(check_stages(root), root)
    assert len(problems) == 1 and problems[0].startswith(
        "stage 'dyn' cannot follow the dynamic import at stages/dyn.py:2: import_module(os.environ['MOD'])"
    ), problems
