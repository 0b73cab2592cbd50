"""`invoke affected --json`: the images a change affects, as CI job matrices, and the GitHub Actions step outputs made of them."""

from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from ..core.cache import platform_suffix
from ..core.changes import Explanation
from ..core.config import Config
from ..core.graph import depths, descendants
from ..core.join import part_tag
from ..core.plan import ImagePlan

__all__ = ["affected_matrix", "github_outputs"]


def affected_matrix(config: Config, explanation: Explanation, entries: Sequence[ImagePlan], *,
                    platforms: Sequence[str] = (), force: Collection[str] = (), since: str | None = None) -> dict[str, Any]:
    """`invoke affected --json`: the images to build, as one CI job matrix and as the jobs of each depth.

    ``levels`` holds every depth images.yaml has (0: the images without a
    parent), empty ones too, so a CI job per depth finds its own level
    whatever changed: GitHub Actions cannot add jobs, or make one job wait
    for another, while a run is under way.

    Each level has two matrices, and one of them is empty. Without
    ``runners:`` in images.yaml, ``matrix`` builds each image whole, all its
    platforms in one job (``invoke build --target IMAGE --no-tags``). With
    them, ``platform_matrix`` builds each image's platforms apart, one job
    per image and platform on that platform's runner (``invoke build
    --target IMAGE --only-platform PLATFORM --no-tags``, its part pushed
    under its platform tag), and ``join`` says whether a join job must then
    make the images of several platforms whole, and which. ``images`` and
    the top-level ``matrix`` list every image the change needs either way.
    Each command is the one the job runs, with what the plan was given
    passed on so that the job decides as the plan did: ``platforms`` (its
    ``--platform``, part of every fingerprint), ``since`` (``--since``), and
    ``--force IMAGE`` for an image that ``force`` rebuilds (the images named
    and those built on them), whose tags would otherwise be found and kept.
    """
    depth = depths(config)
    chosen = (*(("--platform", ",".join(platforms)) if platforms else ()), *(("--since", since) if since is not None else ()))
    forced = {*force, *(below for name in force for below in descendants(config, name))}
    include = [{"image": e.name, "parent": config.image(e.name).parent, "depth": depth[e.name],
                "platforms": ",".join(e.platforms), "fingerprint": e.fingerprint, "ref": e.ref, "reason": e.reason} for e in entries]
    split = bool(config.runners)
    deepest = max(depth.values()) + 1
    names: list[list[str]] = [[] for _ in range(deepest)]
    rows: list[list[dict[str, Any]]] = [[] for _ in range(deepest)]
    parts: list[list[dict[str, Any]]] = [[] for _ in range(deepest)]
    for row, entry in zip(include, entries, strict=True):  # one pass: a chain n deep has n levels, and a scan per level would cost n²
        names[row["depth"]].append(entry.name)
        if split:
            again = (*chosen, *(("--force", entry.name) if entry.name in forced else ()))
            parts[row["depth"]].extend(_platform_job(config, row, entry, platform, again) for platform in entry.platforms)
        else:
            rows[row["depth"]].append(row)
    levels = [{"depth": level, "images": names[level], "matrix": {"include": rows[level]}, "platform_matrix": {"include": parts[level]}}
              for level in range(deepest)]
    joined = [entry.name for entry in entries if split and entry.push and len(entry.platforms) > 1]
    join = {"needed": bool(joined), "images": joined,
            "command": ["invoke", "join", "--target", ",".join(joined), *chosen,
                        *(flag for name in joined if name in forced for flag in ("--force", name)), "--no-tags"] if joined else []}
    return {"images": [e.name for e in entries], "matrix": {"include": include}, "levels": levels, "runners": dict(config.runners),
            "join": join, "git": explanation.to_dict()}


def _platform_job(config: Config, row: Mapping[str, Any], entry: ImagePlan, platform: str, passed: Sequence[str]) -> dict[str, Any]:
    """One image's build of one platform: on the runner images.yaml names for it (None: the CI's default), pushed under its
    platform tag (the fingerprint tag itself for an image of one platform, which then needs no join)."""
    return {"image": entry.name, "platform": platform, "suffix": platform_suffix(platform), "runner": config.runner(platform),
            "parent": row["parent"], "depth": row["depth"], "fingerprint": entry.fingerprint,
            "tag": part_tag(entry.fingerprint, entry.platforms, platform), "reason": entry.reason,
            "command": ["invoke", "build", "--target", entry.name, "--only-platform", platform, *passed, "--no-tags"]}


def github_outputs(matrix: Mapping[str, Any]) -> dict[str, str]:
    """Step outputs for GitHub Actions from :func:`affected_matrix`, compact JSON each: ``images``, per depth ``level-<depth>``
    (its ``matrix``) and ``level-<depth>-platforms`` (its ``platform_matrix``), and ``join``.

    A matrix with nothing to build is ``{"include":[]}``: a job reading it
    tests ``fromJSON(...).include[0]`` to skip, as an empty matrix is an error.
    Keys without a value (a root image's ``parent``, the runner of a platform
    images.yaml gives none) are left out of the rows, so no matrix value is null.
    """
    compact = functools.partial(json.dumps, separators=(",", ":"))

    def rows(found: Mapping[str, Any]) -> str:
        return compact({"include": [{key: value for key, value in row.items() if value is not None} for row in found["include"]]})

    outputs = {"images": compact(matrix["images"])}
    for level in matrix["levels"]:
        outputs[f"level-{level['depth']}"] = rows(level["matrix"])
        outputs[f"level-{level['depth']}-platforms"] = rows(level["platform_matrix"])
    outputs["join"] = compact(matrix["join"])
    return outputs
