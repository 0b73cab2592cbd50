"""Carry out a plan: build what it says, in dependency order, siblings in parallel.

The executor decides nothing. Each image whose parent is done starts at once
(not level by level), so a slow sibling never holds up an unrelated child.
A failed image stops its descendants and nothing else. When the run is
stopped (the runner's :class:`~imagegraph.adapters.interrupt.Stop`), the running images
end as "interrupted" and the rest as "not built"; nothing new starts.

A parent built in this run together with children built on it goes to the
builder as one bake where the builder can (see :mod:`imagegraph.core.bake_results`):
the children start on the parent's result while its layers are exported.
What that bake leaves undone (a sibling cancelled by another's failure) is
built on its own afterwards, so a failure still stops only descendants.

This module stays whole at some 440 lines on purpose: nearly all of it is the
one :class:`BuildExecutor`, whose scheduling, bakes and per-image work share its
state (the results so far, the stop, the progress), and cutting the class in
two would only spread that state over modules.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from .adapters.bake import bake_definition, write_bake
from .adapters.context import assemble_planned
from .adapters.engine.builders import Builder
from .adapters.engine.images import LocalImages
from .adapters.failures import BuildRetries, engine_lost, engine_lost_message, registry_fault, registry_lost, registry_lost_message
from .adapters.interrupt import Stopped, signal_name
from .adapters.joins import read_join_facts, write_joins
from .adapters.lease import BuildLeases, Lease
from .adapters.registry import Registry, full_ref
from .adapters.registry_http import REGISTRY_RETRY, RetryPolicy
from .adapters.runner import Command, Runner
from .adapters.wheelhouse import Wheelhouse
from .adapters.workdirs import open_own, own_folder, write_own
from .core.bake_results import BakeProgress, BakeTarget, bake_groups, read_metadata
from .core.buildkit import StepCount, count_steps
from .core.defaults import DEFAULT_REGISTRY
from .core.errors import CommandFailed, ImagegraphError
from .core.join import decide_join
from .core.manifests import missing_platforms
from .core.plan import BuiltImage, Decision, ImagePlan, Plan
from .core.request import BuildRequest, platform_suffix
from .core.result import INTERRUPTED, NOT_BUILT, ImageResult
from .core.values import is_digest
from .presentation.progress import BuildKitTracker, Progress, failure_context, phase_of, tracker_for

__all__ = ["BuildExecutor", "prepare_build"]


def prepare_build(entry: BuiltImage, wheelhouse: Wheelhouse, root: Path, contexts_dir: Path, *, log_path: Path | None = None,
                  say: Callable[[str], None] = lambda _: None,
                  follow: Callable[[Command], Callable[[str], None] | None] = lambda _: None) -> BuildRequest:
    """Put on disk what the plan's build request for ``entry`` names: its wheels fetched, its context assembled from
    exactly the files its fingerprint covers (nothing else reaches the builder). `invoke build` and a bake file alike."""
    if entry.wheels:
        wheelhouse.ensure(entry.wheels, entry.platforms, log_path=log_path, say=say, follow=follow)
    assemble_planned(entry.name, entry.layout, root, contexts_dir, entry.fingerprint)
    return entry.request


def write_bake_file(plan: Plan, path: Path, wheelhouse: Wheelhouse, root: Path, contexts: Path, logs: Path, *,
                    say: Callable[[str], None] = print) -> dict:
    """Write the bake definition of what ``plan`` builds to ``path`` (`invoke plan --bake`), each build prepared as
    `invoke build` prepares it: wheels fetched, context assembled. The definition written is returned."""
    log_path = own_folder(logs, root) / "bake-wheels.log"
    requests = [prepare_build(entry, wheelhouse, root, contexts, log_path=log_path, say=lambda line, name=entry.name: say(f"[{name}] {line}"))
                for entry in plan.to_build()]
    definition = bake_definition(requests, {entry.name: entry.parent for entry in plan.images})
    write_bake(path, definition, within=root)  # inside the repository, no link on the way is followed
    return definition


class BuildExecutor:
    @cached_property
    def builder(self) -> Builder:
        made = self._builder
        return made if hasattr(made, "commands") else made()  # type: ignore[operator,return-value]

    def __init__(
        self,
        root: Path,
        builder: Builder | Callable[[], Builder],
        runner: Runner,
        wheelhouse: Wheelhouse,
        *,
        local: LocalImages,
        registry: Registry | None,
        log_dir: Path,
        contexts_dir: Path | None = None,
        jobs: int = 2,
        say: Callable[[str], None] = print,
        progress: Progress | None = None,
        retry: RetryPolicy = REGISTRY_RETRY,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        leases: BuildLeases | None = None,
    ) -> None:
        #: The project root: where the plan's input files are read from (the plan says which, and what to build).
        self.root = Path(root)
        #: The builder, or what makes it on first use: a run that builds nothing never asks buildx about builders.
        self._builder = builder
        self.runner = runner
        self.wheelhouse = wheelhouse
        self.local = local
        self.registry = registry
        self.log_dir = log_dir
        #: Where each image's build context is assembled (``<image>/<fingerprint>/``); beside the logs unless given.
        self.contexts_dir = contexts_dir or log_dir.parent / "contexts"
        self.jobs = max(1, jobs)
        #: Live progress on a terminal, plain lines and a heartbeat in a log; ``say`` receives the lines when no board is given.
        self.progress = progress or Progress(say=say)
        #: How often, and after how long, a build that a registry's passing error ended is tried again (the registry client's policy).
        self.retry = retry
        self._sleep = sleep
        self._clock = clock
        #: Each image's tries so far (a bake's failure counts for the images it leaves to build alone).
        self._retries: dict[str, BuildRetries] = {}
        #: The registry leases that keep two runs from building one fingerprint at once (None: this run alone decides).
        self.leases = leases
        #: Each pushed build's lease, being taken since the run started (:meth:`_claiming`), until its build asks for it.
        self._claimed: dict[str, Future[Lease | None]] = {}

    def say(self, line: str) -> None:
        self.progress.say(line)

    def _retries_of(self, image: str) -> BuildRetries:
        if image not in self._retries:
            self._retries[image] = BuildRetries(self.retry, lambda command, reason: self.builder.repair(command, reason), self._clock)
        return self._retries[image]

    def _pause(self, seconds: float) -> None:
        """Wait before a retry or another look at a lease; a stop (Ctrl-C) ends the wait at once, as it ends a running command."""
        stop = self.runner.stop
        if self._sleep is not None:
            self._sleep(seconds)
        elif stop is not None:
            stop.sleep(seconds)
        else:
            time.sleep(seconds)
        if stop is not None:
            stop.check()

    def run(self, plan: Plan) -> tuple[ImageResult, ...]:
        results: dict[str, ImageResult] = {}
        order = {entry.name: index for index, entry in enumerate(plan.images)}
        waiting = {entry.name: entry for entry in plan.images}
        futures: dict[Future[tuple[dict[str, ImageResult], list[BuiltImage]]], str] = {}
        parents = {entry.name: entry.parent for entry in plan.images}
        builds = {entry.name: entry for entry in plan.to_build()}
        children: dict[str, list[str]] = {}
        for entry in plan.images:
            if entry.parent is not None:
                children.setdefault(entry.parent, []).append(entry.name)
        groups = {group[0]: group for group in bake_groups(plan.images, parents)} if self.registry is not None else {}
        # The waiting images whose parent has a result, by place in the plan: a result makes its children ready by a
        # look-up, where a scan of everything waiting after each result would cost n² over a family of n.
        ready = [order[entry.name] for entry in plan.images if entry.parent is None]
        heapq.heapify(ready)

        def resolved(name: str) -> None:
            for child in children.get(name, ()):
                if child in waiting:
                    heapq.heappush(ready, order[child])

        with self.progress, self._claiming(plan), ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="imagegraph") as pool:
            while waiting or futures:
                while ready:
                    entry = plan.images[heapq.heappop(ready)]
                    if entry.name not in waiting:
                        continue  # made ready twice (a result and a return from a bake at once): started already
                    parent = parents.get(entry.name)
                    del waiting[entry.name]
                    if (not_started := self._stopped_before(entry)) is not None:
                        results[entry.name] = not_started
                    elif parent is not None and not results[parent].ok:
                        results[entry.name] = self._blocked(entry, parent)
                    elif entry.name in groups:
                        group = groups.pop(entry.name)  # once: what the bake leaves undone is built alone
                        members = [builds[name] for name in (entry.name, *sorted((n for n in group if n in waiting), key=order.__getitem__))]
                        for member in members[1:]:
                            del waiting[member.name]
                        futures[pool.submit(self._bake, members)] = entry.name
                        continue
                    elif entry.has_work:
                        futures[pool.submit(lambda e: ({e.name: self._work(e)}, []), entry)] = entry.name
                        continue
                    else:
                        results[entry.name] = ImageResult(entry.name, entry.decision, entry.ref, entry.reason)
                    resolved(entry.name)
                if futures:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        futures.pop(future)
                        finished, again = future.result()
                        results.update(finished)
                        # left undone by a bake: built on their own, each when its parent is done
                        for entry in again:
                            waiting[entry.name] = entry
                        for name in finished:
                            resolved(name)
                        for entry in again:
                            if entry.parent is None or entry.parent in results:
                                heapq.heappush(ready, order[entry.name])
                else:
                    break  # nothing runs, so nothing more can start (only an image whose parent is not in the plan would wait)
        return tuple(results[entry.name] for entry in plan.images)

    @contextmanager
    def _claiming(self, plan: Plan) -> Iterator[None]:
        """Take the build lease of every image the run builds and pushes, side by side, as the run starts: one settle for the
        run, spent while the first builds get ready, not one before each build. Each build then finds its lease taken, or, where
        another run holds it or pushed the image meanwhile, takes it as before (waiting, or reusing that run's push). A lease
        no build asked for (its parent failed, a stop) is let go at once; any left when the run ends, then."""
        entries = [entry for entry in plan.images if isinstance(entry, BuiltImage) and entry.push] if self.leases is not None else []
        if not entries:
            yield
            return
        pool = ThreadPoolExecutor(max_workers=min(len(entries), 16), thread_name_prefix="build-lease")
        self._claimed = {entry.name: pool.submit(self._claim, entry) for entry in entries}
        try:
            yield
        finally:
            for name in list(self._claimed):
                self._let_go(name)
            pool.shutdown(wait=True)

    def _claim(self, entry: BuiltImage) -> Lease | None:
        assert self.leases is not None
        return self.leases.take(entry.image, entry.platforms, force=entry.forced or entry.no_cache, wait=False,
                                say=lambda line: self.say(f"[{entry.name}] {line}"), sleep=self._pause)

    def _let_go(self, name: str) -> None:
        """Let go of ``name``'s lease taken as the run started, once taken, when no build of this run will use it."""
        claimed = self._claimed.pop(name, None)
        if claimed is not None and not claimed.cancel():
            claimed.add_done_callback(_release_claimed)

    def _stopped_before(self, entry: ImagePlan) -> ImageResult | None:
        """The result of work the run was stopped before starting; None when it may start."""
        stop = self.runner.stop
        if stop is None or stop.signum is None or not entry.has_work:
            return None
        self._let_go(entry.name)
        return ImageResult(entry.name, entry.decision, entry.ref, entry.reason, stopped=NOT_BUILT,
                           error=f"not built: the run was stopped by {signal_name(stop.signum)} first")

    def _bake(self, members: list[BuiltImage]) -> tuple[dict[str, ImageResult], list[BuiltImage]]:
        """Build ``members`` (a parent first, then images built on it) in one bake; (their results, those left to build alone)."""
        names = [entry.name for entry in members]
        bake_file = self.log_dir.parent / "bake" / f"{names[0]}.json"
        metadata_file = bake_file.with_suffix(".metadata.json")
        command = self.builder.bake_command(bake_file, names, metadata_file)
        if command is None:
            return {}, members
        held = self._take_together(members)
        if held is None:
            return {}, members
        try:
            return self._baked(members, command, bake_file, metadata_file)
        finally:
            for lease in held:
                lease.release()

    def _take_together(self, members: list[BuiltImage]) -> list[Lease] | None:
        """The build leases of every member of a bake, taken side by side (one settle for all); None, with none kept, when
        another run holds one or pushed one meanwhile: each member is then built alone, where it waits for that run."""
        if self.leases is None:
            return []
        with ThreadPoolExecutor(max_workers=len(members), thread_name_prefix="build-lease") as pool:
            futures = [pool.submit(self._take, entry, _Phases(), wait=False) for entry in members]
            taken: list[tuple[bool, Lease | None]] = []
            error: BaseException | None = None
            for future in futures:
                try:
                    taken.append(future.result())
                except BaseException as err:  # every lease taken is let go first, then it is raised
                    error = error or err
        held = [lease for _, lease in taken if lease is not None]
        if error is None and all(building for building, _ in taken):
            return held
        for lease in held:
            lease.release()
        for entry in members:
            self.progress.end(entry.name)  # no longer at work: each starts again when built alone
        if error is not None and not isinstance(error, ImagegraphError):
            raise error
        return None

    def _baked(self, members: list[BuiltImage], command: Command, bake_file: Path,
               metadata_file: Path) -> tuple[dict[str, ImageResult], list[BuiltImage]]:
        names = [entry.name for entry in members]
        logs = {name: self.log_dir / f"{name}.log" for name in names}
        started = time.monotonic()
        for name, log in logs.items():
            write_own(log, self.root, "")
            self.progress.begin(name)
        finished_at: dict[str, float] = {}
        output = BakeProgress(names, {entry.name: entry.parent for entry in members})
        try:
            requests = []
            wheels: dict[str, float] = {}  # seconds spent fetching each image's wheels (as a lone build counts them)
            for entry in members:
                began = time.monotonic()
                if entry.wheels:
                    self.progress.phase(entry.name, "wheels")
                requests.append(prepare_build(
                    entry, self.wheelhouse, self.root, self.contexts_dir, log_path=logs[entry.name],
                    say=lambda line, n=entry.name: self.say(f"[{n}] {line}"), follow=lambda c, n=entry.name: self.progress.follow(n, tracker_for(c))))
                if entry.wheels:
                    wheels[entry.name] = time.monotonic() - began
            write_bake(bake_file, bake_definition(requests, {entry.name: entry.parent for entry in members}), within=self.root)
            write_own(metadata_file, self.root, "")  # a metadata file left by an earlier bake must not speak for this one
            prepared = time.monotonic()
            followers = {name: self.progress.follow(name, BuildKitTracker()) for name in names}
            for name in names:
                self.progress.phase(name, "build")
                self.say(f"[{name}] building {', '.join(members[names.index(name)].platforms)} with {', '.join(n for n in names if n != name)} "
                         f"in one bake ({members[names.index(name)].reason}); log: {logs[name]}")

            def route(line: str) -> None:
                for images, own in output.feed(line):
                    for image in images:
                        finished_at[image] = time.monotonic()
                        follower = followers[image]
                        if follower is not None:
                            follower(own)

            error: CommandFailed | None = None
            try:
                self.runner.run(command, log_path=self.log_dir / f"bake-{names[0]}.log", on_line=route)
            except CommandFailed as err:
                error = err
            built = read_metadata(metadata_file.read_text(encoding="utf-8", errors="replace"), names) if error is None else {}
            results, again = self._bake_results(members, logs, output, error, built, command, started, prepared, finished_at, wheels)
            if error is not None and again and registry_fault(error.output_tail) is not None:
                self._retry_alone(again, command, error)
            return results, again
        except Stopped as err:
            seconds = time.monotonic() - started
            for name in names:
                self.say(f"[{name}] {INTERRUPTED} after {seconds:.1f}s ({signal_name(err.signum)})")
            return {entry.name: ImageResult(entry.name, entry.decision, entry.ref, entry.reason, seconds=seconds, error=str(err),
                                            log=str(logs[entry.name]), stopped=INTERRUPTED) for entry in members}, []
        except ImagegraphError:
            # wheels or a context that cannot be prepared: each image alone says which, as a lone build does
            return {}, members
        finally:
            for name in names:
                self.progress.end(name)

    def _bake_results(self, members: list[BuiltImage], logs: Mapping[str, Path], output: BakeProgress, error: CommandFailed | None,
                      built: Mapping[str, BakeTarget], command: Command, started: float, prepared: float,
                      finished_at: Mapping[str, float], wheels: Mapping[str, float]) -> tuple[dict[str, ImageResult], list[BuiltImage]]:
        """Each member's result from bake's own records: what its metadata file says each target exported (a bake that
        succeeded), whose own step failed (:meth:`BakeProgress.failures`), else what the registry holds; the rest build alone."""
        bake_log = self.log_dir / f"bake-{members[0].name}.log"
        failures = output.failures() if error is not None else {}
        # a known engine fault (lost layers) or a registry's passing error is tried again by building alone, where retries live
        repairable = error is not None and (self.builder.repair(command, error.reason) is not None
                                            or registry_fault(error.output_tail) is not None)
        results: dict[str, ImageResult] = {}
        again: list[BuiltImage] = []
        for entry in members:
            own = output.output_of(entry.name)
            write_own(logs[entry.name], self.root, f"(built in one bake with {', '.join(m.name for m in members if m is not entry)}; "
                                                        f"the whole output: {bake_log})\n{own}\n")
            parent = entry.parent
            seconds = finished_at.get(entry.name, time.monotonic()) - started
            phases = _Phases()
            if entry.name in wheels:
                phases.add("wheels", wheels[entry.name])
            phases.add("build", finished_at.get(entry.name, time.monotonic()) - prepared)
            if entry.name in built or error is None or self._pushed(entry):
                steps = count_steps(own)
                result = self._describe(entry, seconds, str(logs[entry.name]), steps, phases.items())
                cached = f", {steps.cached}/{steps.total} steps cached" if steps.total else ""
                self.say(f"[{entry.name}] done in {seconds:.1f}s{cached} ({phases.summary()})")
                results[entry.name] = result
            elif error is not None and entry.name in failures and not repairable:
                # its own step failed, for sure (BakeProgress.failures): its own error, whatever became of the parent; a failure
                # the bake's records cannot give anyone for sure leaves the images to build alone, below
                failed = CommandFailed(error.argv, error.returncode, output_tail=failures[entry.name], log_path=str(logs[entry.name]))
                self.say(f"[{entry.name}] FAILED after {seconds:.1f}s: {failed}")
                for line in failure_context(own):
                    self.say(f"[{entry.name}]   {line}")
                results[entry.name] = ImageResult(entry.name, entry.decision, entry.ref, entry.reason, seconds=seconds, error=str(failed),
                                                  log=str(logs[entry.name]), phases=phases.items())
            elif parent in results and not results[parent].ok:
                results[entry.name] = self._blocked(entry, parent)
            else:
                again.append(entry)
        return results, again

    def _retry_alone(self, again: list[BuiltImage], command: Command, error: CommandFailed) -> None:
        """The bake's try counts as each image's first; they are built alone after the wait (a stop ends it)."""
        waits = []
        for entry in again:
            retry = self._retries_of(entry.name).after(command, error, again="building it on its own")
            if retry is not None:
                self.say(f"[{entry.name}] {retry.line}")
                waits.append(retry.wait)
        if waits:
            self._pause(max(waits))

    def _pushed(self, entry: ImagePlan) -> bool:
        """Whether ``entry``'s tag names the whole image it plans, every platform of it: a tag that exists may name one platform's
        manifest, left by a push cut short (:mod:`imagegraph.core.manifests`)."""
        if self.registry is None:
            return False
        try:
            media_type, _, body = self.registry.inspect(entry.image.repository, entry.image.reference)
        except ImagegraphError:
            return False
        return not missing_platforms(media_type, body, entry.platforms)

    def _blocked(self, entry: ImagePlan, parent: str) -> ImageResult:
        self._let_go(entry.name)
        if entry.has_work:
            return ImageResult(entry.name, entry.decision, entry.ref, entry.reason, error=f"not built: parent {parent} failed")
        return ImageResult(entry.name, entry.decision, entry.ref, entry.reason)

    def _work(self, entry: ImagePlan) -> ImageResult:
        not_started = self._stopped_before(entry)
        if not_started is not None:  # queued behind --jobs when the stop came
            return not_started
        log = self.log_dir / f"{entry.name}.log"
        write_own(log, self.root, "")
        started = time.monotonic()
        phases = _Phases()
        self.progress.begin(entry.name)
        try:
            steps = StepCount()
            if isinstance(entry, BuiltImage):
                # its lease still settling: its wheels and context are made meanwhile (in vain only where another run builds it)
                request = self._prepare(entry, log, phases) if entry.name in self._claimed else None
                building, lease = self._take(entry, phases, wait=True)
                if not building:
                    return self._reused(entry, time.monotonic() - started, phases)
                try:
                    self.say(f"[{entry.name}] building {', '.join(entry.platforms)} ({entry.reason}); log: {log}")
                    steps = self._build(entry, log, phases, request)
                finally:
                    if lease is not None:
                        lease.release()
            else:
                self.say(f"[{entry.name}] pushing the local image to the registry")
                self._attempt(entry, Command.of(self.builder.docker, "push", entry.ref, purpose="push"), log, phases)
            seconds = time.monotonic() - started
            result = self._describe(entry, seconds, str(log), steps, phases.items())
            cached = f", {steps.cached}/{steps.total} steps cached" if steps.total else ""
            self.say(f"[{entry.name}] done in {seconds:.1f}s{cached} ({phases.summary()})")
            return result
        except Stopped as err:
            seconds = time.monotonic() - started
            self.say(f"[{entry.name}] {INTERRUPTED} after {seconds:.1f}s ({signal_name(err.signum)})")
            return ImageResult(entry.name, entry.decision, entry.ref, entry.reason, seconds=seconds, error=str(err), log=str(log),
                               phases=phases.items(), stopped=INTERRUPTED)
        except ImagegraphError as err:
            seconds = time.monotonic() - started
            # the message ends with the command's last line; these say what led to it
            detail = failure_context(getattr(err, "output_tail", ""))
            error = self._explain(entry, err)
            self.say(f"[{entry.name}] FAILED after {seconds:.1f}s: {error}")
            for line in detail:
                self.say(f"[{entry.name}]   {line}")
            return ImageResult(entry.name, entry.decision, entry.ref, entry.reason, seconds=seconds, error=error, log=str(log),
                               phases=phases.items())
        finally:
            self.progress.end(entry.name)

    def _take(self, entry: BuiltImage, phases: _Phases, *, wait: bool) -> tuple[bool, Lease | None]:
        """(whether this run builds ``entry``, the fingerprint's lease it builds under): a pushed image is built under its lease
        (:class:`BuildLeases`), waiting while another run builds it; False when that run pushed it whole meanwhile, or, without
        ``wait``, holds it now. A local-only image is no other run's to build: no lease."""
        if self.leases is None or not entry.push:
            return True, None
        started = time.monotonic()
        self.progress.phase(entry.name, "lease")
        claimed = self._claimed.pop(entry.name, None)
        try:
            lease = claimed.result() if claimed is not None else None  # taken as the run started: the settle is behind us
            if lease is None:
                lease = self.leases.take(entry.image, entry.platforms, force=entry.forced or entry.no_cache, wait=wait,
                                         say=lambda line: self.say(f"[{entry.name}] {line}"), sleep=self._pause)
        finally:
            phases.add("lease", time.monotonic() - started)
        return lease is not None, lease

    def _reused(self, entry: BuiltImage, seconds: float, phases: _Phases) -> ImageResult:
        """Another run built and pushed ``entry`` while this one waited for its lease: its push is this run's image."""
        assert self.registry is not None
        digest = self.registry.manifest_digest(entry.image.repository, entry.image.reference)
        self.say(f"[{entry.name}] reusing {entry.ref}: another run built and pushed it while this one waited ({phases.summary()})")
        return ImageResult(entry.name, Decision.REUSE, entry.ref, "another run built it meanwhile", seconds=seconds, digest=digest,
                           phases=phases.items())

    def _explain(self, entry: ImagePlan, err: ImagegraphError) -> str:
        """The failure in the user's words: an engine or registry that went away is named, with the fix, once it is
        seen not to answer any more (a build step's own "unexpected EOF" is no lost engine)."""
        if not isinstance(err, CommandFailed):
            return str(err)
        reason = err.reason.removeprefix("ERROR: ")
        if engine_lost(err.output_tail) and not self.local.answers():
            return engine_lost_message(f"{entry.name} was built", reason)
        registry = self.registry
        lost = registry_lost(err.output_tail, registry.host) if registry is not None else None
        if registry is not None and lost is not None and not self._registry_answers(entry):
            return registry_lost_message(registry.host, entry.name, lost, local=registry.host == DEFAULT_REGISTRY)
        gave_up = self._retries_of(entry.name).gave_up()
        return gave_up or str(err)

    def _registry_answers(self, entry: ImagePlan) -> bool:
        assert self.registry is not None
        try:
            self.registry.manifest_digest(entry.image.repository, entry.image.reference)
        except ImagegraphError:
            return False
        return True

    def _run(self, image: str, command: Command, log: Path, phases: _Phases) -> str:
        """Run one command as a phase of ``image``'s work, its output followed live; returns the output."""
        phase = phase_of(command)
        self.progress.phase(image, phase)
        started = time.monotonic()
        try:
            return self.runner.run(command, log_path=log, on_line=self.progress.follow(image, tracker_for(command))).output
        finally:
            phases.add(phase.split()[0], time.monotonic() - started)

    def _prepare(self, entry: BuiltImage, log: Path, phases: _Phases) -> BuildRequest:
        wheels = bool(entry.wheels)
        if wheels:
            self.progress.phase(entry.name, "wheels")
        started = time.monotonic()
        request = prepare_build(entry, self.wheelhouse, self.root, self.contexts_dir, log_path=log,
                                say=lambda line: self.say(f"[{entry.name}] {line}"),
                                follow=lambda command: self.progress.follow(entry.name, tracker_for(command)))
        if wheels:
            phases.add("wheels", time.monotonic() - started)
        return request

    def _build(self, entry: BuiltImage, log: Path, phases: _Phases, request: BuildRequest | None = None) -> StepCount:
        if request is None:
            request = self._prepare(entry, log, phases)
        if request.pin_parent is not None and self.registry is not None:
            parent = full_ref(request.pin_parent)
            digest = self.registry.manifest_digest(parent.repository, parent.reference)
            if digest is None or not is_digest(digest):
                raise ImagegraphError(f"{entry.name}'s parent {request.pin_parent} is not in the registry (or named by no digest); "
                                      f"build the parent first: `invoke build --only-platform {', '.join(entry.platforms)}` builds "
                                      f"parents first")
            self.say(f"[{entry.name}] built on {request.pin_parent}@{digest}")
            request = request.pinned(digest)
        steps = StepCount()
        for command in self.builder.commands(request):
            # only build commands print BuildKit steps; a push or a prune counts as none
            steps += count_steps(self._attempt(entry, command, log, phases))
        if self.builder.joins(request):
            self._join(entry, log, phases)
        self._write_cache_tags(entry, request)
        return steps

    def _join(self, entry: BuiltImage, log: Path, phases: _Phases) -> None:
        """Join the platforms the builds just pushed under their platform tags into the index at the fingerprint tag, as
        `invoke join` does: each part's platform checked, its attestations kept, the tag read back (the "manifest" phase).

        Whatever the fingerprint tag named before (a forced rebuild's earlier index), the index is made of these parts.
        """
        registry = self.registry
        if registry is None:
            raise ImagegraphError(f"{entry.name}'s platforms were pushed one by one, and joining them needs the registry's client; "
                                  f"build it with the registry at hand (`invoke build`)")
        if self.runner.stop is not None:
            self.runner.stop.check()  # stopped after the last push: the index is not begun, as a command would not start
        self.progress.phase(entry.name, "manifest")
        started = time.monotonic()
        try:
            decided = decide_join(read_join_facts(registry, [entry], current=False), run=lambda platform: f"its {platform} build",
                                  then="run `invoke build` again")
            if decided.refusal is not None:
                raise ImagegraphError(decided.refusal)
            write_joins(registry, decided.to_write, again="invoke build")
        finally:
            phases.add("manifest", time.monotonic() - started)
        for step in decided.steps:
            attested = f" and {step.attestations} attestation(s)" if step.attestations else ""
            with open_own(log, self.root, "a") as out:
                out.write(f"joined {', '.join(step.platforms)}{attested} into {entry.ref}: {step.digest}\n")

    def _attempt(self, entry: ImagePlan, command: Command, log: Path, phases: _Phases) -> str:
        """Run one of ``entry``'s commands, and again while its failure is one a retry clears (:class:`BuildRetries`)."""
        retries = self._retries_of(entry.name)
        while True:
            try:
                return self._run(entry.name, command, log, phases)
            except CommandFailed as err:
                retry = retries.after(command, err)
                if retry is None:
                    raise
                if retries.last is not None and retries.last.writing and self._landed(entry, command):
                    # the registry took the push and only its answer was lost: pushing again would move the tag a second time
                    self.say(f"[{entry.name}] {retries.last.describe()}, but {entry.ref} is in the registry now: the push "
                              "went through, not building again")
                    return ""
                self.say(f"[{entry.name}] {retry.line}")
                if retry.wait:
                    self._pause(retry.wait)
                if retry.repair is not None:
                    self._run(entry.name, retry.repair, log, phases)

    def _landed(self, entry: ImagePlan, command: Command) -> bool:
        """Whether a command that pushes ``entry``'s own tag (a build with --push, a push) left the whole image there (a build of
        one platform of several pushes its platform tag instead: the index is joined after them, :meth:`_join`).

        Present is not enough: buildx's second push on the docker driver writes each platform's manifest to the tag before the
        index, so a push cut short leaves a tag that names one platform (:meth:`_pushed` reads what it names).
        """
        return entry.push and entry.ref in command.argv and self._pushed(entry)

    def _write_cache_tags(self, entry: ImagePlan, request: BuildRequest) -> None:
        """Point the registry cache tags at what was just pushed (a copy inside the registry, nothing uploaded)."""
        if self.registry is None:
            return
        for source, cache_tag in self.builder.cache_copies(request):
            image = full_ref(source)
            try:
                self.registry.copy_tag(image.repository, image.reference, cache_tag)
            except ImagegraphError as err:
                self.say(f"[{entry.name}] warning: registry cache tag {cache_tag} not updated: {err}")

    def _describe(self, entry: ImagePlan, seconds: float, log: str, steps: StepCount,
                  phases: tuple[tuple[str, float], ...] = ()) -> ImageResult:
        try:
            info = self.local.info(entry.ref)
            if info is None and len(entry.platforms) > 1:
                info = self.local.info(f"{entry.ref}-{platform_suffix(entry.platforms[0])}")
        except ImagegraphError as err:  # built and pushed all the same: only its size and layers are not known
            self.say(f"[{entry.name}] warning: size and layers not known: {err}")
            info = None
        digest = None
        if entry.push and self.registry is not None:
            digest = self.registry.manifest_digest(entry.image.repository, entry.image.reference)
        return ImageResult(
            entry.name, entry.decision, entry.ref, entry.reason, seconds=seconds,
            size=info.size if info else None, layers=info.layers if info else None,
            digest=digest, pushed=digest is not None, log=log, steps=steps, phases=phases,
        )


def _release_claimed(claimed: Future[Lease | None]) -> None:
    if not claimed.cancelled() and claimed.exception() is None and (lease := claimed.result()) is not None:
        lease.release()


class _Phases:
    """Seconds per phase kind (wheels, build, push, manifest), summed over platforms, in the order first seen."""

    def __init__(self) -> None:
        self._seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        self._seconds[phase] = self._seconds.get(phase, 0.0) + seconds

    def items(self) -> tuple[tuple[str, float], ...]:
        return tuple((phase, round(seconds, 2)) for phase, seconds in self._seconds.items())

    def summary(self) -> str:
        return ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in self._seconds.items())
