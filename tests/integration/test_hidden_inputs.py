"""Inputs whose content could change without git listing a change under the image's inputs, on real repositories.

Each case is either followed the same way by the fingerprint, the git-side
explanation and the assembled context, or refused in one line that names the
file and the fix:

- a link among an image's inputs enters as the link (its target's name) and
  is copied as a link: its target's content is not the image's, so an edit
  there rebuilds nothing, and retargeting the link rebuilds;
- a Dockerfile, an ignore file, a wheels file or images.yaml is read for its
  content (a link would be followed): a link there, or a folder link on the
  way to it, is refused;
- a submodule (or a repository of its own cloned into the checkout) among an
  image's inputs is refused, bumped or not, committed or not; one outside
  every image's inputs changes nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagegraph.adapters.context import assemble_context
from imagegraph.core.errors import ImagegraphError
from tests.integration.conftest import commit_all, git, init_repo, one_error_line, run_invoke
from tests.integration.test_changes import affected, edit, family_files, outside_ci, workspace  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration


@pytest.fixture
def repo(tmp_path) -> Path:
    return init_repo(tmp_path / "mono", family_files())


def link(root: Path, path: str, target: str) -> None:
    full = root / path
    full.parent.mkdir(parents=True, exist_ok=True)
    if full.is_symlink() or full.exists():
        full.unlink()
    os.symlink(target, full)


def refused(root: Path, *args: str) -> str:
    """The one error line of `invoke plan` (and the same of `invoke affected`)."""
    line = one_error_line(run_invoke(root, "plan", *args))
    assert one_error_line(run_invoke(root, "affected", *args)) == line
    return line


# -- links ---------------------------------------------------------------------------------------


def test_a_wheels_file_made_a_link_to_a_file_outside_every_input_is_refused(repo):
    # The case: a package added to the link's target changed the ci fingerprint while git listed no input of ci.
    edit(repo, "shared/dev.txt", (repo / "requirements/requirements-dev.txt").read_text())
    link(repo, "requirements/requirements-dev.txt", "../shared/dev.txt")
    commit_all(repo, "link the dev requirements")
    edit(repo, "shared/dev.txt", append="rich==13.9.4\n")
    commit_all(repo, "a package, through the link")
    line = refused(repo, "--since", "HEAD~1")
    assert "wheels file 'requirements/requirements-dev.txt' is a symbolic link" in line and "replace the link with a copy of its target" in line
    # uncommitted, the same
    edit(repo, "shared/dev.txt", append="tomli==2.2.1\n")
    assert "'requirements/requirements-dev.txt' is a symbolic link" in refused(repo)


@pytest.mark.parametrize("path", ["docker/Dockerfile.ci", "docker/Dockerfile.ci.dockerignore"])
def test_a_dockerfile_or_ignore_file_that_is_a_link_is_refused(repo, path):
    edit(repo, f"shared/{Path(path).name}", (repo / path).read_text())
    link(repo, path, f"../shared/{Path(path).name}")  # uncommitted: refused before any commit says so
    line = refused(repo)
    assert f"'{path}' is a symbolic link" in line and "image 'ci'" in line


def test_a_wheels_file_under_a_folder_link_is_refused(repo):
    # git lists the link `requirements`, never the files the builder and imagegraph would read through it
    (repo / "requirements").rename(repo / "reqs")
    link(repo, "requirements", "reqs")
    commit_all(repo, "requirements through a folder link")
    line = refused(repo, "--since", "HEAD~1")
    assert "lies under 'requirements', a symbolic link" in line


def test_images_yaml_that_is_a_link_is_refused(repo):
    (repo / "images.yaml").rename(repo / "images-real.yaml")
    link(repo, "images.yaml", "images-real.yaml")
    commit_all(repo, "images.yaml through a link")
    assert "images.yaml: is a symbolic link" in refused(repo, "--since", "HEAD~1")


def test_a_link_among_the_inputs_is_the_link_in_fingerprint_explanation_and_context(repo, tmp_path):
    edit(repo, "docs/weights.txt", "v1\n")
    edit(repo, "docs/other.txt", "other\n")
    link(repo, "src/scorer/weights.txt", "../../docs/weights.txt")
    commit_all(repo, "a link among app's inputs")
    before = workspace(repo).fingerprints["app"]
    assert ("src/scorer/weights.txt", f"120000 {git(repo, 'rev-parse', 'HEAD:src/scorer/weights.txt').strip()}") in before.files
    # The target is no input: the context gets the link, not the content, so an edit there changes no image.
    edit(repo, "docs/weights.txt", "v2\n")
    commit_all(repo, "edit the target")
    assert affected(repo, since="HEAD~1") == []
    assert workspace(repo).fingerprints["app"] == before
    context = assemble_context(workspace(repo).config.image("app"), before.files, repo, tmp_path / "context")
    assert os.readlink(context.root / "src/scorer/weights.txt") == "../../docs/weights.txt"
    # Retargeting the link is a change git lists under app's inputs, and the fingerprint follows.
    link(repo, "src/scorer/weights.txt", "../../docs/other.txt")
    _, entries = workspace(repo).affected()
    assert [(e.name, e.changed) for e in entries] == [("app", ("src/scorer/weights.txt",))]
    commit_all(repo, "retarget")
    assert affected(repo, since="HEAD~1") == ["app"]


# -- submodules ------------------------------------------------------------------------------------


def make_library(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "library", {"lib.py": "VERSION = 1\n"})


def add_submodule(repo: Path, library: Path, path: str) -> None:
    git(repo, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(library), path)
    commit_all(repo, f"submodule at {path}")


def bump(checkout: Path, text: str) -> None:
    (checkout / "lib.py").write_text(text)
    commit_all(checkout, "bump")


def test_a_submodule_under_an_input_is_refused_bumped_or_not_committed_or_not(repo, tmp_path):
    library = make_library(tmp_path)
    add_submodule(repo, library, "src/scorer/vendor")
    line = refused(repo, "--since", "HEAD~1")
    assert "'src/scorer/vendor' is a git submodule" in line and "narrow the inputs" in line
    bump(repo / "src/scorer/vendor", "VERSION = 2\n")  # checked out at a new commit, not committed in the superproject
    assert git(repo, "status", "--porcelain").strip() == "M src/scorer/vendor"
    assert "'src/scorer/vendor' is a git submodule" in refused(repo)
    commit_all(repo, "bump the submodule")
    assert "'src/scorer/vendor' is a git submodule" in refused(repo, "--since", "HEAD~1")


def test_a_submodule_outside_every_input_changes_nothing_bumped_or_not(repo, tmp_path):
    library = make_library(tmp_path)
    add_submodule(repo, library, "vendor/library")
    before = {name: fp.digest for name, fp in workspace(repo).fingerprints.items()}
    assert affected(repo, since="HEAD~1") == []
    bump(repo / "vendor/library", "VERSION = 2\n")
    assert affected(repo) == [] and {name: fp.digest for name, fp in workspace(repo).fingerprints.items()} == before
    commit_all(repo, "bump the submodule")
    explanation, entries = workspace(repo, since="HEAD~1").affected()
    assert entries == () and explanation.ignored == ("vendor/library",)
    assert run_invoke(repo, "plan", "--since", "HEAD~1").returncode == 0


def test_a_submodule_the_ignore_file_drops_is_neither_hashed_nor_refused(repo, tmp_path):
    library = make_library(tmp_path)
    edit(repo, "docker/Dockerfile.dockerignore", append="src/scorer/vendor\n")
    add_submodule(repo, library, "src/scorer/vendor")
    files = dict(workspace(repo).fingerprints["app"].files)
    assert "src/scorer/vendor" not in files and "src/scorer/model.py" in files
    bump(repo / "src/scorer/vendor", "VERSION = 2\n")
    commit_all(repo, "bump")
    assert affected(repo, since="HEAD~1") == []


def test_a_repository_cloned_into_an_input_folder_is_refused_and_elsewhere_ignored(repo, tmp_path):
    library = make_library(tmp_path)
    git(repo, "clone", "-q", str(library), "docs/library")  # untracked: git lists one folder and never looks in
    assert affected(repo) == []
    git(repo, "clone", "-q", str(library), "src/scorer/library")
    with pytest.raises(ImagegraphError, match="'src/scorer/library' is a git submodule"):
        _ = workspace(repo).fingerprints
    assert "'src/scorer/library' is a git submodule" in refused(repo)
