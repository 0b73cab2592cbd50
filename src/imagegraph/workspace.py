"""Resolve everything once (config, options, engine, registry) and wire the parts together.

Tasks and sessions build one :class:`Workspace` from their flags and ask it
for a plan or an executor; no task repeats the config/CLI merge.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from .adapters.docker_login import lend_credentials
from .adapters.inputcache import InputCache
from .adapters.lookups import look_up_availability
from .adapters.registry import Registry
from .adapters.repo import Repository
from .adapters.runner import Runner
from .adapters.trees import WorkingTree
from .core.cache import BuilderKind
from .core.changes import Explanation
from .core.ci import choose_base, event_from_env, event_from_git, read_event, source_url
from .core.config import Config, load_config, override_platforms
from .core.defaults import CONFIG_NAME, STATE_DIR
from .core.dockerfile import check_dockerfiles
from .core.errors import ConfigError, ImagegraphError, InputError
from .core.fingerprint import Fingerprint
from .core.graph import with_ancestors
from .core.options import BuildOptions, platforms_from_env
from .core.plan import Availability, ImagePlan, Plan, affected, fingerprint_ref, lookups_needed, make_plan, part_ref, trust_broken
from .core.request import BuildSettings, Revision
from .core.tags import Event, TagPolicy
from .inputs import RepositoryInputs

# What planning needs is imported above; what only building, publishing, releasing, cleaning up or reporting
# needs (the engine, the executor, tag moves, retention, reports) is imported where it is used, so `invoke plan`
# loads none of it.
if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from .adapters.engine.builder_choice import BuilderChoice
    from .adapters.engine.builders import Builder
    from .adapters.engine.images import LocalImages
    from .adapters.lease import Lease
    from .execute import BuildExecutor
    from .presentation.progress import Progress
    from .reporting import RunReports

__all__ = ["Workspace", "find_root"]

#: The registry lease that cleanup, releases and a build's tag moves each hold while they change the family's tags.
TAGS_LEASE = "tags"


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` that holds images.yaml."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise ConfigError(CONFIG_NAME, f"not found in {here} or any parent; run from the repository that has images.yaml")


class Workspace:
    """The composition root: the config, this run's options, and the adapters every part reaches the world through.

    The adapters are the seam: ``git`` (the git repository), ``registry`` (the
    distribution registry), ``local`` (the engine's images),
    ``builder_choice`` (which buildx builder builds; ``builder`` is made
    from it) and ``runner`` (commands). Each one not given is the real one,
    built on first use (so a plan that asks no registry loads no HTTP client).
    The rules the workspace applies are pure functions elsewhere
    (:mod:`imagegraph.core.plan`, :mod:`imagegraph.core.tags`, :mod:`imagegraph.core.retention`);
    what runs after a plan takes the workspace (:mod:`imagegraph.execute`, :mod:`imagegraph.publishing`,
    :mod:`imagegraph.release`, :mod:`imagegraph.cleanup`). Tests drive it through fakes of the adapters.
    """

    def __init__(self, root: Path | None = None, options: BuildOptions | None = None, *, runner: Runner | None = None,
                 git: Repository | None = None, registry: Registry | None = None, local: LocalImages | None = None,
                 builder_choice: BuilderChoice | None = None) -> None:
        self.root = find_root(root)
        self.options = options or BuildOptions()
        self.runner = runner or Runner()
        from .core.lease import LeaseTimes
        #: How registry leases are timed (tests shorten them).
        self.lease_times = LeaseTimes()
        self._git, self._registry, self._local, self._builder_choice = git, registry, local, builder_choice
        config = load_config(self.root, registry=self.options.registry)
        # --platform wins; $IMAGEGRAPH_PLATFORMS is the same override for a whole environment.
        platforms = self.options.platforms or platforms_from_env(os.environ)
        if platforms:
            config = override_platforms(config, platforms)
            self.options = replace(self.options, platforms=platforms)
        self.config: Config = config
        for flag, names in (("--force", self.options.force), ("--target", self.options.targets)):
            for name in names:
                self.config.image(name, flag)  # unknown names fail early, with "did you mean"
        check_dockerfiles(self.config)

    @cached_property
    def git(self) -> Repository:
        if self._git is not None:
            return self._git
        return Repository(self.root, cache=self._cache("diffs"))

    def _cache(self, kind: str) -> InputCache:
        """Where plans keep one kind of result (:mod:`imagegraph.adapters.inputcache`): inputs, commits, diffs."""
        return InputCache(self.root / STATE_DIR / "cache" / kind, within=self.root)

    @cached_property
    def inputs(self) -> RepositoryInputs:
        """The family's inputs in this checkout and what changed since the base (:mod:`imagegraph.inputs`)."""
        return RepositoryInputs(self.root, self.config, self.options, self.git, self._cache)

    @property
    def sources(self) -> WorkingTree:
        return self.inputs.sources

    @property
    def fingerprints(self) -> dict[str, Fingerprint]:
        return self.inputs.fingerprints

    def explain(self, *, say=lambda line: None) -> Explanation:
        """What git says changed since the base ref (the one CI's event or the default branch names), and which images it touches."""
        _ = self.sources  # git lists the checkout from now on, while the default branch and the base are looked up
        request = choose_base(self.options.since, os.environ, read_event(os.environ), default_branch=self.default_branch)
        return self.inputs.explain(request, say=say)

    @cached_property
    def default_branch(self) -> str | None:
        """What the repository calls its default branch (:meth:`imagegraph.adapters.repo.Repository.default_branch`)."""
        return self.git.default_branch()

    @cached_property
    def registry(self) -> Registry:
        return self._registry if self._registry is not None else Registry(self.config.registry_address.domain)

    @cached_property
    def local(self) -> LocalImages:
        from .adapters.engine.images import LocalImages
        return self._local if self._local is not None else LocalImages()

    @cached_property
    def builder_choice(self) -> BuilderChoice:
        """Which buildx builder builds, and how (asked only when something is to be built)."""
        from .adapters.engine.builder_choice import choose_builder, named_builder, observe_builder
        if self._builder_choice is not None:
            return self._builder_choice
        named, origin = named_builder(self.options.builder, os.environ, self.config.builder)
        facts = observe_builder(self.runner, named=named, named_from=origin)
        return choose_builder(facts)

    @cached_property
    def builder(self) -> Builder:
        return self.builder_choice.make()

    @property
    def tag_policy(self) -> TagPolicy:
        return TagPolicy(edge=self.config.edge_tag, push_pull_requests=self.config.push_pull_requests or self.options.push_pr)

    def ref(self, name: str) -> str:
        return str(fingerprint_ref(self.config, self.fingerprints, name))

    def plan(self, *, say=lambda line: None) -> Plan:
        """The plan of this run, made in one pass (:func:`imagegraph.core.plan.make_plan`) from what git, the CI event and the registry say."""
        explanation = self.explain(say=say)
        event = self.event()
        return make_plan(
            self.config, self.fingerprints, self._availability(explanation, say), explanation=explanation,
            selected=self.options.targets, force=self.options.force,
            no_cache=self.options.no_cache, platforms=tuple(map(str, self.options.platforms)), warnings=self.input_warnings(),
            event=event, policy=self.tag_policy, revision=self._revision, settings=lambda: self.build_settings,
            only_platform=self.only_platform,
        )

    def check_only_platform(self) -> None:
        """Refuse `--only-platform` for a platform no selected image is declared for: the run would build nothing, silently."""
        platform = self.only_platform
        if platform is None:
            return
        names = with_ancestors(self.config, self.options.targets) if self.options.targets else self.config.names
        declared = sorted({p for name in names for p in self.config.image(name).platforms})
        if platform not in declared:
            source = "--platform or $IMAGEGRAPH_PLATFORMS" if self.options.platforms else "images.yaml"
            raise InputError("--only-platform", f"{platform} is not a platform any image to build is declared for "
                             f"({', '.join(declared)}, by {source}); name one of those")

    @property
    def only_platform(self) -> str | None:
        """The one platform this run builds of each image (`--only-platform`), as text; None: every declared platform."""
        return None if self.options.only_platform is None else str(self.options.only_platform)

    def _availability(self, explanation: Explanation, say: Callable[[str], None]) -> dict[str, Availability]:
        """Where the fingerprint tags the plan needs exist: asked of the registry (and the engine), only about images that may build."""
        select = {"selected": self.options.targets, "force": self.options.force}
        asked = lookups_needed(self.config, explanation, **select)
        availability = self._look_up(asked)
        if trust_broken(self.config, self.fingerprints, explanation, availability):
            say("the base commit's images are not all published: looking up every image")
            availability.update(self._look_up(lookups_needed(self.config, explanation, trust=False, **select) - asked))
        return availability

    def _builder_kind(self) -> BuilderKind:
        """The kind of builder the plan's requests are made for: the builder choice's (it decides where the registry cache lives).

        A plan made where buildx or the engine cannot be asked assumes a builder that builds all platforms at once, as bake
        and every container driver do; `invoke build` asks again before it builds, and fails there with the fix.
        """
        try:
            return self.builder_choice.kind
        except ImagegraphError:
            return BuilderKind.INDEX

    def _look_up(self, names: Collection[str]) -> dict[str, Availability]:
        """Where each image's fingerprint tag exists; in a run of one platform, its part's first, and the whole image's only
        where the part is missing (:func:`imagegraph.core.plan.make_plan` reuses either)."""
        found: dict[str, Availability] = {}
        platform = self.only_platform
        if platform is not None:
            parts = {name: str(part_ref(self.config, self.fingerprints, name, platform)) for name in sorted(names)
                     if platform in self.config.image(name).platforms}
            found = self._look_up_refs({ref: name for name, ref in parts.items()}, (platform,))
            names = [name for name in names if name not in parts or not (found[parts[name]].registry or found[parts[name]].local)]
        return {**found, **self._look_up_refs({self.ref(name): name for name in sorted(names)})}

    def _look_up_refs(self, refs: Mapping[str, str], platforms: tuple[str, ...] = ()) -> dict[str, Availability]:
        """Where each of ``refs`` (reference -> image) exists, whole: every platform given, else every declared one."""
        pushed = {ref: self.config.image(name).push for ref, name in refs.items()}
        wanted = {ref: platforms or tuple(self.config.image(name).platforms) for ref, name in refs.items()}
        return look_up_availability(pushed, self.registry, self.local, wanted) if pushed else {}

    def _revision(self) -> Revision | None:
        """The commit this run builds, as its images' labels name it; None before a first commit."""
        repo = self.git
        head = repo.head()
        return None if head is None else Revision(head, repo.commit_time(head), source_url(repo.remote_url(), os.environ))

    @property
    def build_settings(self) -> BuildSettings:
        """What every build request of this run shares: the contexts folder, and how the registry and its cache are reached."""
        return BuildSettings(contexts=self.contexts_dir, insecure_registry=self.config.registry_address.is_loopback,
                             registry_cache=self.options.registry_cache, builder=self._builder_kind())

    def affected(self, *, say=lambda line: None) -> tuple[Explanation, tuple[ImagePlan, ...]]:
        """The images CI must build, from git and fingerprints alone: the registry is not asked."""
        explanation = self.explain(say=say)
        return explanation, affected(self.config, self.fingerprints, explanation, selected=self.options.targets, force=self.options.force)

    def input_warnings(self) -> tuple[str, ...]:
        """Files a Dockerfile uses that images.yaml does not declare as the image's inputs, and inputs so large they cost every build."""
        return self.inputs.warnings

    @property
    def contexts_dir(self) -> Path:
        """Where build contexts are assembled, one folder per image and fingerprint (bake files point into it)."""
        return self.root / STATE_DIR / "contexts"

    def bake(self, plan: Plan, path: Path, *, say=print) -> dict:
        """Write the bake definition of what ``plan`` builds to ``path``, after fetching the wheels its builds bind-mount."""
        from .adapters.wheelhouse import Wheelhouse
        from .execute import write_bake_file
        return write_bake_file(plan, path, Wheelhouse(self.root, self.runner, python=self.config.python), self.root, self.contexts_dir,
                               self.root / STATE_DIR / "logs", say=say)

    @contextlib.contextmanager
    def registry_login(self) -> Iterator[None]:
        """The docker and buildx processes started in the block push and pull with the credentials imagegraph's own client
        uses: $IMAGEGRAPH_REGISTRY_USER/PASSWORD lent through a temporary docker config (:mod:`imagegraph.adapters.docker_login`),
        or, without them, the user's docker config as it is."""
        with lend_credentials(self.config.registry_address.domain) as env, self.runner.environment(env):
            yield

    def executor(self, *, say=print, progress: Progress | None = None) -> BuildExecutor:
        from .adapters.lease import BuildLeases
        from .adapters.wheelhouse import Wheelhouse
        from .core.lease import BUILD_TIMES
        from .execute import BuildExecutor
        return BuildExecutor(
            self.root, lambda: self.builder, self.runner,
            Wheelhouse(self.root, self.runner, python=self.config.python),
            local=self.local, registry=self.registry, log_dir=self.root / STATE_DIR / "logs", contexts_dir=self.contexts_dir,
            jobs=self.options.jobs, say=say, progress=progress,
            leases=BuildLeases(self.registry, times=replace(self.lease_times, wait=BUILD_TIMES.wait,
                                                            settle=min(self.lease_times.settle, BUILD_TIMES.settle))),
        )

    @cached_property
    def reporting(self) -> RunReports:
        """The run reports (:mod:`imagegraph.reporting`): each run's made and saved, the earlier ones read."""
        from .reporting import RunReports
        return RunReports(self, self.root / STATE_DIR / "reports")

    def event(self) -> Event:
        """What this build stands for: the CI event, else a version tag at HEAD or the branch."""
        from_ci = event_from_env(os.environ, read_event(os.environ))
        if from_ci is not None:
            return from_ci
        repo = self.git
        default = (self.default_branch or "main").removeprefix("origin/")
        return event_from_git(repo.head() or "", repo.tags_at_head(), repo.branch(), default)

    def lease(self, purpose: str, *, say: Callable[[str], None] = print, expire_on_error: bool = False) -> AbstractContextManager[Lease]:
        """The registry lease over the family's tags (:mod:`imagegraph.adapters.lease`): held, and renewed, in a ``with`` block."""
        from .adapters.lease import hold_lease
        return hold_lease(self.registry, self._repositories(), TAGS_LEASE, purpose, times=self.lease_times, say=say,
                          expire_on_error=expire_on_error)

    def _repositories(self) -> list[str]:
        """The repositories (inside the registry) of the images that are pushed."""
        return [self.config.repository_path(spec.name) for spec in self.config.images if spec.push]

    def check_named_builder(self, plan: Plan) -> str | None:
        """The builder the user named (flag, $BUILDX_BUILDER, images.yaml), checked as a build checks it: that it exists and
        runs the plan's platforms. The line that names it; None when none is named or nothing is to build."""
        from .adapters.engine.builder_choice import named_builder
        named, origin = named_builder(self.options.builder, os.environ, self.config.builder)
        if named is None or not plan.to_build():
            return None
        self.check_platforms(plan)
        return f"{self.builder_choice.builder or named} ({self.builder_choice.driver} driver), named by {origin}"

    def check_platforms(self, plan: Plan) -> None:
        """Refuse, before anything runs, to build for a platform the builder can neither run nor emulate."""
        from .adapters.engine.builder_choice import check_platforms
        wanted = sorted({p for entry in plan.to_build() for p in entry.platforms})
        if wanted:
            check_platforms(wanted, self.builder_choice)
