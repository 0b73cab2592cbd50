"""The build context holds exactly what the fingerprint covers: real files in temp dirs."""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from imagegraph.adapters.context import FIXED_MTIME, ContextChanged, assemble_context, assemble_image_context
from imagegraph.adapters.trees import blob_id
from imagegraph.core.config import load_config
from imagegraph.core.fingerprint import fingerprint_images
from imagegraph.core.request import context_layout


class DiskSources:
    """Every file under a folder, identified as git would (the working tree without git)."""

    def __init__(self, root: Path, skip: Sequence[str] = (".wheelhouse/",)) -> None:
        self.root = root
        self._paths = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                             if (p.is_file() or p.is_symlink()) and not p.relative_to(root).as_posix().startswith(tuple(skip)))

    def paths(self) -> Sequence[str]:
        return self._paths

    def oid(self, path: str) -> str:
        full = self.root / path
        if full.is_symlink():
            return f"120000 {blob_id(os.readlink(full).encode())}"
        return f"{'100755' if full.stat().st_mode & 0o111 else '100644'} {blob_id(full.read_bytes())}"

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()


@pytest.fixture
def checkout(family: Path) -> Path:
    (family / "src/svc/notes.txt").write_text("declared: under src/svc/**\n")
    (family / "secrets.env").write_text("TOKEN=undeclared\n")
    (family / "docker/Dockerfile.dockerignore").write_text("*\n!src/svc\n!requirements/requirements.txt\n!.wheelhouse/requirements\n")
    wheels = family / ".wheelhouse/requirements"
    wheels.mkdir(parents=True)
    (wheels / "starlette-1.10.0-py3-none-any.whl").write_bytes(b"wheel" * 1000)
    (family / ".wheelhouse/requirements-torch").mkdir()
    (family / ".wheelhouse/requirements-torch/torch-2.13.0-cp311-none-any.whl").write_bytes(b"torch")
    return family


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())


def fingerprints(root: Path):
    return fingerprint_images(load_config(root), DiskSources(root))


def test_the_context_holds_exactly_the_fingerprinted_files_and_the_images_own_wheels(checkout, tmp_path):
    config = load_config(checkout)
    app = fingerprints(checkout)["app"]
    built = assemble_context(config.image("app"), app.files, checkout, tmp_path / "ctx")
    assert files_under(built.root) == sorted([*(path for path, _ in app.files), ".wheelhouse/requirements/starlette-1.10.0-py3-none-any.whl"])
    assert "secrets.env" not in files_under(built.root) and "src/svc/notes.txt" in files_under(built.root)
    assert (built.context, built.dockerfile) == (built.root, built.root / "docker/Dockerfile")
    assert built.linked_bytes == 5000 and built.copied_bytes == sum((checkout / p).stat().st_size for p, _ in app.files)


def test_the_assembled_context_fingerprints_to_the_same_digests(checkout, tmp_path):
    config = load_config(checkout)
    before = fingerprints(checkout)
    for name in config.names:
        built = assemble_context(config.image(name), before[name].files, checkout, tmp_path / name)
        (built.root / "images.yaml").write_text((checkout / "images.yaml").read_text())
        again = fingerprint_images(config, DiskSources(built.root, skip=(".wheelhouse/", "images.yaml")), strict=False)
        assert again[name].files == before[name].files
        parent = config.image(name).parent
        if parent is None:
            assert again[name].digest == before[name].digest


def test_a_file_edited_after_fingerprinting_is_refused(checkout, tmp_path):
    config = load_config(checkout)
    app = fingerprints(checkout)["app"]
    (checkout / "src/svc/app.py").write_text("print('changed under our feet')\n")
    with pytest.raises(ContextChanged, match=r"src/svc/app.py changed after it was fingerprinted; run the build again"):
        assemble_context(config.image("app"), app.files, checkout, tmp_path / "ctx")
    (checkout / "src/svc/app.py").unlink()
    with pytest.raises(ContextChanged, match=r"src/svc/app.py vanished"):
        assemble_context(config.image("app"), app.files, checkout, tmp_path / "ctx")


def test_a_comment_in_a_wheel_requirements_file_after_fingerprinting_is_the_same_input(checkout, tmp_path):
    config = load_config(checkout)
    app = fingerprints(checkout)["app"]
    with (checkout / "requirements/requirements.txt").open("a") as handle:
        handle.write("# a comment pip does not read\n")
    built = assemble_context(config.image("app"), app.files, checkout, tmp_path / "ctx")
    assert (built.root / "requirements/requirements.txt").read_text().endswith("# a comment pip does not read\n")


def test_modes_and_times_are_gits_view_and_fixed(checkout, tmp_path):
    config = load_config(checkout)
    script = checkout / "src/svc/run.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o700)
    (checkout / "src/svc/app.py").chmod(0o600)
    (checkout / "src/svc/link.py").symlink_to("app.py")
    app = fingerprints(checkout)["app"]
    built = assemble_context(config.image("app"), app.files, checkout, tmp_path / "ctx")
    svc = built.root / "src/svc"
    assert stat.S_IMODE((svc / "run.sh").stat().st_mode) == 0o755 and stat.S_IMODE((svc / "app.py").stat().st_mode) == 0o644
    assert os.readlink(svc / "link.py") == "app.py"
    assert {int(p.lstat().st_mtime) for p in [svc, svc / "app.py", svc / "link.py", built.root]} == {FIXED_MTIME}


def test_wheels_are_hard_linked_not_copied(checkout, tmp_path):
    config = load_config(checkout)
    base = fingerprints(checkout)["base"]
    built = assemble_context(config.image("base"), base.files, checkout, tmp_path / "ctx")
    wheel = ".wheelhouse/requirements-torch/torch-2.13.0-cp311-none-any.whl"
    assert (built.root / wheel).stat().st_ino == (checkout / wheel).stat().st_ino


def test_a_context_below_the_root_and_a_dockerfile_outside_it(checkout, tmp_path):
    config = load_config(checkout)
    spec = config.image("app")
    layout = context_layout(replace(spec, context="src"), (("docker/Dockerfile", "x"),))
    assert (layout.context, layout.dockerfile, layout.wheel_folders) == ("src", "docker/Dockerfile", (".wheelhouse/requirements",))


def test_assembling_again_starts_from_an_empty_folder(checkout, tmp_path):
    config = load_config(checkout)
    app = fingerprints(checkout)["app"]
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx/left-over.txt").write_text("from an earlier build\n")
    built = assemble_context(config.image("app"), app.files, checkout, tmp_path / "ctx")
    assert not (built.root / "left-over.txt").exists()


def test_each_fingerprint_gets_a_folder_of_its_own_and_the_images_earlier_ones_go(checkout, tmp_path):
    # BuildKit syncs a context folder by path, trusting size and time; the times are fixed, so a path must name one content
    config = load_config(checkout)
    first = fingerprints(checkout)["app"]
    one = assemble_image_context(config.image("app"), first.files, checkout, tmp_path / "contexts", first.tag)
    assert one.root == tmp_path / "contexts" / "app" / first.tag
    (checkout / "src/svc/app.py").write_text("print('hullo')\n")  # same size, other content
    second = fingerprints(checkout)["app"]
    assert second.tag != first.tag
    two = assemble_image_context(config.image("app"), second.files, checkout, tmp_path / "contexts", second.tag)
    assert two.root != one.root and (two.root / "src/svc/app.py").read_text() == "print('hullo')\n"
    assert sorted(p.name for p in (tmp_path / "contexts" / "app").iterdir()) == [second.tag]
