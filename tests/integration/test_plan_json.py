"""`invoke plan --json` says everything `invoke build` will do: each build request and every tag that will move."""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import commit_all, run_invoke
from tests.integration.test_build import build, repo  # noqa: F401 (the small family fixture)

pytestmark = pytest.mark.integration


def test_a_code_change_shows_the_apps_build_request_and_the_tags_that_move(repo, registry, namespace, monkeypatch):  # noqa: F811
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    build(repo)
    (repo / "src/svc/__init__.py").write_text("print('version 2')\n")
    commit_all(repo, "code change")
    result = run_invoke(repo, "plan", "--json")
    assert result.returncode == 0, result.stderr
    images = {entry["name"]: entry for entry in json.loads(result.stdout)["images"]}
    app, base = images["app"], images["base"]
    assert app["decision"] == "build" and base["decision"] == "reuse" and base["build"] is None

    request = app["build"]
    assert request["ref"] == app["ref"] and request["platforms"] == ["linux/amd64"] and request["target"] == "runtime"
    assert request["build_args"] == {"BASE_IMAGE": base["ref"]}  # the parent pinned by its fingerprint reference
    assert request["context"].endswith(f".imagegraph/contexts/app/{app['fingerprint']}")
    assert request["dockerfile"] == request["context"] + "/docker/Dockerfile"
    # the registry cache exactly as the builder passes it (per kind of builder: tests/integration/test_cache_refs.py)
    assert [entry["platforms"] for entry in request["cache"]] == [["linux/amd64"]]
    assert request["cache"][0]["cache_from"][0].startswith(f"type=registry,ref={registry}/{namespace}/app:buildcache")
    labels = request["labels"]
    assert labels["imagegraph.fingerprint"] == app["fingerprint"] and labels["imagegraph.parent"] == base["ref"]
    assert len(labels["org.opencontainers.image.revision"]) == 40

    head = run_invoke(repo, "ref", "app")  # the same reference `invoke ref` prints
    assert head.stdout.strip().splitlines()[-1] == app["ref"]
    sha = labels["org.opencontainers.image.revision"][:7]
    # on the default branch: the fingerprint tag, then edge and sha-<7>, each with its rule; every pushed image alike
    for entry in images.values():
        assert [(t["tag"], t["kind"], t["moves"]) for t in entry["tags"]] == [
            (entry["fingerprint"], "fingerprint", True), ("edge", "branch", True), (f"sha-{sha}", "commit", True)]
    assert "forward only" in app["tags"][1]["rule"]

    # the same plan as text: the tags, image by image, with the rule each kind moves by
    text = run_invoke(repo, "plan").stdout
    assert f"  app: edge, sha-{sha}" in text and "  branch: moves with the whole family" in text
