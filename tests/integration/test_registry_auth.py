"""Registry credentials for real: a private docker-registry with htpasswd basic auth, the docker CLI, and `invoke`.

Credentials come from $IMAGEGRAPH_REGISTRY_USER/PASSWORD or from a docker
config that `docker --config DIR login` wrote (DOCKER_CONFIG always points at a
temp dir here: ~/.docker is never read or written). The password is unique per
run, so finding it anywhere (output, logs, the pushed image) means it leaked.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import tempfile
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from imagegraph.adapters.registry import Registry
from imagegraph.core.errors import RegistryError
from tests.conftest import split_ref
from tests.credhelpers import write_credential_helper, write_helper_config
from tests.integration.conftest import git, init_repo, one_error_line, remove_local_images, run_invoke
from tests.integration.registries import PrivateRegistry, start_registry

pytestmark = pytest.mark.integration

USER = "builder"
PASSWORD = f"pw-{uuid.uuid4().hex}"
WRONG = f"not-it-{uuid.uuid4().hex}"
REPOSITORY = "auth/tiny"
TINY_DOCKERFILE = "FROM scratch\nCOPY hello.txt /hello.txt\n"


def bcrypt_hash(password: str) -> str:
    """A ``$2b$`` hash for htpasswd: the stdlib crypt module when it has blowfish, else the bcrypt package.

    Cost 4: the registry checks the hash on every request, and the default cost (12) adds ~0.2 s to each.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # crypt is deprecated (gone in 3.13)
            import crypt
        hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    except (ImportError, AttributeError):
        hashed = None
    if hashed and hashed.startswith("$2"):
        return hashed
    bcrypt = pytest.importorskip("bcrypt", reason="no blowfish in the stdlib crypt module; pip install bcrypt")
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()


def docker_cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real docker CLI with its own config dir (never ~/.docker)."""
    result = subprocess.run(["docker", "--config", str(config), *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def login(config: Path, address: str, password: str = PASSWORD) -> Path:
    config.mkdir(parents=True, exist_ok=True)
    docker_cli(config, "login", "--username", USER, "--password-stdin", address, stdin=password)
    # The password is in config.json itself (no credential helper), which is what the Registry client reads.
    assert json.loads((config / "config.json").read_text())["auths"][address]["auth"]
    return config


@dataclass(frozen=True)
class Pushed:
    ref: str
    digest: str


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory, docker_client):
    """A registry of this module's own that wants USER/PASSWORD (basic auth from an htpasswd file)."""
    directory = tmp_path_factory.mktemp("auth-registry")
    htpasswd = directory / "htpasswd"
    htpasswd.write_text(f"{USER}:{bcrypt_hash(PASSWORD)}\n")
    server = start_registry(directory / "registry", htpasswd=htpasswd)
    yield server
    server.stop()
    remove_local_images(docker_client, lambda tag: tag.startswith(f"{server.address}/"))


@pytest.fixture(scope="module")
def logged_in(tmp_path_factory, auth_registry: PrivateRegistry) -> Path:
    """A docker config dir where `docker login` to the auth registry succeeded."""
    return login(tmp_path_factory.mktemp("docker-config"), auth_registry.address)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, docker_client, auth_registry: PrivateRegistry, logged_in: Path) -> Pushed:
    """A tiny image (one small file, FROM scratch: nothing pulled) pushed by the docker CLI as auth/tiny:v1."""
    context = tmp_path_factory.mktemp("tiny")
    (context / "Dockerfile").write_text(TINY_DOCKERFILE)
    (context / "hello.txt").write_text("hello\n")
    ref = f"{auth_registry.address}/{REPOSITORY}:v1"
    docker_client.images.build(path=str(context), tag=ref, rm=True)
    output = docker_cli(logged_in, "push", ref).stdout
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", output)
    assert digest, output
    return Pushed(ref, digest.group(1))


@pytest.fixture(autouse=True)
def no_ambient_credentials(tmp_path, monkeypatch):
    """Nothing from the machine running the tests: no credentials in the environment, an empty docker config."""
    for name in list(os.environ):
        if name.startswith("GITHUB_") or name in ("IMAGEGRAPH_REGISTRY", "IMAGEGRAPH_REGISTRY_USER", "IMAGEGRAPH_REGISTRY_PASSWORD",
                                                  "IMAGEGRAPH_PLATFORMS", "BUILDX_BUILDER"):
            monkeypatch.delenv(name)
    empty = tmp_path / "empty-docker-config"
    empty.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(empty))


def write_docker_config(directory: Path, address: str, user: str, password: str) -> Path:
    """A config.json as `docker login` writes it, without asking the registry (so a wrong password gets in)."""
    directory.mkdir(parents=True, exist_ok=True)
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (directory / "config.json").write_text(json.dumps({"auths": {address: {"auth": auth}}}))
    return directory


def refused(address: str, source: str = "environment") -> str:
    if source == "environment":
        return f"registry {address} refused the credentials in IMAGEGRAPH_REGISTRY_USER/PASSWORD; correct them (they win over `docker login`)"
    return f"registry {address} refused the credentials from `docker login`; run `docker login {address}` again"


def needs(address: str) -> str:
    return f"registry {address} needs credentials; run `docker login {address}` or set IMAGEGRAPH_REGISTRY_USER/PASSWORD"


# -- the Registry client ----------------------------------------------------------------


def look_up_list_and_copy(client: Registry, pushed: Pushed) -> None:
    assert client.manifest_digest(REPOSITORY, "v1") == pushed.digest
    assert client.has(pushed.ref)
    assert client.manifest_digest(REPOSITORY, "never-pushed") is None
    media_type, manifest = client.manifest(REPOSITORY, "v1")
    assert "manifest" in media_type and len(manifest["layers"]) == 1
    target = f"copy-{uuid.uuid4().hex[:8]}"
    assert client.copy_tag(REPOSITORY, "v1", target) == pushed.digest
    assert {"v1", target} <= set(client.tags(REPOSITORY))
    assert client.manifest_digest(REPOSITORY, target) == pushed.digest
    assert client.tags("auth/never-pushed") == ()


def test_the_registry_really_wants_credentials(auth_registry, pushed):
    assert requests.get(f"http://{auth_registry.address}/v2/{REPOSITORY}/tags/list", timeout=5).status_code == 401
    assert requests.get(f"http://{auth_registry.address}/v2/{REPOSITORY}/tags/list", auth=(USER, PASSWORD), timeout=5).status_code == 200


def test_credentials_from_the_environment(auth_registry, pushed, monkeypatch):
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_USER", USER)
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_PASSWORD", PASSWORD)
    look_up_list_and_copy(Registry(auth_registry.address), pushed)


def test_credentials_from_docker_login(auth_registry, pushed, logged_in, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(logged_in))
    look_up_list_and_copy(Registry(auth_registry.address), pushed)


def test_the_environment_wins_over_the_docker_config(auth_registry, pushed, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(write_docker_config(tmp_path / "stale", auth_registry.address, USER, WRONG)))
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_USER", USER)
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_PASSWORD", PASSWORD)
    assert Registry(auth_registry.address).manifest_digest(REPOSITORY, "v1") == pushed.digest


@pytest.mark.parametrize("source", ["environment", "docker config"])
def test_a_wrong_password_is_refused_in_one_line_that_names_the_fix(source, auth_registry, pushed, tmp_path, monkeypatch):
    address = auth_registry.address
    if source == "environment":
        monkeypatch.setenv("IMAGEGRAPH_REGISTRY_USER", USER)
        monkeypatch.setenv("IMAGEGRAPH_REGISTRY_PASSWORD", WRONG)
    else:
        monkeypatch.setenv("DOCKER_CONFIG", str(write_docker_config(tmp_path / "wrong", address, USER, WRONG)))
    client = Registry(address)
    for call in (lambda: client.manifest_digest(REPOSITORY, "v1"), lambda: client.tags(REPOSITORY),
                 lambda: client.copy_tag(REPOSITORY, "v1", "never")):
        with pytest.raises(RegistryError) as caught:
            call()
        assert str(caught.value) == refused(address, source)
        assert WRONG not in repr(caught.value) and PASSWORD not in repr(caught.value)
        assert caught.value.__cause__ is None
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_USER", USER)
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_PASSWORD", PASSWORD)
    assert "never" not in Registry(address).tags(REPOSITORY)


def test_no_credentials_says_they_are_needed(auth_registry, pushed):
    client = Registry(auth_registry.address)  # DOCKER_CONFIG is an empty dir, no env vars
    for call in (lambda: client.manifest_digest(REPOSITORY, "v1"), lambda: client.tags(REPOSITORY)):
        with pytest.raises(RegistryError) as caught:
            call()
        assert str(caught.value) == needs(auth_registry.address)


# -- credential helpers: real programs on PATH, as `docker login` with a credsStore leaves the config ------


@pytest.fixture
def helpers(tmp_path, monkeypatch) -> Path:
    """A directory first on PATH (for this process, the docker CLI and `invoke`) for the test's credential helpers."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


def helper_refused(address: str, helper: str) -> str:
    return (f"registry {address} refused the credentials from the credential helper {helper}; "
            f"run `docker login {address}` again (it stores them through that helper)")


@pytest.mark.parametrize("setting", ["credHelpers", "credsStore"])
def test_credentials_from_a_credential_helper(setting, auth_registry, pushed, helpers, tmp_path, monkeypatch):
    helper = write_credential_helper(helpers, "imagegraph-test", {auth_registry.address: (USER, PASSWORD)})
    config = write_helper_config(tmp_path / "helper-config", **(
        {"cred_helpers": {auth_registry.address: helper.name}} if setting == "credHelpers" else {"creds_store": helper.name}))
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    look_up_list_and_copy(Registry(auth_registry.address), pushed)
    assert helper.asked() == [auth_registry.address]  # asked once, for this registry, by the client's constructor


def test_credentials_a_helper_gives_that_the_registry_refuses_name_the_helper(auth_registry, pushed, helpers, tmp_path, monkeypatch):
    helper = write_credential_helper(helpers, "imagegraph-test", {auth_registry.address: (USER, WRONG)})
    monkeypatch.setenv("DOCKER_CONFIG", str(write_helper_config(tmp_path / "c", cred_helpers={auth_registry.address: helper.name})))
    with pytest.raises(RegistryError) as caught:
        Registry(auth_registry.address).manifest_digest(REPOSITORY, "v1")
    assert str(caught.value) == helper_refused(auth_registry.address, helper.program)
    assert WRONG not in repr(caught.value)


def test_the_cli_builds_with_a_credential_helper_and_names_it_when_it_fails(mono, auth_registry, helpers, tmp_path):
    """buildx (through the docker CLI) and imagegraph's own lookups both get the credentials from the same helper."""
    address = auth_registry.address
    good = write_credential_helper(helpers, "good", {address: (USER, PASSWORD)})
    built = run_invoke(mono, "build", DOCKER_CONFIG=str(write_helper_config(tmp_path / "good", cred_helpers={address: good.name})))
    assert built.returncode == 0, built.stdout + built.stderr
    assert re.search(r"^tiny +build ", built.stdout, re.M) and PASSWORD not in built.stdout + built.stderr
    assert address in good.asked()

    locked = write_credential_helper(helpers, "locked", broken=f"keychain locked ({PASSWORD})", exit_code=4)
    failed = run_invoke(mono, "plan", DOCKER_CONFIG=str(write_helper_config(tmp_path / "locked", cred_helpers={address: locked.name})))
    assert one_error_line(failed) == (f"error: the credential helper {locked.program} exited 4 when asked for {address}; "
                                      f"check it (`echo {address} | {locked.program} get`) or run `docker login {address}` again")
    assert PASSWORD not in failed.stdout + failed.stderr

    missing = run_invoke(mono, "plan", DOCKER_CONFIG=str(write_helper_config(tmp_path / "missing", cred_helpers={address: "absent"})))
    assert one_error_line(missing).startswith(f"error: {tmp_path / 'missing' / 'config.json'} names the credential helper "
                                              f"docker-credential-absent for {address}, but it is not on PATH; ")


# -- through the CLI --------------------------------------------------------------------

FAMILY = """
registry: {registry}
namespace: {namespace}
images:
  tiny:
    dockerfile: docker/Dockerfile
    inputs: [hello.txt]
    platforms: [linux/amd64]
"""


@pytest.fixture
def mono(tmp_path, auth_registry) -> Path:
    """A one-image family in a temp git repository, pushing to the auth registry in a namespace of the test's own.

    Its origin remote carries the password, as a CI clone with a token in the URL does: it must not reach the image's labels.
    """
    files = {"images.yaml": FAMILY.format(registry=auth_registry.address, namespace=f"t{uuid.uuid4().hex[:8]}"),
             "docker/Dockerfile": TINY_DOCKERFILE, "hello.txt": "hello from the family\n", "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"}
    root = init_repo(tmp_path / "mono", files)
    git(root, "remote", "add", "origin", f"https://{USER}:{PASSWORD}@git.example.invalid/org/mono.git")
    return root


@pytest.mark.parametrize("command", [("plan",), ("build",)])
def test_the_cli_reports_refused_credentials_in_one_line_without_the_password(command, mono, auth_registry, tmp_path):
    address = auth_registry.address
    from_env = run_invoke(mono, *command, IMAGEGRAPH_REGISTRY_USER=USER, IMAGEGRAPH_REGISTRY_PASSWORD=WRONG)
    assert one_error_line(from_env) == f"error: {refused(address)}"
    from_config = run_invoke(mono, *command, DOCKER_CONFIG=str(write_docker_config(tmp_path / "wrong", address, USER, WRONG)))
    assert one_error_line(from_config) == f"error: {refused(address, 'docker config')}"
    for result in (from_env, from_config):
        assert WRONG not in result.stdout + result.stderr and PASSWORD not in result.stdout + result.stderr
    assert one_error_line(run_invoke(mono, *command)) == f"error: {needs(address)}"
    assert not (mono / ".imagegraph/logs").exists()  # refused while planning: nothing was built


def test_build_pushes_with_docker_login_and_the_password_is_nowhere(mono, auth_registry, logged_in, docker_client, monkeypatch):
    result = run_invoke(mono, "build", DOCKER_CONFIG=str(logged_in))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    printed = run_invoke(mono, "ref", "tiny")
    assert printed.returncode == 0, printed.stderr
    ref = printed.stdout.strip()
    assert ref.startswith(f"{auth_registry.address}/") and re.search(rf"^tiny +build +{re.escape(ref.rsplit('/', 1)[1])} ", result.stdout, re.M), output

    # It is in the registry, under the fingerprint tag, and a second plan reuses it (a lookup with the same credentials).
    monkeypatch.setenv("DOCKER_CONFIG", str(logged_in))
    _, name, tag = split_ref(ref)
    assert Registry(auth_registry.address).manifest_digest(name, tag) is not None
    again = run_invoke(mono, "plan", DOCKER_CONFIG=str(logged_in))
    assert again.returncode == 0 and re.search(r"^tiny +reuse ", again.stdout, re.M), again.stdout + again.stderr

    # The password is nowhere: not in the output, not in the build logs, not in the image (config, history, layers).
    assert PASSWORD not in output + again.stdout + again.stderr
    logs = sorted((mono / ".imagegraph/logs").glob("*.log"))
    assert logs and "push" in logs[0].read_text()
    for path in (mono / ".imagegraph").rglob("*"):
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path
    image = docker_client.images.get(ref)
    assert image.labels["org.opencontainers.image.source"] == "https://git.example.invalid/org/mono"  # the remote was read, its token dropped
    saved = b"".join(image.save(named=True))
    assert b"https://git.example.invalid/org/mono" in saved and PASSWORD.encode() not in saved  # the config is in what was searched
    history = docker_cli(logged_in, "history", "--no-trunc", ref).stdout + docker_cli(logged_in, "image", "inspect", ref).stdout
    assert "hello.txt" in history and PASSWORD not in history


# -- credentials lent to buildx: $IMAGEGRAPH_REGISTRY_USER/PASSWORD only, no docker login anywhere --------------------


def test_build_pushes_with_only_the_environment_variables_and_writes_them_nowhere(mono, auth_registry, docker_client, tmp_path):
    """buildx pushes the image and its registry cache with the variables alone; the docker config stays the user's.

    The user's (empty) docker config and buildx state are as they were after the run, no temporary docker config is
    left, and the password is in no file imagegraph wrote, nor in its output.
    """
    user_config = Path(os.environ["DOCKER_CONFIG"])
    (user_config / "config.json").write_text(json.dumps({"auths": {}, "detachKeys": "ctrl-x,x"}))
    before = sorted(p.name for p in Path(tempfile.gettempdir()).glob("imagegraph-docker-*"))
    result = run_invoke(mono, "build", IMAGEGRAPH_REGISTRY_USER=USER, IMAGEGRAPH_REGISTRY_PASSWORD=PASSWORD)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert re.search(r"^tiny +build ", result.stdout, re.M) and PASSWORD not in output

    ref = run_invoke(mono, "ref", "tiny").stdout.strip()
    _, name, tag = split_ref(ref)
    assert requests.get(f"http://{auth_registry.address}/v2/{name}/manifests/{tag}", auth=(USER, PASSWORD), timeout=5,
                        headers={"Accept": "application/vnd.oci.image.index.v1+json"}).status_code == 200
    assert requests.get(f"http://{auth_registry.address}/v2/{name}/manifests/{tag}", timeout=5).status_code == 401

    assert json.loads((user_config / "config.json").read_text()) == {"auths": {}, "detachKeys": "ctrl-x,x"}
    assert sorted(p.name for p in Path(tempfile.gettempdir()).glob("imagegraph-docker-*")) == before
    for path in (*(mono / ".imagegraph").rglob("*"), *user_config.rglob("*")):
        assert not path.is_file() or PASSWORD.encode() not in path.read_bytes(), path


def test_buildx_pushes_with_the_lent_config_and_is_refused_without_it(auth_registry, pushed, tmp_path):
    """The docker config lend_credentials makes, for real: buildx's own push works with it and is refused without it;
    its helper answers only for the registry, from the environment, and the directory is gone afterwards."""
    from imagegraph.adapters.docker_login import lend_credentials

    context = tmp_path / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(TINY_DOCKERFILE)
    (context / "hello.txt").write_text(f"lent {uuid.uuid4().hex}\n")
    ref = f"{auth_registry.address}/{REPOSITORY}:lent-{uuid.uuid4().hex[:8]}"
    build = ["docker", "buildx", "build", "--progress", "plain", "--platform", "linux/amd64", "--provenance=false", "--tag", ref,
             "--push", str(context)]
    variables = {"IMAGEGRAPH_REGISTRY_USER": USER, "IMAGEGRAPH_REGISTRY_PASSWORD": PASSWORD}

    refused_push = subprocess.run(build, capture_output=True, text=True, timeout=120, env={**os.environ, **variables})
    assert refused_push.returncode != 0 and re.search(r"401|unauthorized", refused_push.stdout + refused_push.stderr, re.I)

    with lend_credentials(auth_registry.address, {**os.environ, **variables}) as env:
        lent = Path(env["DOCKER_CONFIG"])
        assert (lent.parent.stat().st_mode & 0o777) == 0o700 and (lent / "config.json").stat().st_mode & 0o077 == 0
        assert json.loads((lent / "config.json").read_text())["credHelpers"] == {auth_registry.address: "imagegraph"}
        assert PASSWORD not in "".join(p.read_text() for p in lent.parent.rglob("*") if p.is_file())
        pushed_now = subprocess.run(build, capture_output=True, text=True, timeout=120, env={**os.environ, **variables, **env})
        assert pushed_now.returncode == 0, pushed_now.stdout + pushed_now.stderr
        helper = [str(lent.parent / "bin" / "docker-credential-imagegraph"), "get"]
        answer = subprocess.run(helper, input=auth_registry.address, capture_output=True, text=True, env={**os.environ, **variables})
        assert json.loads(answer.stdout) == {"ServerURL": auth_registry.address, "Username": USER, "Secret": PASSWORD}
        other = subprocess.run(helper, input="elsewhere.example", capture_output=True, text=True, env={**os.environ, **variables})
        assert other.returncode == 1 and PASSWORD not in other.stdout
        empty = subprocess.run(helper, input=auth_registry.address, capture_output=True, text=True,
                               env={k: v for k, v in os.environ.items() if not k.startswith("IMAGEGRAPH_REGISTRY_")})
        assert empty.returncode == 1 and "credentials not found" in empty.stdout
    assert not lent.parent.exists()
    _, name, tag = split_ref(ref)
    assert requests.get(f"http://{auth_registry.address}/v2/{name}/manifests/{tag}", auth=(USER, PASSWORD), timeout=5,
                        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"}).status_code == 200
