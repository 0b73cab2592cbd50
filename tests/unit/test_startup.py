"""Start-up costs only what the task needs: the task list and the plan load no engine or registry client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
ADAPTERS = ("docker", "requests", "urllib3")


def loaded_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize("code", [
    "import imagegraph",
    "import imagegraph.tasks",  # what every `invoke` call loads, `invoke --list` and `invoke plan` too
    "import imagegraph.core.plan, imagegraph.core.fingerprint, imagegraph.core.dockerfile, imagegraph.core.config",
    "from imagegraph.workspace import Workspace",
    "from imagegraph.adapters.registry import Registry",
])
def test_loads_no_engine_or_registry_client(code):
    assert not loaded_after(code) & set(ADAPTERS)


def test_the_package_names_load_on_first_use():
    import imagegraph

    assert imagegraph.Workspace.__module__ == "imagegraph.workspace"
    assert sorted(imagegraph.__all__) == sorted(imagegraph._HOMES)
    with pytest.raises(AttributeError):
        imagegraph.Nothing  # noqa: B018
