from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from imagegraph.config import load_config
from imagegraph.errors import ConfigError
from imagegraph.fingerprint import fingerprint_images, match_glob, normalize_requirements
from imagegraph.repo import blob_id
from tests.conftest import FAMILY_FILES


class MemorySources:
    """The repository's files held in a dict: the seam the fingerprint reads through."""

    def __init__(self, files: dict[str, str]) -> None:
        self._files = dict(files)
        self.reads: list[str] = []
        self.hashed: list[str] = []

    def paths(self) -> Sequence[str]:
        return sorted(self._files)

    def oid(self, path: str) -> str:
        self.hashed.append(path)
        return f"100644 {blob_id(self._files[path].encode())}"

    def read(self, path: str) -> bytes:
        self.reads.append(path)
        return self._files[path].encode()


def tags(family, files: dict[str, str]) -> dict[str, str]:
    return {name: fp.tag for name, fp in fingerprint_images(load_config(family), MemorySources(files)).items()}


@pytest.fixture
def baseline(family):
    return tags(family, FAMILY_FILES)


def changed(family, baseline, relpath: str, text: str) -> set[str]:
    after = tags(family, {**FAMILY_FILES, relpath: text})
    return {name for name in baseline if after[name] != baseline[name]}


def test_deterministic_and_distinct(family, baseline):
    assert tags(family, FAMILY_FILES) == baseline
    assert len(set(baseline.values())) == 4
    assert all(len(tag) == 16 and int(tag, 16) >= 0 for tag in baseline.values())


def test_torch_requirement_change_rebuilds_everything(family, baseline):
    assert changed(family, baseline, "requirements/requirements-torch.txt", "torch==2.14.0\n") == {"base", "ci", "app", "devcontainer"}


def test_comment_order_and_blank_lines_in_requirements_do_not_count(family, baseline):
    noisy = "# pinned for the service\n\nuvicorn==0.54.0   # server\n  starlette==1.10.0\n\n"
    assert changed(family, baseline, "requirements/requirements.txt", noisy) == set()


def test_service_requirement_rebuilds_its_users(family, baseline):
    assert changed(family, baseline, "requirements/requirements.txt", "starlette==1.10.0\nuvicorn==0.54.0\nhttpx==0.28.1\n") == {"ci", "app"}


def test_code_change_rebuilds_only_the_image_that_copies_it(family, baseline):
    assert changed(family, baseline, "src/svc/app.py", "print('bye')\n") == {"app"}


def test_unrelated_files_rebuild_nothing(family, baseline):
    assert changed(family, baseline, "README.md", "# docs changed\n") == set()
    assert changed(family, baseline, "docs/guide.md", "new page\n") == set()


def test_base_dockerfile_change_rebuilds_all(family, baseline):
    assert changed(family, baseline, "docker/Dockerfile.base", "FROM python:3.12-slim\n") == {"base", "ci", "app", "devcontainer"}


def test_dockerignore_of_an_image_counts(family, baseline):
    assert changed(family, baseline, "docker/Dockerfile.dockerignore", "*\n!src\n") == {"app"}


def test_platforms_and_build_args_count(family):
    config = load_config(family)
    sources = MemorySources(FAMILY_FILES)
    before = fingerprint_images(config, sources)
    app = replace(config.image("app"), build_args=(("MODE", "fast"),))
    after = fingerprint_images(replace(config, images=tuple(app if s.name == "app" else s for s in config.images)), sources)
    assert after["app"].digest != before["app"].digest and after["base"].digest == before["base"].digest


def test_only_requirements_are_read_and_each_file_identified_once(family):
    sources = MemorySources(FAMILY_FILES)
    fingerprints = fingerprint_images(load_config(family), sources)
    assert sorted(set(sources.reads)) == sorted(sources.reads) == [
        "requirements/requirements-dev.txt", "requirements/requirements-torch.txt", "requirements/requirements.txt"]
    assert len(sources.hashed) == len(set(sources.hashed)) and "README.md" not in sources.hashed
    app = dict(fingerprints["app"].files)
    assert app["src/svc/app.py"] == f"100644 {blob_id(FAMILY_FILES['src/svc/app.py'].encode())}"
    assert app["requirements/requirements.txt"].startswith("requirements ")


def test_file_mode_counts(family):
    class Executable(MemorySources):
        def oid(self, path: str) -> str:
            return super().oid(path).replace("100644", "100755") if path == "src/svc/app.py" else super().oid(path)

    config = load_config(family)
    plain = fingerprint_images(config, MemorySources(FAMILY_FILES))
    executable = fingerprint_images(config, Executable(FAMILY_FILES))
    assert plain["app"].digest != executable["app"].digest and plain["ci"].digest == executable["ci"].digest


def test_blob_id_is_gits():
    # `printf 'hello\n' | git hash-object --stdin`
    assert blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.parametrize(("pattern", "expected"), [
    ("src/svc/**", ["src/svc/__init__.py", "src/svc/app.py", "src/svc/sub/x.py"]),
    ("src/svc", ["src/svc/__init__.py", "src/svc/app.py", "src/svc/sub/x.py"]),
    ("*.md", ["README.md", "docs/guide.md"]),
    ("/README.md", ["README.md"]),
    ("src/**/x.py", ["src/svc/sub/x.py"]),
    ("src/sv?/*.py", ["src/svc/__init__.py", "src/svc/app.py"]),
])
def test_match_glob_slices_by_literal_prefix_with_gitignore_rules(pattern, expected):
    paths = sorted(["README.md", "docs/guide.md", "src/svc/__init__.py", "src/svc/app.py", "src/svc/sub/x.py", "src/svc2/y.py", "srcx/z.py"])
    assert match_glob(pattern, paths) == expected


def test_glob_that_matches_nothing_is_an_error(family):
    files = {k: v for k, v in FAMILY_FILES.items() if not k.startswith("src/")}
    with pytest.raises(ConfigError, match=r"input 'src/svc/\*\*' matches no file"):
        tags(family, files)


def test_normalize_requirements():
    text = "b==2  # why\n\n# header\na==1\n\tc==3\t# tab comment\nb==2\n"
    assert normalize_requirements(text) == "a==1\nb==2\nc==3\n"
