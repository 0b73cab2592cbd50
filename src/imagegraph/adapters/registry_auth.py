"""Credentials for a registry: $IMAGEGRAPH_REGISTRY_USER / $IMAGEGRAPH_REGISTRY_PASSWORD, else what ``docker login`` left.

The docker config is read as the docker CLI reads it: the credential helper
``credHelpers`` names for the host, else the ``credsStore``, run here by the
helper protocol (its stderr dropped, its answer never shown); else the
``auths`` entry, decoded by docker-py's ``docker.auth``, imported only then.
Secrets are never printed: neither in an error nor in a repr.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import RegistryError
from ..core.values import login_domain
from .runner import Command, Runner

__all__ = ["Credentials", "credentials_for"]

#: What a helper prints, exiting non-zero, for a host it holds nothing for (docker-credential-helpers' ErrCredentialsNotFound).
_NOT_FOUND = "credentials not found"
#: The user name a helper gives with an identity token (an OAuth refresh token) instead of a password.
_IDENTITY_TOKEN_USER = "<token>"


@dataclass(frozen=True)
class Credentials:
    """A username and password for one registry; the password never shows in a repr."""

    username: str
    password: str = field(repr=False)
    #: Where they came from, for the fix in an error message: "environment" or "docker" (config).
    source: str = "docker"
    #: The program that gave them (``docker-credential-NAME``), when the docker config names one.
    helper: str | None = None


def credentials_for(host: str, runner: Runner | None = None) -> Credentials | None:
    """Credentials for ``host``: $IMAGEGRAPH_REGISTRY_USER/PASSWORD, else what ``docker login`` left in the docker config.

    The config is read here (DOCKER_CONFIG names its directory; empty counts
    as unset, as for docker, and nothing else is looked at then) as the
    docker CLI reads it: the credential helper ``credHelpers`` names for the
    host, else the ``credsStore``, else the ``auths`` entry. Only the entries
    for ``host`` are read, so a garbled entry for another registry does not
    stop this one.
    """
    user, password = os.environ.get("IMAGEGRAPH_REGISTRY_USER"), os.environ.get("IMAGEGRAPH_REGISTRY_PASSWORD")
    if user and password:
        return Credentials(user, password, source="environment")
    config_dir = Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")  # empty counts as unset, as for docker
    path = config_dir / "config.json"
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    garbled = RegistryError(f"{path}: the credentials for {host} are garbled; run `docker login {host}` again")
    auths, helpers, store = document.get("auths") or {}, document.get("credHelpers") or {}, document.get("credsStore") or None
    if not isinstance(auths, dict) or not isinstance(helpers, dict) or not isinstance(store, str | None):
        raise garbled
    name = helpers.get(host) or store  # the host's own helper, else the store: as the docker CLI chooses
    if name is not None and not (isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9._-]*", name)):
        raise garbled
    if name:
        found = _ask_helper(f"docker-credential-{name}", host, path, runner or Runner())
        if found is not None:
            return found
    # An entry without a secret is where `docker login` with a helper leaves a mark; docker-py would call it garbled.
    ours = {key: entry for key, entry in auths.items() if login_domain(key) == host
            and (not isinstance(entry, dict) or entry.get("auth") or entry.get("identitytoken"))}
    if not ours:
        return None
    import docker.auth  # only now: the docker client library costs a start-up that most runs never need
    import docker.errors

    try:
        entry = docker.auth.load_config(config_dict={"auths": ours}).resolve_authconfig(host)
    except (docker.errors.DockerException, ValueError, TypeError, AttributeError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise garbled from None
    if not entry:
        return None
    if entry.get("identitytoken") or entry.get("IdentityToken"):
        raise _identity_token(host, path)
    if entry.get("username") is not None and entry.get("password") is not None:
        return Credentials(entry["username"], entry["password"])
    return None


def _ask_helper(program: str, host: str, path: Path, runner: Runner) -> Credentials | None:
    """What ``program get`` answers for ``host``, by the credential-helper protocol; None when it knows nothing of the host.

    Its stderr is dropped unread and its stdout is never shown: either may
    hold a secret. A failure is one line naming the helper and its exit code.
    """
    if shutil.which(program) is None:
        raise RegistryError(f"{path} names the credential helper {program} for {host}, but it is not on PATH; "
                            f"install it, or remove it from {path} and run `docker login {host}`")
    check = f"check it (`echo {host} | {program} get`) or run `docker login {host}` again"
    answer = runner.run(Command.of(program, "get", purpose="credentials"), check=False, stdin=host.encode(), keep_stderr=False)
    if answer.returncode != 0:
        if _NOT_FOUND in answer.output.lower():  # the protocol's answer for a host it holds nothing for
            return None
        raise RegistryError(f"the credential helper {program} exited {answer.returncode} when asked for {host}; {check}")
    try:
        reply = json.loads(answer.output)
        username, secret = reply["Username"], reply["Secret"]
    except (ValueError, KeyError, TypeError):
        username = secret = None
    if not isinstance(username, str) or not isinstance(secret, str):
        raise RegistryError(f"the credential helper {program} answered something that is not credentials for {host}; {check}") from None
    if not username and not secret:  # docker-credential-pass answers an empty pair for a host it does not know
        return None
    if username == _IDENTITY_TOKEN_USER:
        raise _identity_token(host, path)
    return Credentials(username, secret, helper=program)


def _identity_token(host: str, path: Path) -> RegistryError:
    return RegistryError(f"the credentials for {host} in {path} are an identity token, which imagegraph cannot use; "
                         f"set IMAGEGRAPH_REGISTRY_USER/PASSWORD (a token as the password) instead")
