"""The pure rules of reuse: an image is the base's only when its fingerprint is, and inputs git cannot follow are refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from imagegraph.adapters.trees import blob_id
from imagegraph.core.changes import BaseRef, Explanation, same_as_base, unlisted_causes
from imagegraph.core.config import load_config
from imagegraph.core.errors import ConfigError
from imagegraph.core.fingerprint import GITLINK_MODE, fingerprint_images
from imagegraph.core.links import LINK_MODE
from imagegraph.core.plan import Decision, affected, lookups_needed, make_plan
from tests.conftest import FAMILY_FILES
from tests.unit.test_fingerprint import MemorySources


class ModeSources(MemorySources):
    """Files with git's modes: a path in ``modes`` is a link (its text is the target) or a submodule."""

    def __init__(self, files: dict[str, str], modes: dict[str, str]) -> None:
        super().__init__(files)
        self.modes = modes

    def oid(self, path: str) -> str:
        self.hashed.append(path)
        return f"{self.modes.get(path, '100644')} {blob_id(self._files[path].encode())}"


def fingerprints(family, files, modes=None, *, strict=True):
    return fingerprint_images(load_config(family), ModeSources(files, modes or {}), strict=strict)


def test_an_image_is_the_bases_only_when_its_digest_is_whatever_git_lists(family):
    config = load_config(family)
    base = fingerprints(family, FAMILY_FILES)
    now = fingerprints(family, {**FAMILY_FILES, "requirements/requirements-dev.txt": "pytest==8.4.2\nrich==13.9.4\n"})
    at_base = {name: fp.digest for name, fp in base.items()}
    # git listed nothing under any image's inputs (the link): the digests still decide
    same = same_as_base(config, now, config, at_base)
    assert same == {"base", "app"}
    assert unlisted_causes(config, now, base, {}, same) == {"ci": ("requirements/requirements-dev.txt",),
                                                            "devcontainer": ("requirements/requirements-dev.txt",)}
    explanation = Explanation(base=BaseRef("a" * 40, "--since HEAD~1", True), same_as_base=same,
                              causes=unlisted_causes(config, now, base, {}, same))
    assert [e.name for e in affected(config, now, explanation)] == ["ci", "devcontainer"]
    assert lookups_needed(config, explanation) == {"base", "ci", "devcontainer"}
    plan = make_plan(config, now, {}, explanation=explanation)
    assert plan.image("ci").decision is Decision.BUILD and plan.image("ci").reason == "requirements/requirements-dev.txt changed → ci"
    assert plan.image("app").decision is Decision.REUSE


def test_no_base_fingerprints_or_no_base_config_means_nothing_is_the_same(family):
    config = load_config(family)
    now = fingerprints(family, FAMILY_FILES)
    assert same_as_base(config, now, config, {}) == frozenset()
    assert same_as_base(config, now, None, {name: fp.digest for name, fp in now.items()}) == frozenset()
    moved = replace(config, namespace="elsewhere")  # the base published under other repositories
    assert same_as_base(config, now, moved, {name: fp.digest for name, fp in now.items()}) == frozenset()


@pytest.mark.parametrize(("path", "role"), [("requirements/requirements-dev.txt", "wheels file"), ("docker/Dockerfile.ci", "Dockerfile")])
def test_a_file_read_for_its_content_that_is_a_link_is_refused_in_the_working_tree(family, path, role):
    files = {**FAMILY_FILES, path: "../shared/file.txt"}
    with pytest.raises(ConfigError, match=f"{role} '{path}' is a symbolic link.*replace the link with a copy of its target"):
        fingerprints(family, files, {path: LINK_MODE})
    # an older commit is what it was: fingerprinted without a word (and equal to no fingerprint the working tree can have)
    assert fingerprints(family, files, {path: LINK_MODE}, strict=False)["ci"] != fingerprints(family, FAMILY_FILES)["ci"]


def test_a_wheels_file_under_a_folder_link_is_refused(family):
    files = {path: text for path, text in FAMILY_FILES.items() if not path.startswith("requirements/")}
    files["requirements"] = "shared/requirements"
    with pytest.raises(ConfigError, match=r"'requirements/requirements-torch\.txt' lies under 'requirements', a symbolic link"):
        fingerprints(family, files, {"requirements": LINK_MODE})


def test_a_link_among_the_inputs_enters_as_the_link(family):
    files = {**FAMILY_FILES, "src/svc/data.txt": "../../docs/data.txt"}
    app = fingerprints(family, files, {"src/svc/data.txt": LINK_MODE})["app"]
    assert ("src/svc/data.txt", f"{LINK_MODE} {blob_id(b'../../docs/data.txt')}") in app.files


def test_a_submodule_among_the_inputs_is_refused_and_elsewhere_changes_nothing(family):
    with pytest.raises(ConfigError, match=r"image 'app': 'src/svc/vendor' is a git submodule .* narrow the inputs: glob"):
        fingerprints(family, {**FAMILY_FILES, "src/svc/vendor": "c" * 40}, {"src/svc/vendor": GITLINK_MODE})
    outside = fingerprints(family, {**FAMILY_FILES, "vendor/lib": "c" * 40}, {"vendor/lib": GITLINK_MODE})
    assert {name: fp.digest for name, fp in outside.items()} == {name: fp.digest for name, fp in fingerprints(family, FAMILY_FILES).items()}
