"""Invoke entry point: the tasks live in the imagegraph library (src/imagegraph/tasks/), and this repository adds
`engine.*` from the provisioning package beside it (src/imagegraph_provision/).

This checkout's src/ comes first on sys.path, so its own tasks run even where
the library is not installed yet (the devcontainer's post-create installs it).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from imagegraph.tasks import menu
from imagegraph_provision.tasks import ns as engine

ns = menu(engine)
