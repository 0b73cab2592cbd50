from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegraph.adapters.trees import blob_id
from imagegraph.core.config import ImageSpec, load_config
from imagegraph.core.errors import ConfigError
from imagegraph.core.fingerprint import fingerprint_images, match_glob, matches, normalize_requirements
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


def test_a_newline_in_a_file_name_cannot_forge_another_file_list(family):
    """Two files, or one whose name spells the first's line and the second's name: two contexts, two fingerprints."""
    config = load_config(family)
    two = {**FAMILY_FILES, "src/svc/a.py": "x\n", "src/svc/a.pz": "y\n"}
    forged = {**FAMILY_FILES, f"src/svc/a.py 100644 {blob_id(b'x' + bytes([10]))}\nfile src/svc/a.pz": "y\n"}
    assert fingerprint_images(config, MemorySources(two))["app"].digest != fingerprint_images(config, MemorySources(forged))["app"].digest
    odd = fingerprint_images(config, MemorySources({**FAMILY_FILES, "src/svc/bad\udcff.py": ""}))  # a name that is not UTF-8
    assert odd["app"].digest != fingerprint_images(config, MemorySources({**FAMILY_FILES, "src/svc/bad\ufffd.py": ""}))["app"].digest


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


# -- what pip would see, and only in files declared as wheel requirements --------------------------------------------


@pytest.mark.parametrize(("before", "after"), [
    ("starlette==1.10.0\n", "starlette == 1.10.0\n"),
    ("starlette==1.10.0\n", "Starlette==1.10\n"),
    ("starlette==1.10.0\n", "starlette==1.10.0  # pinned\n# header\n\n"),
    ("zope.interface>=5,<6\n", "Zope_Interface <6 , >=5.0\n"),
    ("uvicorn[standard,httptools]==0.54\n", "uvicorn[httptools, Standard]==0.54.0\n"),
    ("torch==2.3.0; python_version<'3.12'\n", 'torch==2.3.0 ; python_version < "3.12"\n'),
    ("a==1\nb==2\n", "b==2\na==1\na==1\n"),
    ("numpy==2.0 --hash=sha256:abc\n", "numpy==2.0 \\\n    --hash sha256:abc\n"),
    ("--extra-index-url=https://x/simple\ntorch==2.3\n", "torch==2.3\n--extra-index-url https://x/simple\n"),
])
def test_requirement_forms_pip_reads_alike_are_one_requirement(before, after):
    assert normalize_requirements(before) == normalize_requirements(after)


@pytest.mark.parametrize(("before", "after"), [
    ("starlette==1.10.0\n", "starlette==1.10.1\n"),
    ("starlette==1.10.0\n", "starlette>=1.10.0\n"),
    ("foo~=1.4\n", "foo~=1.4.0\n"),  # compatible release depends on the number of parts
    ("foo==1.0.*\n", "foo==1.*\n"),
    ("uvicorn==0.54\n", "uvicorn[standard]==0.54\n"),
    ("torch==2.3.0; python_version<'3.12'\n", "torch==2.3.0; python_version<'3.13'\n"),
    ("torch==2.3\n", "torch==2.3\n--extra-index-url https://x/simple\n"),
    ("a==1#not-a-comment\n", "a==1#other\n"),
    ("./pkg-a\n", "./pkg-b\n"),
])
def test_a_change_pip_would_see_counts(before, after):
    assert normalize_requirements(before) != normalize_requirements(after)


def test_spacing_in_a_wheel_requirement_rebuilds_nothing(family, baseline):
    assert changed(family, baseline, "requirements/requirements.txt", "starlette == 1.10.0\nUvicorn==0.54\n") == set()


def test_a_data_file_named_like_requirements_counts_byte_for_byte(family):
    # a file of the app's inputs, copied into the image as it is: a comment in it is content
    files = {**FAMILY_FILES, "src/svc/requirements-model.txt": "weights==3\n"}
    before = tags(family, files)
    after = tags(family, {**files, "src/svc/requirements-model.txt": "weights==3\n# retrained\n"})
    assert {name for name in before if before[name] != after[name]} == {"app"}


def test_a_file_that_is_one_images_wheels_and_another_images_input_counts_byte_for_byte_there(family):
    text = (family / "images.yaml").read_text().replace('inputs: ["src/svc/**"]', 'inputs: ["src/svc/**", "requirements/requirements-dev.txt"]')
    (family / "images.yaml").write_text(text)
    before = tags(family, FAMILY_FILES)
    after = tags(family, {**FAMILY_FILES, "requirements/requirements-dev.txt": "pytest==9.0.0  # test runner\n"})
    assert {name for name in before if before[name] != after[name]} == {"app"}


# -- every setting that changes the result -----------------------------------------------------------------------------


def test_the_python_version_that_picks_the_wheels_counts(family):
    config = load_config(family)
    before = fingerprint_images(config, MemorySources(FAMILY_FILES))
    after = fingerprint_images(replace(config, python="3.12"), MemorySources(FAMILY_FILES))
    assert all(after[name].digest != before[name].digest for name in before)


def test_an_image_without_wheels_does_not_depend_on_the_python_setting(family):
    text = (family / "images.yaml").read_text().replace("    wheels: [requirements/requirements-torch.txt]\n", "")
    (family / "images.yaml").write_text(text)
    config = load_config(family)
    before = fingerprint_images(config, MemorySources(FAMILY_FILES))
    after = fingerprint_images(replace(config, python="3.12"), MemorySources(FAMILY_FILES))
    assert after["base"].digest == before["base"].digest and after["app"].digest != before["app"].digest


@pytest.mark.parametrize(("setting", "value"), [("target", "deps"), ("platforms", ("linux/arm64",)), ("build_args", (("MODE", "x"),)),
                                                ("dockerfile", "docker/Dockerfile.ci"), ("parent", None)])
def test_each_image_setting_counts(family, setting, value):
    config = load_config(family)
    before = fingerprint_images(config, MemorySources(FAMILY_FILES))
    app = replace(config.image("app"), **{setting: value})
    after = fingerprint_images(replace(config, images=tuple(app if s.name == "app" else s for s in config.images)), MemorySources(FAMILY_FILES))
    assert after["app"].digest != before["app"].digest and after["base"].digest == before["base"].digest


def test_the_root_dockerignore_counts_only_for_images_without_their_own(family):
    own = {**FAMILY_FILES, ".dockerignore": ".git\n", "docker/Dockerfile.base.dockerignore": "*\n", "docker/Dockerfile.ci.dockerignore": "*\n",
           "docker/Dockerfile.dockerignore": "*\n!src/svc\n"}
    before = tags(family, own)
    after = tags(family, {**own, ".dockerignore": ".git\n.nox\n"})
    # devcontainer has no .devcontainer/Dockerfile.dockerignore: the builder reads the root one for it alone
    assert {name for name in before if before[name] != after[name]} == {"devcontainer"}
    files = dict(fingerprint_images(load_config(family), MemorySources(own))["app"].files)
    assert "docker/Dockerfile.dockerignore" in files and ".dockerignore" not in files


def test_a_declared_file_the_ignore_file_drops_is_neither_hashed_nor_counted(family):
    files = {**FAMILY_FILES, "docker/Dockerfile.dockerignore": "*\n!src/svc\n**/*.md\n", "src/svc/NOTES.md": "draft\n"}
    before = fingerprint_images(load_config(family), MemorySources(files))
    after = fingerprint_images(load_config(family), MemorySources({**files, "src/svc/NOTES.md": "another draft\n"}))
    assert after["app"].digest == before["app"].digest
    assert "src/svc/NOTES.md" not in dict(before["app"].files) and "src/svc/app.py" in dict(before["app"].files)
    # the ignore file itself, the Dockerfile and the wheels' requirements always count, though `*` drops them
    assert {"docker/Dockerfile", "docker/Dockerfile.dockerignore", "requirements/requirements.txt"} <= set(dict(before["app"].files))


def test_a_wheels_file_that_includes_another_file_is_refused_with_the_fix(family):
    files = {**FAMILY_FILES, "requirements/requirements.txt": "-r requirements-dev.txt\nstarlette==1.10.0\n"}
    with pytest.raises(ConfigError, match=r"wheels: requirements/requirements.txt includes another file \(--requirement requirements-dev.txt\)"):
        tags(family, files)
    # an older commit is what it was: fingerprinted, not refused
    assert fingerprint_images(load_config(family), MemorySources(files), strict=False)["app"].digest


def test_a_wheels_file_may_include_another_of_the_images_wheels_files(family):
    files = {**FAMILY_FILES, "requirements/requirements-dev.txt": "-r requirements.txt\npytest==9.0.0\n"}
    # ci (fingerprinted before devcontainer) lists both files under wheels; devcontainer only the one that includes
    with pytest.raises(ConfigError, match=r"image 'devcontainer': wheels: requirements/requirements-dev.txt includes another file"):
        tags(family, files)


_SEGMENTS = st.sampled_from(["src", "svc", "a b", "x.y", "-", "é", "s*", "q?", "[ab]", ".", "..", "", "#c", "lib"])


@settings(max_examples=300, deadline=None)
@given(folder=st.lists(_SEGMENTS, min_size=1, max_size=3), anchored=st.booleans(),
       paths=st.lists(st.lists(st.sampled_from(["src", "svc", "a b", "x.y", "é", "lib", "sx", "q1", "a", "#c"]), min_size=1, max_size=4)
                      .map("/".join), max_size=25, unique=True))
def test_a_folder_pattern_is_answered_by_its_slice_exactly_as_the_gitignore_matcher_answers(folder, anchored, paths):
    """`dir/**` skips the gitignore matcher; whatever the folder's name, the answer is the matcher's."""
    import pathspec

    pattern = ("/" if anchored else "") + "/".join(folder) + "/**"
    paths = sorted(paths)
    matcher = pathspec.GitIgnoreSpec.from_lines([pattern])
    assert match_glob(pattern, paths) == [p for p in paths if matcher.match_file(p)]
    spec = ImageSpec(name="app", dockerfile="docker/Dockerfile", inputs=(pattern,))  # no generated path is one of its fixed files
    assert [p for p in paths if matches(spec, p, frozenset(paths))] == [p for p in paths if matcher.match_file(p)]
