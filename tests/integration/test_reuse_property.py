"""A plan reuses only what was published, and `affected` is exactly the images whose fingerprints moved: random edits, real git.

A two-image family (base, and app on it with an input glob and a wheels
file) in a real repository. Hypothesis draws a sequence of edits: files
written, deleted and renamed in and out of the inputs, symbolic links made
and retargeted (among the inputs, and as a wheels file), commits, and
publications. A publication commits and records what CI would push for that
commit: each image's fingerprint, computed from a clean checkout of it the
way `invoke build` does (an image whose fingerprint is refused, and the
images on it, push nothing). The registry holds every publication so far,
and the last one's commit is the base (`--since`, which vouches for it).

After every edit, over the working tree:

- the plan is refused in one line, or every image it reuses names a
  fingerprint the registry holds (trusted without a lookup or not);
- `invoke affected` lists exactly the images whose fingerprint differs from
  their fingerprint at the base (or that the base could not publish).

The registry and the engine are fakes at the adapter seam (a set of
published references); git, the trees and the fingerprints are real.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from imagegraph.adapters.engine.builder_choice import BuilderChoice
from imagegraph.core.errors import ImagegraphError
from imagegraph.core.fingerprint import Fingerprinter
from imagegraph.core.graph import build_order
from imagegraph.core.options import BuildOptions
from imagegraph.core.plan import Decision
from imagegraph.workspace import Workspace
from tests.integration.conftest import commit_all, git, init_repo
from tests.integration.test_changes import outside_ci  # noqa: F401 (a fixture)

hypothesis = pytest.importorskip("hypothesis")
st = pytest.importorskip("hypothesis.strategies")

pytestmark = pytest.mark.integration

REGISTRY = "127.0.0.1:9"
IMAGES = {"registry": REGISTRY, "namespace": "reuse", "python": "3.11", "images": {
    "base": {"dockerfile": "docker/Dockerfile.base", "wheels": ["req/base.txt"], "platforms": ["linux/amd64"]},
    "app": {"dockerfile": "docker/Dockerfile", "parent": "base", "inputs": ["src/**"], "wheels": ["req/app.txt"],
            "platforms": ["linux/amd64"]},
}}
FILES = {
    "images.yaml": yaml.safe_dump(IMAGES),
    "docker/Dockerfile.base": "FROM scratch\n",
    "docker/Dockerfile": "ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\nCOPY src /src\n",
    "req/base.txt": "six==1.16.0\n",
    "req/app.txt": "idna==3.10\n",
    "shared/reqs.txt": "idna==3.10\n",
    "src/a.py": "A = 1\n",
    "docs/x.md": "# x\n",
}
FILE_PATHS = ("src/a.py", "src/b.py", "docs/x.md", "shared/reqs.txt", "req/app.txt")
TEXTS = ("idna==3.10\n", "idna==3.10  # the same, as pip reads it\n", "idna==3.11\n")
RENAMES = (("src/a.py", "docs/a.py"), ("docs/x.md", "src/x.md"), ("src/a.py", "src/c.py"), ("shared/reqs.txt", "shared/moved.txt"),
           ("docs/a.py", "src/a.py"))
LINKS = ("src/link.py", "req/app.txt")
TARGETS = ("../docs/x.md", "../shared/reqs.txt", "a.py")
#: How the first published commit holds its files: plain, or with links whose targets are no input (the issue's case among them).
STARTS = {
    "plain files": {},
    "a link among the inputs": {"src/link.py": "../docs/x.md"},
    "the wheels file a link": {"req/app.txt": "../shared/reqs.txt"},
}

EDITS = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(FILE_PATHS), st.sampled_from(TEXTS)),
    st.tuples(st.just("delete"), st.sampled_from(FILE_PATHS), st.just("")),
    st.sampled_from(RENAMES).map(lambda pair: ("rename", *pair)),
    st.tuples(st.just("link"), st.sampled_from(LINKS), st.sampled_from(TARGETS)),
    st.just(("commit", "", "")),
    st.just(("publish", "", "")),
)


def apply(root: Path, edit: tuple[str, str, str]) -> None:
    kind, path, value = edit
    full = root / path
    if kind == "write":
        if full.is_symlink():
            full.unlink()
        full.parent.mkdir(parents=True, exist_ok=True)
        full.write_text(value)
    elif kind == "delete":
        if full.is_symlink() or full.exists():
            full.unlink()
    elif kind == "rename":
        target = root / value
        if (full.is_symlink() or full.exists()) and not (target.is_symlink() or target.exists()):
            target.parent.mkdir(parents=True, exist_ok=True)
            full.rename(target)
    elif kind == "link":
        if full.is_symlink() or full.exists():
            full.unlink()
        full.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(value, full)
    elif kind in ("commit", "publish"):
        git(root, "add", "-A")
        if git(root, "status", "--porcelain").strip():
            commit_all(root, kind)


def own_fingerprints(root: Path) -> dict[str, str]:
    """Each image's fingerprint digest over the working tree, as CI would push it; an image refused (or on one) is absent."""
    try:
        workspace = Workspace(root, BuildOptions(registry=REGISTRY))
    except ImagegraphError:
        return {}  # images.yaml names a file that is gone: CI stops before it builds anything
    config = workspace.config
    fingerprinter = Fingerprinter(workspace.sources, python=config.python)
    found: dict[str, str] = {}
    for name in build_order(config):
        spec = config.image(name)
        if spec.parent is not None and spec.parent not in found:
            continue
        try:
            found[name] = fingerprinter.image(spec, found[spec.parent] if spec.parent else "").digest
        except ImagegraphError:
            continue
    return found


class Published:
    """The registry as a set of references; every ``has`` answered from it (the seam of :class:`imagegraph.adapters.registry.Registry`)."""

    def __init__(self) -> None:
        self.refs: set[str] = set()

    def publish(self, root: Path, digests: dict[str, str]) -> None:
        self.refs.update(f"{REGISTRY}/reuse/{name}:{digest[:16]}" for name, digest in digests.items())

    def has(self, ref: str, platforms=()) -> bool:
        return ref in self.refs  # what it publishes is whole, every platform


#: The builder a plan's build requests are made for (the plan asks only its kind): none is run here.
ANY_BUILDER = BuilderChoice("docker", None, "docker", True, ("linux/amd64", "linux/arm64"), "this test builds nothing")


class NoLocalImages:
    def has(self, ref: str) -> bool:
        return False


def check(root: Path, base: str, at_base: dict[str, str], registry: Published, edit) -> None:
    try:
        workspace = Workspace(root, BuildOptions(registry=REGISTRY, since=base), registry=registry, local=NoLocalImages(),  # type: ignore[arg-type]
                              builder_choice=ANY_BUILDER)
        now = workspace.fingerprints
    except ImagegraphError as refused:
        assert "\n" not in str(refused), (edit, str(refused))
        return
    plan = workspace.plan()
    for entry in plan.images:
        if entry.decision is Decision.REUSE:
            assert entry.ref in registry.refs, (edit, entry.name, entry.reason)
    _, entries = workspace.affected()
    moved = {name for name, fingerprint in now.items() if at_base.get(name) != fingerprint.digest}
    assert {entry.name for entry in entries} == moved, (edit, [(e.name, e.reason) for e in entries])


@hypothesis.settings(max_examples=int(os.environ.get("REUSE_EXAMPLES", "20")), deadline=None, derandomize=True,
                     suppress_health_check=list(hypothesis.HealthCheck))
# The case, committed or not, and the same reached by a publication: found by the random search too, but not in every
# bounded run, so always tried.
@hypothesis.example(start="the wheels file a link", edits=[("write", "shared/reqs.txt", "idna==3.11\n")])
@hypothesis.example(start="the wheels file a link", edits=[("write", "shared/reqs.txt", "idna==3.11\n"), ("commit", "", "")])
@hypothesis.example(start="plain files", edits=[("link", "req/app.txt", "../shared/reqs.txt"), ("publish", "", ""),
                                                ("write", "shared/reqs.txt", "idna==3.11\n"), ("publish", "", "")])
@hypothesis.example(start="a link among the inputs", edits=[("write", "docs/x.md", "idna==3.11\n"), ("link", "src/link.py", "a.py"),
                                                            ("commit", "", "")])
@hypothesis.given(start=st.sampled_from(sorted(STARTS)), edits=st.lists(EDITS, min_size=1, max_size=6))
def test_a_plan_reuses_only_published_fingerprints_and_affected_is_what_moved(tmp_path_factory, start, edits):
    root = tmp_path_factory.mktemp("reuse") / "repo"
    root.mkdir()
    for path, target in STARTS[start].items():
        apply(root, ("link", path, target))
    root = init_repo(root, {path: text for path, text in FILES.items() if path not in STARTS[start]})
    registry = Published()
    base, at_base = git(root, "rev-parse", "HEAD").strip(), own_fingerprints(root)
    registry.publish(root, at_base)
    for edit in edits:
        apply(root, edit)
        if edit[0] == "publish":
            base, at_base = git(root, "rev-parse", "HEAD").strip(), own_fingerprints(root)
            registry.publish(root, at_base)
        check(root, base, at_base, registry, edit)
