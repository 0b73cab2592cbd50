"""The adapters: everything that talks to the world. git (repo), the container engine as builds use it (engine/), the
registry (registry, registry_http, registry_auth, inventory, tagmove, prune), processes and signals
(runner, interrupt, runlock), the file system (context, wheelhouse, bake files) and the devcontainer.
Each turns the core's values into actions and the world's answers back into values. Import rule:
adapters import core and other adapters (and git, docker, requests, which nothing else may import);
never presentation/, execute, workspace or tasks/, but for the few plain helpers named in
tests/unit/test_layout.py.
"""
