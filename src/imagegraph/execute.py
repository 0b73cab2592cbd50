"""Carry out a plan: build what it says, in dependency order, siblings in parallel.

The executor decides nothing. Each image whose parent is done starts at once
(not level by level), so a slow sibling never holds up an unrelated child.
A failed image stops its descendants and nothing else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config
from .engine.builders import Builder, BuildRequest, StepCount, count_steps, platform_suffix
from .engine.images import LocalImages
from .errors import ImagegraphError
from .plan import Decision, ImagePlan, Plan
from .registry import Registry, split_ref
from .runner import Command, Runner
from .wheelhouse import Wheelhouse

__all__ = ["Executor", "ImageResult"]

HEARTBEAT_SECONDS = 30.0


@dataclass(frozen=True)
class ImageResult:
    name: str
    decision: Decision
    ref: str
    reason: str
    seconds: float = 0.0
    size: int | None = None
    layers: int | None = None
    digest: str | None = None
    pushed: bool = False
    error: str | None = None
    log: str | None = None
    #: Dockerfile steps answered from a cache (the engine's or the registry's), and all steps run.
    steps: StepCount = field(default_factory=StepCount)

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor:
    def __init__(
        self,
        config: Config,
        builder: Builder,
        runner: Runner,
        wheelhouse: Wheelhouse,
        *,
        local: LocalImages,
        registry: Registry | None,
        log_dir: Path,
        labels: Mapping[str, str] | None = None,
        jobs: int = 2,
        say: Callable[[str], None] = print,
        registry_cache: bool = True,
    ) -> None:
        self.config = config
        self.builder = builder
        self.runner = runner
        self.wheelhouse = wheelhouse
        self.local = local
        self.registry = registry
        self.log_dir = log_dir
        self.labels = dict(labels or {})
        self.jobs = max(1, jobs)
        self.registry_cache = registry_cache
        self._say = say
        self._say_lock = threading.Lock()
        self._running: dict[str, float] = {}

    def say(self, line: str) -> None:
        with self._say_lock:
            self._say(line)

    def run(self, plan: Plan) -> tuple[ImageResult, ...]:
        results: dict[str, ImageResult] = {}
        waiting = [entry for entry in plan.images]
        futures: dict[Future[ImageResult], str] = {}
        stop = threading.Event()
        ticker = threading.Thread(target=self._heartbeat, args=(stop,), daemon=True)
        ticker.start()
        try:
            with ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="imagegraph") as pool:
                while waiting or futures:
                    for entry in list(waiting):
                        parent = self.config.image(entry.name).parent
                        if parent is not None and parent not in results:
                            continue
                        waiting.remove(entry)
                        if parent is not None and not results[parent].ok:
                            results[entry.name] = self._blocked(entry, parent)
                        elif entry.decision is Decision.BUILD or entry.push_existing:
                            futures[pool.submit(self._work, entry)] = entry.name
                        else:
                            results[entry.name] = ImageResult(entry.name, entry.decision, entry.ref, entry.reason)
                    if futures:
                        done, _ = wait(futures, return_when=FIRST_COMPLETED)
                        for future in done:
                            results[futures.pop(future)] = future.result()
        finally:
            stop.set()
        return tuple(results[entry.name] for entry in plan.images)

    def _blocked(self, entry: ImagePlan, parent: str) -> ImageResult:
        if entry.decision is Decision.BUILD or entry.push_existing:
            return ImageResult(entry.name, entry.decision, entry.ref, entry.reason, error=f"not built: parent {parent} failed")
        return ImageResult(entry.name, entry.decision, entry.ref, entry.reason)

    def _work(self, entry: ImagePlan) -> ImageResult:
        log = self.log_dir / f"{entry.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        started = time.monotonic()
        self._running[entry.name] = started
        try:
            steps = StepCount()
            if entry.decision is Decision.BUILD:
                self.say(f"[{entry.name}] building {', '.join(entry.platforms)} ({entry.reason}); log: {log}")
                steps = self._build(entry, log)
            else:
                self.say(f"[{entry.name}] pushing the local image to the registry")
                self.runner.run(Command.of(self.builder.docker, "push", entry.ref), log_path=log)
            seconds = time.monotonic() - started
            result = self._describe(entry, seconds, str(log), steps)
            cached = f", {steps.cached}/{steps.total} steps cached" if steps.total else ""
            self.say(f"[{entry.name}] done in {seconds:.1f}s{cached}")
            return result
        except ImagegraphError as err:
            seconds = time.monotonic() - started
            detail = getattr(err, "output_tail", "").strip().splitlines()[-3:]
            self.say(f"[{entry.name}] FAILED after {seconds:.1f}s: {err}")
            for line in detail:
                self.say(f"[{entry.name}]   {line}")
            return ImageResult(entry.name, entry.decision, entry.ref, entry.reason, seconds=seconds, error=str(err), log=str(log))
        finally:
            self._running.pop(entry.name, None)

    def _build(self, entry: ImagePlan, log: Path) -> StepCount:
        spec = self.config.image(entry.name)
        if spec.wheels:
            self.wheelhouse.ensure(spec.wheels, entry.platforms, log_path=log, say=lambda line: self.say(f"[{entry.name}] {line}"))
        build_args = dict(spec.build_args)
        if entry.parent_ref:
            build_args["BASE_IMAGE"] = entry.parent_ref
        labels = {**self.labels, "org.opencontainers.image.title": entry.name, "imagegraph.fingerprint": entry.fingerprint}
        if entry.parent_ref:
            labels["imagegraph.parent"] = entry.parent_ref
        request = BuildRequest(
            image=entry.name,
            dockerfile=self.config.root / spec.dockerfile,
            context=self.config.root / spec.context,
            ref=entry.ref,
            platforms=entry.platforms,
            target=spec.target,
            build_args=tuple(sorted(build_args.items())),
            labels=tuple(sorted(labels.items())),
            push=entry.push,
            no_cache=entry.no_cache,
            insecure_registry=self.registry.insecure if self.registry else False,
            cache_repository=self.config.repository(entry.name) if spec.push and self.registry and self.registry_cache else None,
        )
        steps = StepCount()
        for command in self.builder.commands(request):
            # only build commands print BuildKit steps; pushes and manifest commands count as none
            steps += count_steps(self.runner.run(command, log_path=log).output)
        self._write_cache_tags(entry, request)
        return steps

    def _write_cache_tags(self, entry: ImagePlan, request: BuildRequest) -> None:
        """Point the registry cache tags at what was just pushed (a copy inside the registry, nothing uploaded)."""
        if self.registry is None:
            return
        for source, cache_tag in self.builder.cache_copies(request):
            _, name, tag = split_ref(source)
            try:
                self.registry.copy_tag(name, tag, cache_tag)
            except ImagegraphError as err:
                self.say(f"[{entry.name}] warning: registry cache tag {cache_tag} not updated: {err}")

    def _describe(self, entry: ImagePlan, seconds: float, log: str, steps: StepCount) -> ImageResult:
        info = self.local.info(entry.ref)
        if info is None and len(entry.platforms) > 1:
            info = self.local.info(f"{entry.ref}-{platform_suffix(entry.platforms[0])}")
        digest = None
        if entry.push and self.registry is not None:
            _, name, tag = split_ref(entry.ref)
            digest = self.registry.manifest_digest(name, tag)
        return ImageResult(
            entry.name, entry.decision, entry.ref, entry.reason, seconds=seconds,
            size=info.size if info else None, layers=info.layers if info else None,
            digest=digest, pushed=digest is not None, log=log, steps=steps,
        )

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            now = time.monotonic()
            busy = ", ".join(f"{name} {now - start:.0f}s" for name, start in sorted(self._running.items()))
            if busy:
                self.say(f"... still working: {busy}")
