"""`invoke affected --json`: the images a change affects, as CI job matrices, and the GitHub Actions step outputs made of them."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..core.changes import Explanation
from ..core.config import Config
from ..core.graph import depths
from ..core.plan import ImagePlan

__all__ = ["affected_matrix", "github_outputs"]


def affected_matrix(config: Config, explanation: Explanation, entries: Sequence[ImagePlan]) -> dict[str, Any]:
    """`invoke affected --json`: the images to build, as one CI job matrix and as one matrix per depth.

    ``levels`` holds every depth images.yaml has (0: the images without a
    parent), empty ones too, so a CI job per depth finds its own level
    whatever changed: GitHub Actions cannot add jobs, or make one job wait
    for another, while a run is under way.
    """
    depth = depths(config)
    include = [{"image": e.name, "parent": config.image(e.name).parent, "depth": depth[e.name],
                "platforms": ",".join(e.platforms), "fingerprint": e.fingerprint, "ref": e.ref, "reason": e.reason} for e in entries]
    rows: list[list[dict[str, Any]]] = [[] for _ in range(max(depth.values()) + 1)]
    for row in include:  # one pass: a chain n deep has n levels, and a scan of every row per level would cost n²
        rows[row["depth"]].append(row)
    levels = [{"depth": level, "images": [row["image"] for row in found], "matrix": {"include": found}} for level, found in enumerate(rows)]
    return {"images": [e.name for e in entries], "matrix": {"include": include}, "levels": levels, "git": explanation.to_dict()}


def github_outputs(matrix: Mapping[str, Any]) -> dict[str, str]:
    """Step outputs for GitHub Actions from :func:`affected_matrix`: ``images`` and ``level-<depth>``, compact JSON each.

    A level with nothing to build is ``{"include":[]}``: a job reading it
    tests ``fromJSON(...).include[0]`` to skip, as an empty matrix is an error.
    Keys without a value (a root image's ``parent``) are left out of the
    rows, so no matrix value is null.
    """
    compact = functools.partial(json.dumps, separators=(",", ":"))
    outputs = {"images": compact(matrix["images"])}
    for level in matrix["levels"]:
        rows = [{key: value for key, value in row.items() if value is not None} for row in level["matrix"]["include"]]
        outputs[f"level-{level['depth']}"] = compact({"include": rows})
    return outputs
