"""Lending $IMAGEGRAPH_REGISTRY_USER/PASSWORD to the docker and buildx processes imagegraph starts, never writing them down.

imagegraph's own registry client reads those variables; docker and buildx
read only a docker config (``$DOCKER_CONFIG/config.json``), where a password
would sit in the clear. So for the length of a run they get a config of
their own, in a temporary directory (mode 0700, removed at the end):

- ``config.json``: the user's own config, with the registry's host sent to
  the credential helper ``imagegraph`` (``credHelpers``) and its ``auths``
  entry left out (the variables win, as they do for imagegraph's client);
  every other file of the user's config directory (contexts, cli-plugins)
  is a link to the original, and ``$BUILDX_CONFIG`` keeps buildx's builders
  and state where they were;
- ``docker-credential-imagegraph``, a small program on the processes'
  ``PATH`` that answers the helper protocol's ``get`` for that host from the
  two variables in its own environment (inherited from imagegraph, through
  docker or buildx): the secret is in no file, only in the environment of
  imagegraph's own processes, as it already was.

buildx answers BuildKit's requests for credentials from that config
(BuildKit's session auth provider loads ``$DOCKER_CONFIG/config.json`` and
asks the helper it names), whatever the driver.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from ..core.values import login_domain

__all__ = ["HELPER_NAME", "lend_credentials"]

#: The credential helper's name as a docker config names it (the program is ``docker-credential-imagegraph``).
HELPER_NAME = "imagegraph"
#: Where the docker CLI keeps Docker Hub's credentials, whatever the host is called.
_DOCKER_HUB = "https://index.docker.io/v1/"

_HELPER = """#!{python} -IS
# imagegraph's credential helper for one run: answers `get` for {hosts} from the environment, stores nothing.
import json, os, sys
HOSTS = {hosts!r}
if sys.argv[1:] != ["get"]:
    print("imagegraph lends credentials for one run only: nothing to store, erase or list")
    sys.exit(1)
server = sys.stdin.read().strip()
user, secret = os.environ.get("IMAGEGRAPH_REGISTRY_USER"), os.environ.get("IMAGEGRAPH_REGISTRY_PASSWORD")
if server not in HOSTS or not user or not secret:
    print("credentials not found in native keychain")
    sys.exit(1)
print(json.dumps({{"ServerURL": server, "Username": user, "Secret": secret}}))
"""


def _keys(host: str) -> tuple[str, ...]:
    """The names the docker CLI asks a helper about for ``host``."""
    return (host, _DOCKER_HUB) if host in ("docker.io", "index.docker.io", "registry-1.docker.io") else (host,)


@contextlib.contextmanager
def lend_credentials(host: str, environ: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """The environment the docker and buildx processes of a run need to push to ``host`` with $IMAGEGRAPH_REGISTRY_USER/PASSWORD.

    Nothing (``{}``) when those variables are not both set: docker and buildx
    then read the user's docker config, as imagegraph's own client does. The
    temporary directory is removed when the block ends, however it ends.
    """
    environ = os.environ if environ is None else environ
    if not (environ.get("IMAGEGRAPH_REGISTRY_USER") and environ.get("IMAGEGRAPH_REGISTRY_PASSWORD")):
        yield {}
        return
    original = Path(environ.get("DOCKER_CONFIG") or Path.home() / ".docker")  # empty counts as unset, as for docker
    lent = Path(tempfile.mkdtemp(prefix="imagegraph-docker-"))  # mode 0700
    try:
        config, tools = lent / "config", lent / "bin"
        config.mkdir(mode=0o700)
        tools.mkdir(mode=0o700)
        _write_config(config, original, _keys(host))
        helper = tools / f"docker-credential-{HELPER_NAME}"
        helper.write_text(_HELPER.format(python=sys.executable, hosts=_keys(host)))
        helper.chmod(0o700)
        yield {
            "DOCKER_CONFIG": str(config),
            "BUILDX_CONFIG": environ.get("BUILDX_CONFIG") or str(original / "buildx"),
            "PATH": os.pathsep.join(filter(None, (str(tools), environ.get("PATH", os.defpath)))),
        }
    finally:
        shutil.rmtree(lent, ignore_errors=True)


def _write_config(config: Path, original: Path, keys: tuple[str, ...]) -> None:
    """``config.json``: the user's, with ``keys`` sent to the helper; the directory's other entries linked to the originals."""
    try:
        document = json.loads((original / "config.json").read_text())
    except (OSError, ValueError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    helpers = document.get("credHelpers") if isinstance(document.get("credHelpers"), dict) else {}
    document["credHelpers"] = {**helpers, **dict.fromkeys(keys, HELPER_NAME)}
    if isinstance(document.get("auths"), dict):
        document["auths"] = {key: entry for key, entry in document["auths"].items()
                             if login_domain(key) not in keys and key not in keys}
    target = config / "config.json"
    target.touch(mode=0o600)
    target.write_text(json.dumps(document, indent=1))
    with contextlib.suppress(OSError):
        for entry in original.iterdir():
            if entry.name not in ("config.json", "buildx"):
                (config / entry.name).symlink_to(entry)
