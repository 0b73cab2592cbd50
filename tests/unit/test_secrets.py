"""A secret is never printed: credentials in a registry value, a remote URL or a credential helper's output.

Each hostile value is tried from every source it can come from: the
``--registry`` flag, $IMAGEGRAPH_REGISTRY and images.yaml (the real command
line, in-process), the ``origin`` remote and GitHub's variables (the label),
and a real credential helper program (its stdout and stderr, at the level of
file descriptors, so a child's output would be caught too).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from imagegraph.adapters.registry import Registry
from imagegraph.adapters.runner import Command, Runner
from imagegraph.core.ci import source_url
from imagegraph.core.errors import CommandFailed, InputError, RegistryError
from imagegraph.core.values import parse_registry, redact_url, redact_urls
from tests.conftest import FAMILY
from tests.credhelpers import write_credential_helper, write_helper_config
from tests.unit.cli import make_family, run_cli

SECRET = "s3cr3t-9f2c"

#: Registry values carrying a secret, and the registry the error line must suggest instead.
WITH_USERINFO = {
    "user-pass": (f"user:{SECRET}@registry.example.com", "registry.example.com"),
    "url-user-pass": (f"https://user:{SECRET}@registry.example.com", "registry.example.com"),
    "token-path": (f"{SECRET}@ghcr.io/acme", "ghcr.io/acme"),
    "second-at": (f"https://user:{SECRET}@x@registry.example.com:5000/team", "registry.example.com:5000/team"),
    "user-only": (f"http://{SECRET}@registry.example.com", "registry.example.com"),
    "upper-scheme": (f"HTTPS://user:{SECRET}@registry.example.com", "registry.example.com"),
    "percent-encoded": (f"user%40corp:{SECRET}%40@registry.example.com", "registry.example.com"),
    "slash-in-password": (f"user:{SECRET}/x@registry.example.com", "registry.example.com"),
    "ssh": (f"ssh://{SECRET}@registry.example.com/acme", "registry.example.com/acme"),
}
WITH_QUERY = {
    "query": (f"registry.example.com?private_token={SECRET}", "registry.example.com"),
    "fragment": (f"registry.example.com#{SECRET}", "registry.example.com"),
    "url-query": (f"https://registry.example.com/acme?token={SECRET}", "registry.example.com/acme"),
}


def _sources(value: str) -> dict[str, tuple[dict[str, str], tuple[str, ...], dict[str, str]]]:
    """(files, argv, environment) that hand ``value`` to `invoke plan` as a flag, a variable and images.yaml's registry."""
    return {
        "--registry": ({}, ("plan", "--registry", value), {}),
        "$IMAGEGRAPH_REGISTRY": ({}, ("plan",), {"IMAGEGRAPH_REGISTRY": value}),
        "images.yaml": ({"images.yaml": FAMILY.replace("registry: 127.0.0.1:5000", f"registry: {json.dumps(value)}")}, ("plan",), {}),
    }


@pytest.mark.parametrize("case", [*WITH_USERINFO, *WITH_QUERY])
@pytest.mark.parametrize("source", ["--registry", "$IMAGEGRAPH_REGISTRY", "images.yaml"])
def test_a_registry_with_a_secret_is_refused_in_one_line_without_the_secret(case, source, tmp_path):
    value, fixed = {**WITH_USERINFO, **WITH_QUERY}[case]
    files, argv, env = _sources(value)[source]
    outcome = run_cli(make_family(tmp_path / "family", files), argv, env)
    line = outcome.error
    assert SECRET not in outcome.stdout + outcome.stderr
    assert line.startswith(f"error: {source}") and "***" in line and f"e.g. '{fixed}'" in line
    what = "has credentials in it" if case in WITH_USERINFO else ("is a URL" if "://" in value else "has a query or fragment")
    assert what in line


@pytest.mark.parametrize("case", [*WITH_USERINFO, *WITH_QUERY])
def test_parse_registry_names_the_origin_and_never_the_secret(case):
    value, fixed = {**WITH_USERINFO, **WITH_QUERY}[case]
    with pytest.raises(InputError) as caught:
        parse_registry(value, "images.yaml:2")
    assert str(caught.value).startswith("images.yaml:2: ") and SECRET not in str(caught.value) and f"'{fixed}'" in str(caught.value)


@pytest.mark.parametrize(("url", "expected"), [
    (f"https://user:{SECRET}@host/org/repo.git", "https://***@host/org/repo.git"),
    (f"https://user:{SECRET}@x@host/org/repo", "https://***@host/org/repo"),
    (f"https://host/org/repo?private_token={SECRET}", "https://host/org/repo?***"),
    (f"https://host/org/repo#{SECRET}", "https://host/org/repo#***"),
    (f"ssh://git:{SECRET}@host:22/org/repo", "ssh://***@host:22/org/repo"),
    (f"{SECRET}@host:org/repo.git", "***@host:org/repo.git"),
    (f"https://user%40corp:{SECRET}%2F@host/r", "https://***@host/r"),
    (f"http://{SECRET}@host", "http://***@host"),
    (f"GIT+SSH://{SECRET}@host/r", "GIT+SSH://***@host/r"),
    ("https://host/org/repo", "https://host/org/repo"),
    ("/srv/git/repo", "/srv/git/repo"),
])
def test_redact_url_covers_every_form(url, expected):
    assert redact_url(url) == expected


def test_redact_urls_finds_urls_inside_text():
    text = f"fatal: unable to access 'https://ci:{SECRET}@git.example.com/r.git/': 403; HEAD http://h:5000/v2/x?_state={SECRET} failed"
    assert redact_urls(text) == "fatal: unable to access 'https://***@git.example.com/r.git/': 403; HEAD http://h:5000/v2/x?*** failed"


@pytest.mark.parametrize("remote", [
    f"https://x-access-token:{SECRET}@github.com/acme/mono.git",
    f"https://oauth2:{SECRET}@x@github.com/acme/mono.git",
    f"https://github.com/acme/mono.git?private_token={SECRET}",
    f"https://github.com/acme/mono#{SECRET}",
    f"HTTPS://{SECRET}@github.com/acme/mono",
    f"http://{SECRET}@github.com/acme/mono",
    f"https://user%40corp:{SECRET}%40@github.com/acme/mono",
    f"ssh://git:{SECRET}@github.com:22/acme/mono.git",
    f"git:{SECRET}@github.com:acme/mono.git",
    "git@github.com:acme/mono.git",
])
def test_the_source_label_keeps_only_host_and_path_of_any_remote(remote):
    assert source_url(remote, {}) == "https://github.com/acme/mono"


@pytest.mark.parametrize("server", [f"https://{SECRET}@github.com", f"https://github.com/?t={SECRET}", "HTTPS://github.com/"])
def test_the_source_label_from_github_s_variables_keeps_no_secret(server):
    assert source_url(None, {"GITHUB_SERVER_URL": server, "GITHUB_REPOSITORY": "acme/mono"}) == "https://github.com/acme/mono"


@pytest.mark.parametrize("remote", ["/srv/git/mono.git", "file:///srv/mono", "https://github.com/acme/\x1b]0;x\x07", "ftp://host/a/b",
                                    "https://host/"])
def test_a_remote_that_names_no_web_address_gives_no_label(remote):
    assert source_url(remote, {}) is None


def test_the_label_of_a_real_build_request_keeps_no_token(tmp_path):
    """The workspace reads the real `origin` of a real repository into the labels its build requests carry."""
    from imagegraph.core.options import BuildOptions
    from imagegraph.workspace import Workspace

    root = make_family(tmp_path / "family")
    subprocess.run(["git", "-C", str(root), "remote", "add", "origin", f"https://ci:{SECRET}@x@git.example.com/acme/mono.git?private_token={SECRET}"],
                   check=True)
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("GITHUB_")}
    try:
        plan = Workspace(root, BuildOptions(force=("base",))).plan()  # all forced: no registry is asked
    finally:
        os.environ.update(saved)
    assert len(plan.to_build()) == 4
    for entry in plan.to_build():
        labels = dict(entry.request.labels)
        assert labels["org.opencontainers.image.source"] == "https://git.example.com/acme/mono"
        assert SECRET not in json.dumps(labels)
    assert SECRET not in json.dumps(plan.to_dict())


# -- credential helpers: their output never reaches the user --------------------------------------------------------


@pytest.fixture
def helpers(tmp_path, monkeypatch):
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_USER", raising=False)
    monkeypatch.delenv("IMAGEGRAPH_REGISTRY_PASSWORD", raising=False)
    return directory


def _noisy_helper(directory, name: str, *, code: int, stdout: str):
    """A helper that writes the secret to stderr (as a keychain library's debug output would) and ``stdout``, exiting ``code``."""
    path = directory / f"docker-credential-{name}"
    path.write_text(f"#!/bin/sh\necho 'debug: unlocking with {SECRET}' >&2\nprintf '%s\\n' '{stdout}'\nexit {code}\n")
    path.chmod(0o755)
    return path


@pytest.mark.parametrize(("code", "stdout", "message"), [
    (3, f"keychain locked, last secret {SECRET}", "exited 3 when asked for registry.example.com"),
    (0, f"user:{SECRET}", "answered something that is not credentials for registry.example.com"),
    (0, json.dumps({"Username": "u", "Secret": 5}), "answered something that is not credentials"),
], ids=["fails", "not-json", "wrong-types"])
def test_a_failing_helper_s_output_never_reaches_the_terminal(code, stdout, message, helpers, tmp_path, monkeypatch, capfd):
    _noisy_helper(helpers, "noisy", code=code, stdout=stdout)
    monkeypatch.setenv("DOCKER_CONFIG", str(write_helper_config(tmp_path / "config", cred_helpers={"registry.example.com": "noisy"})))
    with pytest.raises(RegistryError) as caught:
        Registry("registry.example.com")
    printed = capfd.readouterr()
    assert SECRET not in printed.out + printed.err + str(caught.value)
    assert f"the credential helper docker-credential-noisy {message}" in str(caught.value)
    assert caught.value.__cause__ is None


def test_a_helper_that_succeeds_while_talking_on_stderr_gives_credentials_silently(helpers, tmp_path, monkeypatch, capfd):
    _noisy_helper(helpers, "chatty", code=0, stdout=json.dumps({"ServerURL": "registry.example.com", "Username": "u", "Secret": SECRET}))
    monkeypatch.setenv("DOCKER_CONFIG", str(write_helper_config(tmp_path / "config", creds_store="chatty")))
    registry = Registry("registry.example.com")
    assert registry._credentials is not None and registry._credentials.password == SECRET
    printed = capfd.readouterr()
    assert SECRET not in printed.out + printed.err


def test_a_helper_that_knows_nothing_falls_back_to_the_auths_entry(helpers, tmp_path, monkeypatch, capfd):
    write_credential_helper(helpers, "empty")
    config = write_helper_config(tmp_path / "config", creds_store="empty",
                                 auths={"registry.example.com": {"auth": "dTpw"}})  # u:p
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    found = Registry("registry.example.com")._credentials
    assert found is not None and (found.username, found.password, found.helper) == ("u", "p", None)


# -- the one runner: what logs and errors show of a command ---------------------------------------------------------


def test_the_runner_keeps_no_url_secret_in_its_log_lines_or_errors(tmp_path):
    command = Command.of("sh", "-c", f"echo 'fetching https://ci:{SECRET}@git.example.com/r.git?token={SECRET}'; exit 2",
                         hint="see the log")
    seen: list[str] = []
    log = tmp_path / "run.log"
    with pytest.raises(CommandFailed) as caught:
        Runner().run(command, log_path=log, on_line=seen.append)
    assert seen == ["fetching https://***@git.example.com/r.git?***"]
    assert SECRET not in log.read_text() and SECRET not in str(caught.value) and SECRET not in repr(caught.value.argv)


def test_the_runner_never_shows_what_a_helper_told_the_docker_cli():
    said = f"error getting credentials - err: exit status 1, out: `keychain locked, last secret {SECRET}`"
    seen: list[str] = []
    with pytest.raises(CommandFailed) as caught:
        Runner().run(Command.of("sh", "-c", f"echo '{said}'; exit 1"), on_line=seen.append)
    assert seen == ["error getting credentials - err: exit status 1, out: `(not shown)`"]
    assert SECRET not in str(caught.value)


def test_error_and_note_lines_lose_url_secrets_and_escape(capsys):
    from imagegraph.tasks._common import error_line, say

    message = f"git fetch failed: could not read from 'https://ci:{SECRET}@git.example.com/r.git?t={SECRET}'\n\x1b[2J"
    assert error_line(message) == "error: git fetch failed: could not read from 'https://***@git.example.com/r.git?***' \\x1b[2J"
    say(message)
    assert SECRET not in capsys.readouterr().err
