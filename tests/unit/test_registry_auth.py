"""The bearer-token flow of the Registry client, against a fake token registry at the HTTP seam (the session).

The fake behaves like a registry with a separate token service (Docker Hub,
GHCR, Harbor): an unauthenticated request gets ``401`` with ``WWW-Authenticate:
Bearer realm=...,service=...``, the client fetches a token with basic
credentials, then retries with ``Authorization: Bearer <token>``. Basic auth
against a real registry is covered by tests/integration/test_registry_auth.py.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
import requests

from imagegraph.adapters.registry import Registry
from imagegraph.core.errors import RegistryError
from tests.credhelpers import write_credential_helper, write_helper_config

HOST = "registry.example.com"
REALM = "https://auth.example.com/token"
USER = "builder"
PASSWORD = "pw-5f1d0c"
WRONG = "not-it-93ab"
DIGEST = "sha256:" + "ab" * 32
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


def response(status: int, headers: dict[str, str] | None = None, body: object = None, *, raw: bytes | None = None) -> requests.Response:
    reply = requests.Response()
    reply.status_code = status
    reply.headers.update(headers or {})
    reply._content = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    return reply


class TokenRegistry:
    """A registry plus its token service, as a requests.Session: it answers ``request()`` (the registry) and ``get()`` (the token service).

    ``token_reply`` replaces the token service's answer (to break it); ``anonymous`` grants tokens without credentials (a public registry).
    """

    def __init__(self, *, anonymous: bool = False, token_reply: requests.Response | None = None, token_field: str = "token") -> None:
        self.anonymous = anonymous
        self.token_reply = token_reply
        self.token_field = token_field
        self.valid: set[str] = set()
        self.calls: list[tuple[str, str, str | None]] = []
        self.token_requests: list[tuple[str, dict[str, str], tuple[str, str] | None]] = []

    def request(self, method, url, *, headers, data=None, timeout=None):
        authorization = headers.get("Authorization")
        self.calls.append((method, url, authorization))
        if authorization not in self.valid:
            challenge = f'Bearer realm="{REALM}",service="{HOST}",scope="repository:team/app:pull"'
            if authorization:
                challenge += ',error="invalid_token"'
            return response(401, {"WWW-Authenticate": challenge}, {"errors": [{"code": "UNAUTHORIZED"}]})
        if "/manifests/" in url and method in ("HEAD", "GET"):
            return response(200, {"Docker-Content-Digest": DIGEST, "Content-Type": MANIFEST_TYPE}, {"schemaVersion": 2, "layers": []})
        if "/manifests/" in url and method == "PUT":
            return response(201, {"Docker-Content-Digest": DIGEST})
        if url.endswith("/tags/list?n=1000"):
            return response(200, body={"name": "team/app", "tags": ["v1"]})
        return response(404)

    def get(self, url, *, params, auth=None, timeout=None):
        self.token_requests.append((url, dict(params), auth))
        if self.token_reply is not None:
            return self.token_reply
        if auth != (USER, PASSWORD) and not (auth is None and self.anonymous):
            return response(401, body={"details": "incorrect username or password"})
        token = f"tok-{len(self.token_requests)}"
        self.valid.add(f"Bearer {token}")
        return response(200, body={self.token_field: token, "expires_in": 300})

    def expire_tokens(self) -> None:
        self.valid.clear()


@pytest.fixture(autouse=True)
def no_ambient_credentials(tmp_path, monkeypatch):
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_PASSWORD", raising=False)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # empty: ~/.docker is never read


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_USER", USER)
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_PASSWORD", PASSWORD)


def manifest_url(tag: str = "v1") -> str:
    return f"https://{HOST}/v2/team/app/manifests/{tag}"


def refused() -> str:
    return f"registry {HOST} refused the credentials in IMAGEGRAPH_REGISTRY_USER/PASSWORD; correct them (they win over `docker login`)"


def needs() -> str:
    return f"registry {HOST} needs credentials; run `docker login {HOST}` or set IMAGEGRAPH_REGISTRY_USER/PASSWORD"


def test_a_bearer_challenge_fetches_a_token_with_the_credentials_and_retries(credentials):
    fake = TokenRegistry()
    client = Registry(HOST, session=fake)
    assert client.manifest_digest("team/app", "v1") == DIGEST
    assert fake.token_requests == [(REALM, {"service": HOST, "scope": "repository:team/app:pull"}, (USER, PASSWORD))]
    assert fake.calls == [("HEAD", manifest_url(), None), ("HEAD", manifest_url(), "Bearer tok-1")]

    # The token is kept for its scope: more reads ask the token service nothing.
    assert client.tags("team/app") == ("v1",)
    assert client.has(f"{HOST}/team/app:v1")
    assert len(fake.token_requests) == 1 and fake.calls[-1][2] == "Bearer tok-1"

    # Pushing is another scope, so another token.
    assert client.copy_tag("team/app", "v1", "latest") == DIGEST
    assert fake.token_requests[-1][1] == {"service": HOST, "scope": "repository:team/app:pull,push"}
    assert fake.calls[-1] == ("PUT", manifest_url("latest"), "Bearer tok-2")


def test_an_oauth2_style_access_token_is_used_too(credentials):
    fake = TokenRegistry(token_field="access_token")
    assert Registry(HOST, session=fake).manifest_digest("team/app", "v1") == DIGEST


def test_the_token_service_refusing_the_credentials_is_one_line_without_the_password(monkeypatch):
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_USER", USER)
    monkeypatch.setenv("IMAGEGRAPH_REGISTRY_PASSWORD", WRONG)
    fake = TokenRegistry()
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=fake).manifest_digest("team/app", "v1")
    assert str(caught.value) == refused()
    assert WRONG not in repr(caught.value) and caught.value.__cause__ is None
    assert fake.token_requests[0][2] == (USER, WRONG) and len(fake.calls) == 1  # refused once, not retried


def test_credentials_from_the_docker_config_reach_the_token_service(tmp_path):
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {f"https://{HOST}": {"auth": auth}}}))
    fake = TokenRegistry()
    assert Registry(HOST, session=fake).manifest_digest("team/app", "v1") == DIGEST
    assert fake.token_requests[0][2] == (USER, PASSWORD)


def test_a_public_registry_gives_an_anonymous_token():
    fake = TokenRegistry(anonymous=True)
    assert Registry(HOST, session=fake).manifest_digest("team/app", "v1") == DIGEST
    assert fake.token_requests[0][2] is None


def test_no_credentials_for_a_private_registry_says_they_are_needed():
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=TokenRegistry()).manifest_digest("team/app", "v1")
    assert str(caught.value) == needs()


def test_an_anonymous_token_that_the_registry_refuses_says_credentials_are_needed():
    """GHCR-style: anyone gets a token, but a private repository refuses it. Nobody's credentials were refused."""
    fake = TokenRegistry(anonymous=True)
    fake.valid = set()
    fake.request = _refuse_everything(fake)
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=fake).manifest_digest("team/app", "v1")
    assert str(caught.value) == needs()


def _refuse_everything(fake: TokenRegistry):
    def request(method, url, *, headers, data=None, timeout=None):
        fake.calls.append((method, url, headers.get("Authorization")))
        return response(401, {"WWW-Authenticate": f'Bearer realm="{REALM}",service="{HOST}"'})
    return request


def test_an_expired_token_is_renewed_once(credentials):
    """Tokens last minutes and a build takes longer: the lookup after the push must not call good credentials refused."""
    fake = TokenRegistry()
    client = Registry(HOST, session=fake)
    assert client.manifest_digest("team/app", "v1") == DIGEST
    fake.expire_tokens()
    assert client.manifest_digest("team/app", "v1") == DIGEST
    assert len(fake.token_requests) == 2 and fake.calls[-1][2] == "Bearer tok-2"


def test_credentials_revoked_mid_run_are_refused_without_a_loop(credentials, monkeypatch):
    fake = TokenRegistry()
    client = Registry(HOST, session=fake)
    assert client.manifest_digest("team/app", "v1") == DIGEST
    fake.expire_tokens()
    fake.token_reply = response(401)
    before = len(fake.calls)
    with pytest.raises(RegistryError) as caught:
        client.manifest_digest("team/app", "v1")
    assert str(caught.value) == refused()
    assert len(fake.calls) - before == 1 and len(fake.token_requests) == 2


@pytest.mark.parametrize("reply", [
    response(500, raw=b"<html>bad gateway</html>"),
    response(200, raw=b"not json"),
    response(200, body={"expires_in": 300}),
    response(200, body=["a", "list"]),
], ids=["server-error", "not-json", "no-token", "not-an-object"])
def test_a_broken_token_service_is_one_line_not_a_traceback_or_a_refusal(reply, credentials):
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=TokenRegistry(token_reply=reply)).manifest_digest("team/app", "v1")
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"registry {HOST}: its token service") and "refused" not in message
    assert PASSWORD not in message


def test_a_challenge_without_a_realm_is_one_line(credentials):
    fake = TokenRegistry()
    fake.request = lambda method, url, *, headers, data=None, timeout=None: response(401, {"WWW-Authenticate": 'Bearer service="x"'})
    with pytest.raises(RegistryError, match=rf"^registry {HOST}: its token service"):
        Registry(HOST, session=fake).manifest_digest("team/app", "v1")


@pytest.mark.parametrize("auths", [
    {HOST: {"auth": "%%% not base64 %%%"}},
    {HOST: {"auth": base64.b64encode(b"\xff\xfe").decode()}},
    {HOST: "a string, not an object"},
    ["not", "a", "mapping"],
], ids=["not-base64", "not-utf8", "entry-not-object", "auths-not-object"])
def test_a_garbled_docker_config_is_one_line_that_names_the_file(auths, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"auths": auths}))
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=TokenRegistry())
    assert str(caught.value) == f"{tmp_path / 'config.json'}: the credentials for {HOST} are garbled; run `docker login {HOST}` again"


# -- credential helpers (real programs on PATH; the registry is the fake above) ----------------


@pytest.fixture
def helpers(tmp_path, monkeypatch):
    """A directory first on PATH for the test's credential helpers."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


def test_a_credential_helper_gives_the_credentials(helpers, tmp_path):
    helper = write_credential_helper(helpers, "vault", {HOST: (USER, PASSWORD)})
    write_helper_config(tmp_path, cred_helpers={HOST: "vault"})
    fake = TokenRegistry()
    assert Registry(HOST, session=fake).manifest_digest("team/app", "v1") == DIGEST
    assert fake.token_requests[0][2] == (USER, PASSWORD) and helper.asked() == [HOST]


def test_the_host_s_own_helper_wins_over_the_store_and_the_store_serves_the_rest(helpers, tmp_path):
    own = write_credential_helper(helpers, "own", {HOST: (USER, PASSWORD)})
    store = write_credential_helper(helpers, "store", {HOST: (USER, WRONG), "other.example.com": (USER, PASSWORD)})
    write_helper_config(tmp_path, cred_helpers={HOST: "own"}, creds_store="store")
    fake = TokenRegistry()
    assert Registry(HOST, session=fake).manifest_digest("team/app", "v1") == DIGEST
    assert fake.token_requests[0][2] == (USER, PASSWORD) and own.asked() == [HOST] and store.asked() == []
    write_helper_config(tmp_path, creds_store="store")
    with pytest.raises(RegistryError, match="from the credential helper docker-credential-store"):
        Registry(HOST, session=TokenRegistry()).manifest_digest("team/app", "v1")
    assert store.asked() == [HOST]


def test_the_environment_wins_and_the_helper_is_not_even_run(helpers, tmp_path, credentials):
    helper = write_credential_helper(helpers, "vault", {HOST: (USER, WRONG)})
    write_helper_config(tmp_path, cred_helpers={HOST: "vault"})
    fake = TokenRegistry()
    assert Registry(HOST, session=fake).manifest_digest("team/app", "v1") == DIGEST
    assert helper.asked() == []


def test_credentials_a_helper_gives_that_are_refused_name_the_helper(helpers, tmp_path):
    write_credential_helper(helpers, "vault", {HOST: (USER, WRONG)})
    write_helper_config(tmp_path, cred_helpers={HOST: "vault"})
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=TokenRegistry()).manifest_digest("team/app", "v1")
    assert str(caught.value) == (f"registry {HOST} refused the credentials from the credential helper docker-credential-vault; "
                                 f"run `docker login {HOST}` again (it stores them through that helper)")
    assert WRONG not in repr(caught.value)


def test_a_helper_that_knows_nothing_of_the_host_leaves_the_auths_entry(helpers, tmp_path):
    helper = write_credential_helper(helpers, "store", {"other.example.com": (USER, WRONG)})
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    write_helper_config(tmp_path, creds_store="store", auths={HOST: {"auth": auth}})
    fake = TokenRegistry()
    assert Registry(HOST, session=fake).manifest_digest("team/app", "v1") == DIGEST
    assert fake.token_requests[0][2] == (USER, PASSWORD) and helper.asked() == [HOST]
    write_helper_config(tmp_path, creds_store="store")
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=TokenRegistry()).manifest_digest("team/app", "v1")
    assert str(caught.value) == needs()


def test_a_missing_helper_is_one_line_that_names_it(helpers, tmp_path):
    write_helper_config(tmp_path, cred_helpers={HOST: "nowhere"})
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=TokenRegistry())
    config = tmp_path / "config.json"
    assert str(caught.value) == (f"{config} names the credential helper docker-credential-nowhere for {HOST}, but it is not on PATH; "
                                 f"install it, or remove it from {config} and run `docker login {HOST}`")


@pytest.mark.parametrize(("behaviour", "expected"), [
    ({"broken": f"keychain locked; last secret was {PASSWORD}", "exit_code": 3},
     f"the credential helper docker-credential-vault exited 3 when asked for {HOST}; "
     f"check it (`echo {HOST} | docker-credential-vault get`) or run `docker login {HOST}` again"),
    ({"raw": f"{USER}:{PASSWORD}"},
     f"the credential helper docker-credential-vault answered something that is not credentials for {HOST}; "
     f"check it (`echo {HOST} | docker-credential-vault get`) or run `docker login {HOST}` again"),
], ids=["fails", "not-json"])
def test_a_helper_that_fails_is_one_line_that_names_it_without_its_output(behaviour, expected, helpers, tmp_path):
    helper = write_credential_helper(helpers, "vault", **behaviour)
    write_helper_config(tmp_path, cred_helpers={HOST: "vault"})
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=TokenRegistry())
    assert str(caught.value) == expected and helper.asked() == [HOST]
    assert PASSWORD not in repr(caught.value) and caught.value.__cause__ is None


def test_a_garbled_entry_for_another_registry_does_not_stop_this_one(tmp_path):
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"other.example.com": "garbled", HOST: {"auth": auth}}}))
    fake = TokenRegistry()
    assert Registry(HOST, session=fake).manifest_digest("team/app", "v1") == DIGEST
    assert fake.token_requests[0][2] == (USER, PASSWORD)


@pytest.mark.parametrize("document", [
    {"credHelpers": ["not", "a", "mapping"]},
    {"credsStore": {"not": "a name"}},
], ids=["helpers-not-object", "store-not-string"])
def test_garbled_helper_settings_are_one_line_that_names_the_file(document, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(document))
    with pytest.raises(RegistryError) as caught:
        Registry(HOST, session=TokenRegistry())
    assert str(caught.value) == f"{tmp_path / 'config.json'}: the credentials for {HOST} are garbled; run `docker login {HOST}` again"
