"""Credentials for a registry: $IMAGEGRAPH_REGISTRY_USER / $IMAGEGRAPH_REGISTRY_PASSWORD, else what ``docker login`` left.

The docker config (``auths``, ``credsStore``, ``credHelpers``) is resolved
through docker-py's ``docker.auth``, imported only when a config names the
host. Secrets are never printed: neither in an error nor in a repr.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import RegistryError

if TYPE_CHECKING:  # loaded only when a docker config names the registry
    import docker.errors

__all__ = ["Credentials", "credentials_for"]


@dataclass(frozen=True)
class Credentials:
    """A username and password for one registry; the password never shows in a repr."""

    username: str
    password: str = field(repr=False)
    #: Where they came from, for the fix in an error message: "environment" or "docker" (config).
    source: str = "docker"
    #: The program that gave them (``docker-credential-NAME``), when the docker config names one.
    helper: str | None = None


def credentials_for(host: str) -> Credentials | None:
    """Credentials for ``host``: $IMAGEGRAPH_REGISTRY_USER/PASSWORD, else what ``docker login`` left in the docker config.

    The config is read here (DOCKER_CONFIG names its directory; empty counts
    as unset, as for docker, and nothing else is looked at then); docker-py's
    ``docker.auth`` resolves it as the docker CLI does: the credential helper
    ``credHelpers`` names for the host, else the ``credsStore``, else the
    ``auths`` entry. Only the entries for ``host`` are handed on, so a garbled
    entry for another registry does not stop this one.
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
    # An entry without a secret is where `docker login` with a helper leaves a mark; docker-py would call it garbled.
    ours = {key: entry for key, entry in auths.items() if _hostname(key) == host
            and (not isinstance(entry, dict) or entry.get("auth") or entry.get("identitytoken"))}
    relevant = {"auths": ours, **({"credsStore": store} if store else {}), **({"credHelpers": helpers} if helpers else {})}
    if not ours and not store and not helpers:
        return None
    import docker.auth  # only now: the docker client library costs a start-up that most runs never need
    import docker.errors

    try:
        config = docker.auth.load_config(config_dict=relevant)
    except (docker.errors.DockerException, ValueError, TypeError, AttributeError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise garbled from None
    name = config.get_credential_store(host)
    helper = f"docker-credential-{name}" if isinstance(name, str) and name else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # docker-py warns when the helper is missing; the error below says it, once
            found = config.resolve_authconfig(host)
    except docker.errors.DockerException as err:
        raise RegistryError(_helper_failed(helper, host, path, err)) from None
    except (ValueError, KeyError, TypeError, AttributeError):  # its answer is not the protocol's JSON; never shown, it may hold a secret
        raise RegistryError(f"the credential helper {helper} answered something that is not credentials for {host}; "
                            f"check it (`echo {host} | {helper} get`) or run `docker login {host}` again") from None
    if not found:
        return None
    if "IdentityToken" in found:
        raise RegistryError(f"the credentials for {host} in {path} are an identity token, which imagegraph cannot use; "
                            f"set IMAGEGRAPH_REGISTRY_USER/PASSWORD (a token as the password) instead")
    if "Username" in found:  # from the helper
        return Credentials(found["Username"], found["Password"], helper=helper)
    if found.get("username") is not None and found.get("password") is not None:
        return Credentials(found["username"], found["password"])
    return None


def _hostname(key: str) -> str:
    """The registry host an ``auths`` key names (``https://host/v1/`` -> ``host``), as the docker CLI reads the key."""
    return key.removeprefix("http://").removeprefix("https://").split("/", 1)[0]


def _helper_failed(helper: str | None, host: str, path: Path, err: docker.errors.DockerException) -> str:
    """One line for a credential helper that is missing or fails (its message, not its output, which may hold a secret)."""
    if helper is None or shutil.which(helper) is None:
        return (f"{path} names the credential helper {helper} for {host}, but it is not on PATH; "
                f"install it, or remove it from {path} and run `docker login {host}`")
    cause = err.__cause__
    code = getattr(getattr(cause, "__cause__", None), "returncode", None)
    how = f"exited {code}" if code is not None else "failed"
    return (f"the credential helper {helper} {how} when asked for {host}; check it (`echo {host} | {helper} get`) "
            f"or run `docker login {host}` again")
