"""Real docker credential helpers for tests: small programs written into a directory that the test puts first on PATH.

A helper speaks the protocol docker and docker-py use
(https://github.com/docker/docker-credential-helpers): ``docker-credential-NAME
get`` reads a server address on stdin and prints ``{"ServerURL", "Username",
"Secret"}`` as JSON, or "credentials not found" and exits 1. Each one records
the addresses it was asked for, so a test can tell whether it ran.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CredentialHelper", "write_credential_helper", "write_helper_config"]

_PROGRAM = """#!{python}
import json, sys
BROKEN, EXIT_CODE, RAW, KNOWN = {broken!r}, {exit_code!r}, {raw!r}, json.loads({known!r})
with open({log!r}, "a") as log:
    server = sys.stdin.read().strip()
    log.write(server + "\\n")
if sys.argv[1:] != ["get"]:
    print("only get is implemented here")
    sys.exit(1)
if BROKEN is not None:
    print(BROKEN)
    sys.exit(EXIT_CODE)
if RAW is not None:
    print(RAW)
    sys.exit(0)
if server not in KNOWN:
    print("credentials not found in native keychain")
    sys.exit(1)
print(json.dumps({{"ServerURL": server, "Username": KNOWN[server][0], "Secret": KNOWN[server][1]}}))
"""


@dataclass(frozen=True)
class CredentialHelper:
    #: What the docker config names (``credHelpers``/``credsStore``): the program is ``docker-credential-<name>``.
    name: str
    path: Path
    log: Path

    @property
    def program(self) -> str:
        return f"docker-credential-{self.name}"

    def asked(self) -> list[str]:
        """The server addresses it was asked for, in order."""
        return self.log.read_text().splitlines() if self.log.exists() else []


def write_credential_helper(directory: Path, name: str, known: dict[str, tuple[str, str]] | None = None, *,
                            broken: str | None = None, exit_code: int = 3, raw: str | None = None) -> CredentialHelper:
    """``docker-credential-<name>`` in ``directory``, answering ``known`` {server: (username, secret)}.

    ``broken``: it prints that and exits ``exit_code`` instead (a locked keychain, say); ``raw``: it prints that, not JSON.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"docker-credential-{name}"
    log = directory / f"{name}.asked"
    path.write_text(_PROGRAM.format(python=sys.executable, log=str(log), broken=broken, exit_code=exit_code, raw=raw,
                                    known=json.dumps(known or {})))
    path.chmod(0o755)
    return CredentialHelper(name, path, log)


def write_helper_config(directory: Path, *, cred_helpers: dict[str, str] | None = None, creds_store: str | None = None,
                        auths: dict[str, dict] | None = None) -> Path:
    """A docker config dir whose config.json names credential helpers, as `docker login` leaves it with one (empty auths entries)."""
    directory.mkdir(parents=True, exist_ok=True)
    document: dict[str, object] = {"auths": auths if auths is not None else {server: {} for server in cred_helpers or {}}}
    if cred_helpers:
        document["credHelpers"] = cred_helpers
    if creds_store:
        document["credsStore"] = creds_store
    (directory / "config.json").write_text(json.dumps(document))
    return directory
