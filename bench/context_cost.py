"""What an assembled build context costs, against today's plain directory context, on a real image's inputs.

    python bench/context_cost.py [--image base] [--repeat 7] [--fetch] [--json]

Today the builder receives the project root as its context and the docker
client walks it, keeping what the image's ignore file lets through. With
:func:`imagegraph.adapters.context.assemble_context` the builder receives a fresh
directory holding exactly the files the fingerprint covers (copied) and the
image's wheel folders (hard-linked); the client walks that instead.

Measured, interleaved round by round so machine noise hits both alike:

- ``scan today``: the client's walk of the project root through the ignore
  file (docker-py's matcher, as imagegraph's Dockerfile checks use it): the
  files and bytes a build sends today;
- ``assemble``: writing the assembled context (the one new cost per build);
- ``scan assembled``: the client's walk of the assembled context, the files
  and bytes it sends (the same files, when every input is declared);
- disk: bytes copied (new disk space) and bytes hard-linked (none).

The fingerprint itself is computed by every plan already and is not counted.
The torch base's wheels must be in ``.wheelhouse/`` (`invoke build` fetches
them; ``--fetch`` does it here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from imagegraph.adapters.context import assemble_context  # noqa: E402
from imagegraph.adapters.runner import Runner  # noqa: E402
from imagegraph.adapters.wheelhouse import Wheelhouse  # noqa: E402
from imagegraph.core.dockerignore import _IgnoreFile  # noqa: E402  (the client's ignore rules, as the Dockerfile checks apply them)
from imagegraph.core.fingerprint import ignore_file  # noqa: E402
from imagegraph.workspace import Workspace  # noqa: E402


def scan(context: Path, ignore_lines: list[str]) -> tuple[int, int]:
    """(files, bytes) the docker client sends from ``context``: a walk that prunes what the ignore file excludes."""
    excluded = _IgnoreFile(ignore_lines)
    files = size = 0
    for folder, dirs, names in os.walk(context):
        rel = Path(folder).relative_to(context).as_posix()
        prefix = "" if rel == "." else rel + "/"
        # the client skips a folder the ignore file excludes, unless a ! pattern points inside it
        dirs[:] = [d for d in dirs if not excluded(prefix + d) or any(r.startswith(prefix + d) for r in excluded._reincluded)]
        for name in names:
            if not excluded(prefix + name):
                files += 1
                size += (Path(folder) / name).lstat().st_size
    return files, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="base")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--fetch", action="store_true", help="fetch the image's wheels first (as invoke build does)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    workspace = Workspace(ROOT)
    spec = workspace.config.image(args.image)
    if args.fetch:
        Wheelhouse(workspace.root, Runner(), python=workspace.config.python).ensure(spec.wheels, spec.platforms, say=print)
    missing = [w for w in spec.wheels if not (workspace.root / ".wheelhouse" / Path(w).stem).is_dir()]
    if missing:
        sys.exit(f"no wheels for {', '.join(missing)} in .wheelhouse/: run with --fetch (or `invoke build` once)")
    fingerprint = workspace.fingerprints[args.image]
    present = frozenset(workspace.sources.paths())
    ignore = ignore_file(spec, present)
    lines = (workspace.root / ignore).read_text(encoding="utf-8").splitlines() if ignore in present else []

    rounds: dict[str, list[float]] = {"scan today": [], "assemble": [], "scan assembled": []}
    with tempfile.TemporaryDirectory(dir=workspace.root / ".imagegraph" if (workspace.root / ".imagegraph").is_dir() else None) as tmp:
        dest = Path(tmp) / args.image
        for _ in range(args.repeat + 1):  # the first round warms the page cache and is not counted
            started = time.perf_counter()
            today = scan(workspace.root / spec.context, lines)
            scanned = time.perf_counter()
            built = assemble_context(spec, fingerprint.files, workspace.root, dest)
            assembled = time.perf_counter()
            sent = scan(built.context, lines)
            done = time.perf_counter()
            for key, seconds in (("scan today", scanned - started), ("assemble", assembled - scanned), ("scan assembled", done - assembled)):
                rounds[key].append(seconds)
    result = {
        "image": args.image,
        "inputs": [path for path, _ in fingerprint.files],
        "today": {"files": today[0], "bytes": today[1], "scan_ms": _median_ms(rounds["scan today"])},
        "assembled": {"files": sent[0], "bytes": sent[1], "assemble_ms": _median_ms(rounds["assemble"]),
                      "scan_ms": _median_ms(rounds["scan assembled"]), "copied_bytes": built.copied_bytes, "linked_bytes": built.linked_bytes},
        "repeat": args.repeat,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"image {args.image}: inputs {', '.join(result['inputs'])}; wheel folders hard-linked; median of {args.repeat} rounds")
    print(f"  today     : sends {today[0]} files, {_size(today[1])}; client scan {result['today']['scan_ms']} ms")
    print(f"  assembled : sends {sent[0]} files, {_size(sent[1])}; assemble {result['assembled']['assemble_ms']} ms "
          f"+ client scan {result['assembled']['scan_ms']} ms; disk: {_size(built.copied_bytes)} copied, "
          f"{_size(built.linked_bytes)} hard-linked (no new space)")


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values[1:]) * 1000, 2)


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n} B"


if __name__ == "__main__":
    main()
