"""Records what a torchrun worker writes under its working directory (for tests/test_distributed_stage.py).

Put this folder on ``PYTHONPATH``: Python imports ``sitecustomize`` at start-up. In a process torchrun started
(``RANK`` set), with ``WRITE_AUDIT`` naming a folder, an audit hook (PEP 578) collects every file opened for
writing and every directory made, file renamed, copied, removed or chmod-ed through Python under the working
directory; ``<WRITE_AUDIT>/rank<RANK>.json`` lists them (``[event, path]``) when the process exits. A write from C
alone is not seen (FAISS's ``write_index`` is, through the project's atomic temp file and rename).
"""

import atexit
import json
import os
import sys

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
PATH_EVENTS = {"os.mkdir", "os.remove", "os.rmdir", "os.chmod", "os.utime", "os.truncate", "shutil.rmtree"}
MOVE_EVENTS = {"os.rename", "shutil.move"}  # os.replace raises os.rename
DESTINATION_EVENTS = {"shutil.copyfile", "os.link", "os.symlink"}


def written(event: str, args: tuple) -> list:
    if event == "open":
        path, mode, flags = args
        writes = bool(set(mode or "") & set("wax+")) or bool((flags or 0) & WRITE_FLAGS)
        return [path] if writes else []
    if event in PATH_EVENTS:
        return [args[0]]
    if event in MOVE_EVENTS:
        return [args[0], args[1]]
    if event in DESTINATION_EVENTS:
        return [args[1]]
    return []


def install(record: str) -> None:
    root = os.getcwd() + os.sep
    writes: list[list[str]] = []

    def hook(event: str, args: tuple) -> None:
        for path in written(event, args):
            if not isinstance(path, int):  # a file descriptor: its opening was seen
                path = os.path.abspath(os.fsdecode(path))
                if path.startswith(root):
                    writes.append([event, path.removeprefix(root)])

    def dump() -> None:
        with open(os.path.join(record, f"rank{os.environ['RANK']}.json"), "w") as handle:
            json.dump(writes, handle)

    sys.addaudithook(hook)
    atexit.register(dump)


if "RANK" in os.environ and "WRITE_AUDIT" in os.environ:
    install(os.environ["WRITE_AUDIT"])
