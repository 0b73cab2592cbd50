"""Peak memory of fingerprinting, and of assembling the context of, a checkout with one huge untracked input.

    python bench/input_memory.py [--gigabytes 2] [--json]

A throwaway git repository gets images.yaml, a Dockerfile and a sparse file
of the given size under the image's declared inputs (untracked, so git's
index cannot name its id and it must be read). Each step runs in a fresh
Python process, so its peak resident set size (``ru_maxrss``) is its own:

- ``fingerprint``: the working tree's fingerprints, as every plan computes them;
- ``assemble``: that, then the build context written (the file copied and checked).

Run it with another tree first on PYTHONPATH to compare two versions of imagegraph.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

IMAGES = "registry: 127.0.0.1:5000\nnamespace: bench\nimages:\n  data:\n    dockerfile: Dockerfile\n    inputs: [\"data/**\"]\n"

STEP = """
import resource, sys, time
from pathlib import Path
from imagegraph.adapters.context import assemble_image_context
from imagegraph.workspace import Workspace
started = time.monotonic()
workspace = Workspace(Path(sys.argv[1]))
fingerprint = workspace.fingerprints["data"]
if sys.argv[2] == "assemble":
    assemble_image_context(workspace.config.image("data"), fingerprint.files, workspace.root, Path(sys.argv[3]), fingerprint.tag)
print(time.monotonic() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def measure(repo: Path, step: str, contexts: Path) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", STEP, str(repo), step, str(contexts)], capture_output=True, text=True, check=True).stdout
    seconds, peak = out.split()
    return float(seconds), int(peak)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=2.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="imagegraph-bench-") as folder:
        repo = Path(folder) / "repo"
        (repo / "data").mkdir(parents=True)
        (repo / "images.yaml").write_text(IMAGES)
        (repo / "Dockerfile").write_text("FROM scratch\nCOPY data /data\n")
        (repo / "data/README").write_text("inputs\n")
        for argv in (["init", "-q"], ["add", "-A"], ["-c", "user.name=b", "-c", "user.email=b@example.invalid", "commit", "-qm", "bench"]):
            subprocess.run(["git", "-C", str(repo), *argv], check=True)
        with (repo / "data/huge.bin").open("wb") as out:
            out.truncate(int(args.gigabytes * 1e9))
        rows = {step: measure(repo, step, Path(folder) / "contexts") for step in ("fingerprint", "assemble")}
    where = os.environ.get("PYTHONPATH", "(installed imagegraph)")
    if args.json:
        print(json.dumps({"gigabytes": args.gigabytes, "imagegraph": where,
                          "steps": {step: {"seconds": round(s, 2), "peak_rss_bytes": peak} for step, (s, peak) in rows.items()}}))
        return
    print(f"{args.gigabytes:g} GB untracked input, imagegraph from {where}")
    for step, (seconds, peak) in rows.items():
        print(f"  {step:<12} {seconds:6.1f} s   peak RSS {peak / 2**20:8.0f} MiB")


if __name__ == "__main__":
    main()
