"""Files that .gitattributes converts on checkout: what is hashed is exactly what the builder receives.

Real repositories in temp dirs, checked out afresh so git writes each file
through its conversion: end-of-line (`* text=auto eol=crlf`, and
`core.autocrlf`), `ident`, a clean/smudge filter, `export-subst` (which only
`git archive` applies) and a Git LFS pointer. Each is planned and its
context assembled by the real `invoke plan --bake`; the eol case is also
built on the real engine and read back from the pushed image.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from imagegraph.adapters.trees import blob_id
from tests.integration.conftest import commit_all, git, init_repo, one_error_line, run_invoke

pytestmark = pytest.mark.integration

FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  tiny:
    dockerfile: docker/Dockerfile
    inputs: ["files/**"]
    platforms: [linux/amd64]
"""
FILES = {"docker/Dockerfile": "FROM scratch\nCOPY files /files\n", "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n",
         "files/a.txt": "line one\nline two\n", "files/id.txt": "$Id$\n", "files/filtered.txt": "lower case\n",
         "files/subst.txt": "commit $Format:%H$\n", "files/plain.bin": "no newline at all"}
#: What each kind sets, and the file whose bytes on disk then differ from its blob (None: none does).
KINDS = {
    "eol": ({".gitattributes": "* text=auto eol=crlf\n"}, {}, "files/a.txt"),
    "autocrlf": ({}, {"core.autocrlf": "true"}, "files/a.txt"),
    "ident": ({".gitattributes": "files/id.txt ident\n"}, {}, "files/id.txt"),
    "filter": ({".gitattributes": "files/filtered.txt filter=upper\n"},
               {"filter.upper.smudge": "tr a-z A-Z", "filter.upper.clean": "tr A-Z a-z"}, "files/filtered.txt"),
    "export-subst": ({".gitattributes": "files/subst.txt export-subst\n"}, {}, None),
}


def checked_out(tmp_path: Path, registry: str, namespace: str, attributes: dict[str, str], config: dict[str, str]) -> Path:
    root = init_repo(tmp_path / "mono", {"images.yaml": FAMILY.format(registry=registry, namespace=namespace), **FILES})
    for key, value in config.items():
        git(root, "config", key, value)
    if attributes:
        (root / ".gitattributes").write_text(attributes[".gitattributes"])
        commit_all(root, "attributes")
    for file in (root / "files").iterdir():  # a fresh checkout: git writes every file through its conversion
        file.unlink()
    git(root, "checkout", "--", "files")
    assert git(root, "status", "--porcelain") == ""  # git itself sees nothing changed
    return root


def bake(root: Path, tmp_path: Path) -> Path:
    """The context `invoke plan --bake` assembles for tiny (its folder)."""
    result = run_invoke(root, "plan", "--bake", str(tmp_path / "bake.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    definition = json.loads((tmp_path / "bake.json").read_text())
    return Path(definition["target"]["tiny"]["context"])


def fingerprint(root: Path) -> str:
    data = json.loads(run_invoke(root, "plan", "--json").stdout)
    return next(image["fingerprint"] for image in data["images"] if image["name"] == "tiny")


@pytest.mark.parametrize("kind", KINDS)
def test_a_converted_file_is_hashed_and_sent_as_checked_out(tmp_path, registry, namespace, kind):
    attributes, config, converted = KINDS[kind]
    root = checked_out(tmp_path, registry, namespace, attributes, config)
    if converted is not None:  # the conversion really happened: the bytes on disk are not the blob's
        blob = git(root, "ls-files", "--stage", "--", converted).split()[1]
        assert blob_id((root / converted).read_bytes()) != blob
    context = bake(root, tmp_path)
    for name in FILES:
        if name.startswith("files/"):
            assert (context / name).read_bytes() == (root / name).read_bytes(), name  # the builder gets the checkout's bytes
    assert (context / "files/subst.txt").read_text() == "commit $Format:%H$\n"  # export-subst is for `git archive` alone

    before = fingerprint(root)
    # The same blobs, checked out another way: other bytes for the builder, so another fingerprint (and back again).
    if attributes:
        (root / ".gitattributes").write_text("* -text\n")
    for key in config:
        git(root, "config", "--unset", key)
    for file in (root / "files").iterdir():
        file.unlink()
    git(root, "checkout", "--", "files")
    after = fingerprint(root)
    assert (after != before) == (converted is not None), (before, after)
    assert bake(root, tmp_path).joinpath("files/a.txt").read_bytes() == (root / "files/a.txt").read_bytes()


def test_a_git_lfs_pointer_among_the_inputs_is_refused_in_one_line(tmp_path, registry, namespace):
    pointer = ("version https://git-lfs.github.com/spec/v1\n"
               "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")
    root = init_repo(tmp_path / "mono", {"images.yaml": FAMILY.format(registry=registry, namespace=namespace), **FILES,
                                         ".gitattributes": "*.onnx filter=lfs diff=lfs merge=lfs -text\n",
                                         "files/model.onnx": pointer, "other/weights.onnx": pointer})
    line = one_error_line(run_invoke(root, "plan"))
    assert "files/model.onnx" in line and "Git LFS pointer" in line and "filter=lfs" in line and "git lfs pull" in line
    assert "other/weights.onnx" not in line  # not an input: no concern of any image
    (root / "files/model.onnx").unlink()  # the file it stands for, as `git lfs pull` would write it
    (root / "files/model.onnx").write_bytes(b"\x00model weights\x00" * 100)
    assert run_invoke(root, "plan").returncode == 0


def test_an_eol_converted_file_reaches_the_image_as_checked_out(tmp_path, registry, namespace, docker_client):
    root = checked_out(tmp_path, registry, namespace, *KINDS["eol"][:2])
    built = run_invoke(root, "build", "--progress", "plain")
    assert built.returncode == 0, built.stdout + built.stderr
    ref = f"{registry}/{namespace}/tiny:{fingerprint(root)}"
    image = docker_client.images.pull(ref)
    container = docker_client.containers.create(image.id, command=["none"])
    try:
        stream, _ = container.get_archive("/files/a.txt")
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
            member = archive.extractfile("a.txt")
            assert member is not None and member.read() == b"line one\r\nline two\r\n"
    finally:
        container.remove()
    again = run_invoke(root, "plan")  # the next plan finds the fingerprint it built: nothing to build
    assert again.returncode == 0 and "reuse" in again.stdout.split("\n")[3], again.stdout
