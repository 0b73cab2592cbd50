"""The package's folders are its architecture, and each module's imports keep to its layer's rules.

- ``core/`` is pure: it imports only core, the standard library (none of its process, network or
  locking modules) and the pure libraries yaml, pathspec and packaging;
- ``adapters/`` talk to git, the engine, the registry, processes and files: they import core and
  adapters, and they alone import git, docker, requests and urllib3;
- ``presentation/`` is what people and CI read: core and presentation, and of the adapters only the
  plain values listed in PRESENTATION_MAY_USE;
- ``execute`` (the executor), ``reporting`` (a run's report, made and kept) and ``inputs`` (what the
  repository says: fingerprints, warnings, what changed) sit on top, and ``workspace`` (the
  composition root) above them; beside the executor, ``publishing``, ``release`` and ``cleanup``
  each carry out one command's work with a workspace (which imports none of them); ``tasks/`` wires
  Invoke to them and the workspace and is imported by nothing;
- ``imagegraph_provision`` (making an engine usable: `invoke engine.*`) sits beside the library: it
  imports the library's core and adapters (its ``tasks`` module Invoke, and the library's error
  wiring), never presentation, execute or workspace; and the library never imports it: this
  repository's ``tasks.py`` puts `engine.*` on the menu;
- no module imports itself through others (no import circle): each pair of modules has one direction.

Every import counts, at the top, under TYPE_CHECKING or inside a function: a dependency is a
dependency, whenever it loads. The few exceptions are named, and a stale one fails too.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
PACKAGE = SRC / "imagegraph"
PROVISION = SRC / "imagegraph_provision"

LAYERS = ("core", "adapters", "presentation", "tasks")
#: The work after a plan that is no build: a build's tag move, a release, a cleanup, a join (each takes the workspace).
OPERATIONS = ("imagegraph.publishing", "imagegraph.release", "imagegraph.cleanup", "imagegraph.joining")
TOP_MODULES = {"imagegraph", "imagegraph.workspace", "imagegraph.execute", "imagegraph.reporting", "imagegraph.inputs", *OPERATIONS}
#: Third-party libraries core may import: pure, no I/O of their own.
CORE_LIBRARIES = {"yaml", "pathspec", "packaging"}
#: Standard-library modules that do process, network, signal or lock work: never in core.
IO_STDLIB = {"subprocess", "socket", "signal", "fcntl", "shutil", "threading", "multiprocessing", "concurrent", "asyncio",
             "http", "urllib", "ssl", "select", "selectors", "tempfile", "pty", "grp", "pwd", "ftplib", "smtplib", "sqlite3"}
#: The libraries that talk to git, the engine and the registry: adapters only.
ADAPTER_LIBRARIES = {"git", "docker", "requests", "urllib3"}
#: (importer, imported module) -> the names it may take across the rule; each must still be used.
ADAPTERS_MAY_USE = {
    # the devcontainer's tool check prints with the plain-text table helper
    ("imagegraph.adapters.devcontainer", "imagegraph.presentation.tables"): {"table"},
}
#: Provisioning's task module shares the library's wiring of errors into one line.
PROVISION_MAY_USE = {
    ("imagegraph_provision.tasks", "imagegraph.tasks._common"): {"user_errors"},
}
PRESENTATION_MAY_USE = {
    # commands are data: progress reads which command a line of output came from
    ("imagegraph.presentation.progress", "imagegraph.adapters.runner"): {"Command"},
    # the report store writes in imagegraph's own folder, .imagegraph/reports: through no link, as every working folder
    ("imagegraph.presentation.reports.store", "imagegraph.adapters.workdirs"): {"no_follow", "open_own", "own_folder", "refuse_link"},
}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*PACKAGE.rglob("*.py"), *PROVISION.rglob("*.py")]):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


#: Import circles known and being broken, each named by its modules: a new circle fails, and so does one of these that is gone.
KNOWN_CIRCLES: set[frozenset[str]] = set()


def imports(module: str) -> list[tuple[str, tuple[str, ...], int]]:
    """(imported module, names taken from it, line) for every import of ``module``; a submodule imported by name counts as itself."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, (), node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in MODULES:
                    found.append((f"{target}.{alias.name}", (), node.lineno))
                else:
                    found.append((target, (alias.name,), node.lineno))
    return found


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "imagegraph_provision":
        return "provision.tasks" if module == "imagegraph_provision.tasks" else "provision"
    if module in TOP_MODULES:
        return parts[-1] if len(parts) > 1 else "package"
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "stray"


def internal(target: str) -> bool:
    return target.split(".")[0] in ("imagegraph", "imagegraph_provision")


def violations(module: str, found: list[tuple[str, tuple[str, ...], int]], used: set | None = None) -> list[str]:
    """What ``module``'s imports break, one line each; ``used`` collects the exceptions that were needed."""
    used = set() if used is None else used
    own = layer(module)
    bad = []
    for target, names, line in found:
        where = f"{module}:{line} imports {target}" + (f" ({', '.join(names)})" if names else "")
        top = target.split(".")[0]
        if not internal(target):
            if own == "core" and top not in sys.stdlib_module_names and top not in CORE_LIBRARIES:
                bad.append(f"{where}: core imports only the standard library and {sorted(CORE_LIBRARIES)}")
            if own == "core" and top in IO_STDLIB:
                bad.append(f"{where}: core does no process, network, signal or lock work")
            if top in ADAPTER_LIBRARIES and own not in ("adapters", "provision"):
                bad.append(f"{where}: only adapters talk to git, the engine or the registry (and provisioning, beside the library)")
            if top == "invoke" and own not in ("tasks", "provision.tasks"):
                bad.append(f"{where}: only tasks/ wires Invoke")
            continue
        theirs = layer(target) if target in MODULES else "provision" if target.split(".")[0] == "imagegraph_provision" else "package"
        if theirs.startswith("provision") and not own.startswith("provision"):
            bad.append(f"{where}: the library never imports imagegraph_provision (provisioning imports the library, not the other way)")
            continue
        allowed = {
            "core": {"core"},
            "adapters": {"core", "adapters"},
            "presentation": {"core", "presentation"},
            "execute": {"core", "adapters", "presentation"},
            "reporting": {"core", "adapters", "presentation"},
            "inputs": {"core", "adapters"},
            "workspace": {"core", "adapters", "presentation", "execute", "reporting", "inputs"},
            **{name.split(".")[-1]: {"core", "adapters", "workspace"} for name in OPERATIONS},
            "tasks": {"core", "adapters", "presentation", "execute", "workspace", "tasks", "package",
                      *(name.split(".")[-1] for name in OPERATIONS)},
            "package": {"core", "workspace"},
            "provision": {"core", "adapters", "provision"},
            "provision.tasks": {"core", "adapters", "provision"},
        }.get(own, set())
        if theirs in allowed:
            continue
        exceptions = {**ADAPTERS_MAY_USE, **PRESENTATION_MAY_USE, **PROVISION_MAY_USE}.get((module, target))
        if exceptions is not None and names and set(names) <= exceptions:
            used.add((module, target))
            continue
        bad.append(f"{where}: {own} may import {sorted(allowed) or 'nothing of the package'}, not {theirs}")
    return bad


def import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports (itself left out), every import counted."""
    return {module: {target for target, _, _ in imports(module) if target in MODULES and target != module} for module in MODULES}


def circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The import circles of ``graph``: its strongly connected parts of more than one module (Tarjan's algorithm, without recursion)."""
    order: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for start in sorted(graph):
        if start in order:
            continue
        walk = [(start, iter(sorted(graph[start])))]
        order[start] = low[start] = len(order)
        stack.append(start)
        on_stack.add(start)
        while walk:
            module, targets = walk[-1]
            target = next(targets, None)
            if target is not None:
                if target not in order:
                    order[target] = low[target] = len(order)
                    stack.append(target)
                    on_stack.add(target)
                    walk.append((target, iter(sorted(graph.get(target, ())))))
                elif target in on_stack:
                    low[module] = min(low[module], order[target])
                continue
            walk.pop()
            if walk:
                low[walk[-1][0]] = min(low[walk[-1][0]], low[module])
            if low[module] == order[module]:
                part = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    part.add(member)
                    if member == module:
                        break
                if len(part) > 1:
                    found.append(frozenset(part))
    return found


def described(circle: frozenset[str]) -> str:
    """A circle as its imports, ``a -> b`` each, with the lines: where to start breaking it."""
    ties: dict[tuple[str, int, str], list[str]] = {}
    for module in sorted(circle):
        for target, names, line in imports(module):
            if target in circle and target != module:
                ties.setdefault((module, line, target), []).extend(names)
    return "; ".join(f"{module}:{line} -> {target}" + (f" ({', '.join(names)})" if names else "")
                     for (module, line, target), names in ties.items())


def test_every_module_lives_in_a_layer():
    strays = [m for m in MODULES if layer(m) == "stray"]
    assert not strays, f"put these modules in core/, adapters/ or presentation/ (see the folders' __init__.py): {strays}"
    for folder in LAYERS:
        init = PACKAGE / folder / "__init__.py"
        assert init.is_file() and ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{init} says what {folder}/ holds"
    init = PROVISION / "__init__.py"
    assert init.is_file() and ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))), f"{init} says what provisioning holds"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_keep_to_the_layers(module):
    assert violations(module, imports(module)) == []


def test_every_named_exception_is_still_needed():
    used: set = set()
    for module in MODULES:
        violations(module, imports(module), used)
    stale = set(ADAPTERS_MAY_USE) | set(PRESENTATION_MAY_USE) | set(PROVISION_MAY_USE)
    assert stale - used == set(), "these exceptions are not needed any more: drop them from test_layout.py"


def test_no_import_circle():
    found = set(circles(import_graph()))
    new = found - KNOWN_CIRCLES
    assert not new, "import circles (give each pair of modules one direction): " + " | ".join(described(c) for c in new)
    assert KNOWN_CIRCLES - found == set(), "these circles are gone: drop them from KNOWN_CIRCLES in test_layout.py"


@pytest.mark.parametrize(("module", "source", "circle"), [
    # two modules: the trees would ask the repository again, which makes them
    ("imagegraph.adapters.trees", "from .repo import Repository", {"imagegraph.adapters.trees", "imagegraph.adapters.repo"}),
    # under TYPE_CHECKING too: a dependency is a dependency
    ("imagegraph.adapters.trees", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .repo import Repository\n",
     {"imagegraph.adapters.trees", "imagegraph.adapters.repo"}),
    # a submodule imported by name (runner imports errors)
    ("imagegraph.core.errors", "from ..adapters import runner", {"imagegraph.core.errors", "imagegraph.adapters.runner"}),
    # inside a function, and across layers (tables imports values)
    ("imagegraph.core.values", "def late():\n    from imagegraph.presentation import tables\n",
     {"imagegraph.core.values", "imagegraph.presentation.tables"}),
])
def test_an_import_circle_is_caught(module, source, circle, tmp_path, monkeypatch):
    probe = tmp_path / "probe.py"
    probe.write_text(source + "\n")
    monkeypatch.setitem(MODULES, module, probe)
    new = [c for c in circles(import_graph()) if c not in KNOWN_CIRCLES]
    assert len(new) == 1 and circle <= new[0], new
    assert f"{module}:" in described(new[0])


def test_circles_finds_every_loop_and_nothing_else():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}, "f": {"a", "f"}, "g": set()}
    assert sorted(sorted(c) for c in circles(graph)) == [["a", "b", "c"], ["d", "e"]]
    chain = {f"m{i}": {f"m{i + 1}"} for i in range(5000)}  # deep: no recursion limit
    chain["m5000"] = {"m0"}
    assert circles(chain) == [frozenset(chain)]


@pytest.mark.parametrize(("module", "source", "broken"), [
    ("imagegraph.core.plan", "from ..adapters.repo import Change", "core may import ['core'], not adapters"),
    ("imagegraph.core.plan", "from ..presentation import tables", "not presentation"),
    ("imagegraph.core.plan", "from .. import workspace", "not workspace"),
    ("imagegraph.core.plan", "import subprocess", "no process, network"),
    ("imagegraph.core.plan", "import requests", "only the standard library"),
    ("imagegraph.presentation.tables", "from ..adapters.registry import Registry", "not adapters"),
    ("imagegraph.presentation.progress", "from ..adapters.runner import Runner", "not adapters"),
    ("imagegraph.presentation.tables", "import git", "only adapters talk to git"),
    ("imagegraph.adapters.repo", "from ..execute import prepare_build", "not execute"),
    ("imagegraph.execute", "from .workspace import Workspace", "not workspace"),
    ("imagegraph.workspace", "from .tasks import build", "not tasks"),
    ("imagegraph.core.plan", "from invoke import task", "only tasks/ wires Invoke"),
    ("imagegraph.adapters.engine.builders", "from imagegraph_provision.setup import engine_up", "the library never imports imagegraph_provision"),
    ("imagegraph.workspace", "import imagegraph_provision", "the library never imports imagegraph_provision"),
    ("imagegraph.tasks.build", "from imagegraph_provision import tasks", "the library never imports imagegraph_provision"),
    ("imagegraph.tasks", "import imagegraph_provision.tasks", "the library never imports imagegraph_provision"),
    ("imagegraph_provision.setup", "from imagegraph.workspace import Workspace", "not workspace"),
    ("imagegraph_provision.setup", "from imagegraph.execute import prepare_build", "not execute"),
    ("imagegraph_provision.status", "from imagegraph.presentation import tables", "not presentation"),
    ("imagegraph_provision.setup", "from invoke import task", "only tasks/ wires Invoke"),
    ("imagegraph_provision.tasks", "from imagegraph.tasks.build import build", "not tasks"),
    ("imagegraph_provision.tasks", "import docker", "only adapters talk to git, the engine"),
])
def test_a_broken_rule_is_caught(module, source, broken, tmp_path, monkeypatch):
    probe = tmp_path / "probe.py"
    probe.write_text(source + "\n")
    monkeypatch.setitem(MODULES, module, probe)
    assert any(broken in line for line in violations(module, imports(module)))


def test_presentation_loads_no_engine_registry_or_git_client():
    names = [m for m in MODULES if layer(m) == "presentation"]
    probe = f"import sys, json\nimport {', '.join(names)}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, check=True)
    assert not set(json.loads(done.stdout.splitlines()[-1])) & ADAPTER_LIBRARIES


def test_the_library_loads_no_part_of_provisioning():
    names = [m for m in MODULES if layer(m) not in ("provision", "provision.tasks")]
    probe = f"import sys, json\nimport {', '.join(names)}\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('imagegraph_provision'))))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, check=True)
    assert json.loads(done.stdout.splitlines()[-1]) == []


#: A finder, first on the path, that answers for the package as Python does where it is not installed.
ABSENT = """
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "imagegraph_provision":
            raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}", name=name.split(".")[0])
sys.meta_path.insert(0, Absent())
"""
ROOT_TASKS = SRC.parent / "tasks.py"


def menu(before: str = "", load: str = "from imagegraph.tasks import namespace") -> subprocess.CompletedProcess[str]:
    """The task names `invoke --list` would show, in a fresh interpreter that first runs ``before``."""
    probe = f"import sys, json\n{before}\n{load}\nprint(json.dumps(sorted(namespace.task_names)))"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)})


def tasks_of(done: subprocess.CompletedProcess[str]) -> set[str]:
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


REPOSITORY_MENU = f"import runpy\nnamespace = runpy.run_path({str(ROOT_TASKS)!r})['ns']"


def test_the_library_menu_is_whole_without_provisioning():
    library = tasks_of(menu())
    assert tasks_of(menu(ABSENT)) == library
    assert {"build", "plan", "affected", "ref", "release", "cleanup", "report", "dev.up"} <= library
    assert not any(name.startswith("engine.") for name in library)


def test_this_repository_adds_engine_to_the_library_menu():
    full = tasks_of(menu(load=REPOSITORY_MENU))
    assert {"engine.up", "engine.status", "engine.down", "engine.builder"} <= full
    assert {name for name in full if not name.startswith("engine.")} == tasks_of(menu())


def test_provisioning_imported_first_still_makes_the_whole_menu():
    assert tasks_of(menu("import imagegraph_provision.tasks", load=REPOSITORY_MENU)) == tasks_of(menu(load=REPOSITORY_MENU))
