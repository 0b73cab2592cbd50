"""What the repository says about the family: each image's inputs (its fingerprint, and what is worth a warning about
them) and what changed since the base commit, explained.

The working tree is listed once and fingerprinted; both results are kept in
``.imagegraph/cache`` (:mod:`imagegraph.adapters.inputcache`) by a key that
covers every input and the code that computes them, so a plan of an
unchanged checkout reads them back instead. The base commit's fingerprints
are kept by its commit id, since a commit never changes. The rules are core's
(:mod:`imagegraph.core.fingerprint`, :mod:`imagegraph.core.changes`); this
module gathers what git says and hands it to them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from .adapters.inputcache import InputCache, cache_key
from .adapters.repo import Repository
from .adapters.trees import WorkingTree
from .core import dockerfile as dockerfile_rules
from .core import dockerfile_check, dockerfile_context, dockerfile_syntax, dockerignore, links
from .core import fingerprint as fingerprint_rules
from .core.changes import EMPTY_TREE, BaseRequest, Explanation, direct_causes, locate_base, same_as_base, unlisted_causes
from .core.config import Config, config_from_text, override_platforms, read_repo_text
from .core.defaults import CONFIG_NAME
from .core.dockerfile import input_warnings
from .core.errors import ConfigError, ImagegraphError
from .core.fingerprint import Fingerprint, fingerprint_images
from .core.options import BuildOptions

__all__ = ["RepositoryInputs"]


def _rules_code() -> tuple[str, ...]:
    """The modules whose rules make fingerprints and input checks: part of every kept result's key."""
    return (fingerprint_rules.__file__, dockerfile_rules.__file__, dockerfile_check.__file__, dockerfile_context.__file__,
            dockerfile_syntax.__file__, dockerignore.__file__, links.__file__,
            sys.modules[WorkingTree.__module__].__file__ or "", __file__)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not text: {value!r}")
    return value


class RepositoryInputs:
    """The family's inputs in this checkout, and what changed since a base commit (computed once, or read back)."""

    def __init__(self, root: Path, config: Config, options: BuildOptions, git: Repository, cache: Callable[[str], InputCache]) -> None:
        self.root, self.config, self.options, self.git = root, config, options, git
        #: Where one kind of result is kept: ``cache("inputs")``, ``cache("commits")``.
        self._cache = cache

    @cached_property
    def sources(self) -> WorkingTree:
        return self.git.working_tree()

    @property
    def fingerprints(self) -> dict[str, Fingerprint]:
        return self._found[0]

    @property
    def warnings(self) -> tuple[str, ...]:
        """Files a Dockerfile uses that images.yaml does not declare as the image's inputs, and inputs so large they cost every build."""
        return self._found[1]

    @cached_property
    def _found(self) -> tuple[dict[str, Fingerprint], tuple[str, ...]]:
        """The fingerprints and the input warnings: computed, or the last plan's when the content is the same.

        See :mod:`imagegraph.adapters.inputcache`: the key covers every tracked path and
        content id, the changed files' content, the image definitions and the
        code that computes both, so a hit is exactly what computing would give.
        """
        names = [spec.name for spec in self.config.images]

        def compute() -> tuple[dict[str, Fingerprint], tuple[str, ...]]:
            fingerprints = fingerprint_images(self.config, self.sources)
            links.check_input_links(self.root, {name: fp.files for name, fp in fingerprints.items()})
            return fingerprints, input_warnings(self.config, self.sources, fingerprints, size=self.sources.size,
                                                read_text=lambda path: read_repo_text(self.root, path))

        def decode(entry: Mapping[str, Any]) -> tuple[dict[str, Fingerprint], tuple[str, ...]]:
            fingerprints = {name: Fingerprint.from_dict(name, entry["fingerprints"][name]) for name in names}
            return fingerprints, tuple(str(warning) for warning in entry["warnings"])

        key = cache_key(self.sources.content_key(), repr((self.config.images, self.config.python)), _rules_code())
        return self._cache("inputs").remember(
            key, compute, decode=decode,
            encode=lambda found: {"fingerprints": {name: fp.to_dict() for name, fp in found[0].items()}, "warnings": found[1]})

    def explain(self, request: BaseRequest, *, say: Callable[[str], None] = lambda line: None) -> Explanation:
        """What git says changed since the base ``request`` names, and which images it touches."""
        repo = self.git
        sources = self.sources  # git lists the checkout from now on, while the base is located
        base, note = locate_base(repo, request, say=say)
        if base is None:
            return Explanation(base=None, note=note)
        if CONFIG_NAME in sources and sources.oid(CONFIG_NAME).startswith(f"{links.LINK_MODE} "):
            # images.yaml is read from disk, through the link, but compared with the base by its path: an edit of the file
            # it points to would keep every image's settings "unchanged since the base" while they moved on.
            raise ConfigError(CONFIG_NAME, "is a symbolic link, and a change to the file it points to would not show as a change to "
                                           "images.yaml; replace the link with a copy of its target")
        changes = repo.diff(base.commit, sources)
        config_changed = any(CONFIG_NAME in change.paths for change in changes)
        base_config = self._config_at(base.commit) if config_changed else self.config
        causes = direct_causes(self.config, changes, base_config, config_changed=config_changed, present=sources)
        # images.yaml new since the base, or unreadable there: nothing can be the same.
        if base_config is None:
            return Explanation(base=base, changes=changes, causes=causes, note=note)
        # The paths git lists explain; the fingerprints decide: only an image whose fingerprint is the base's was published.
        at_base = self._fingerprints_at(base.commit, base_config)
        same = same_as_base(self.config, self.fingerprints, base_config, at_base)
        if any(spec.name not in same and spec.name not in causes and spec.name in at_base and (spec.parent is None or spec.parent in same)
               for spec in self.config.images):
            # a difference no listed path explains (never expected): fingerprinted again, files and all, to name its inputs
            base_files = fingerprint_images(base_config, self.git.commit_tree(base.commit), strict=False)
            causes = {**causes, **unlisted_causes(self.config, self.fingerprints, base_files, causes, same)}
        return Explanation(base=base, changes=changes, causes=causes, same_as_base=same, note=note)

    def _fingerprints_at(self, commit: str, base_config: Config) -> dict[str, str]:
        """Every image's fingerprint digest over a commit's tree, kept by the commit id (a commit never changes) like the inputs' results.

        The base is fingerprinted whole, not only where git lists a change:
        what git lists is what explains, never what decides. Listing the
        commit's tree costs one `git ls-tree`, once per base commit.
        """
        def compute() -> dict[str, str]:
            try:
                found = fingerprint_images(base_config, self.git.commit_tree(commit), strict=False)
            except ImagegraphError:
                return {}  # a tree no fingerprint can be made of (an ignore file far too large): nothing there is the same
            return {name: fingerprint.digest for name, fingerprint in found.items()}

        key = cache_key(f"commit {commit}", repr((base_config.images, base_config.python)), _rules_code())
        return self._cache("commits").remember(key, compute, encode=lambda found: {"digests": found},
                                               decode=lambda entry: {str(name): _text(digest) for name, digest in entry["digests"].items()})

    def _config_at(self, commit: str) -> Config | None:
        """images.yaml as ``commit`` had it, with this run's overrides; None when it had none or it is invalid there."""
        if commit == EMPTY_TREE:
            return None
        tree = self.git.commit_tree(commit)
        if CONFIG_NAME not in tree.paths():
            return None
        try:
            config = config_from_text(tree.read(CONFIG_NAME).decode("utf-8", "replace"), self.root, registry=self.options.registry)
        except ImagegraphError:
            return None
        return override_platforms(config, self.options.platforms) if self.options.platforms else config
