"""Which API deletes on a registry (a decision from its host and images.yaml), and the HTTP every forge client shares."""

from __future__ import annotations

import json

import pytest
import requests

from imagegraph.adapters.registry_apis.forge_http import ForgeHTTP, api_base, rate_limit_wait
from imagegraph.core.errors import InputError, RegistryError
from imagegraph.core.registry_api import ApiKind, choose_api, lifecycle_rules, parse_api


@pytest.mark.parametrize(("host", "kind"), [
    ("ghcr.io", ApiKind.GITHUB),
    ("GHCR.IO", ApiKind.GITHUB),
    ("docker.io", ApiKind.DOCKERHUB),
    ("registry-1.docker.io", ApiKind.DOCKERHUB),
    ("index.docker.io", ApiKind.DOCKERHUB),
    ("registry.gitlab.com", ApiKind.GITLAB),
    ("123456789012.dkr.ecr.eu-west-1.amazonaws.com", ApiKind.LIFECYCLE),
    ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", ApiKind.LIFECYCLE),
    ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", ApiKind.LIFECYCLE),
    ("public.ecr.aws", ApiKind.LIFECYCLE),
    # look-alikes are no such service: a host name decides only when it is the service's own
    ("ghcr.io.example.com", ApiKind.DISTRIBUTION),
    ("gitlab.example.com", ApiKind.DISTRIBUTION),
    ("dkr.ecr.example.com", ApiKind.DISTRIBUTION),
    ("127.0.0.1:5000", ApiKind.DISTRIBUTION),
    ("harbor.internal:8443", ApiKind.DISTRIBUTION),
])
def test_the_host_decides_for_the_public_services(host, kind):
    assert choose_api(host).kind is kind


def test_images_yaml_names_the_api_of_a_self_hosted_registry_and_wins():
    choice = choose_api("registry.gitlab.example.com", ApiKind.GITLAB)
    assert choice.kind is ApiKind.GITLAB and "retention: api: gitlab" in choice.why
    assert choose_api("ghcr.io", ApiKind.DISTRIBUTION).kind is ApiKind.DISTRIBUTION


@pytest.mark.parametrize("value", ["ecr", "lifecycle", "", 3, None, ["github"], "git hub"])
def test_an_api_imagegraph_does_not_delete_through_is_one_line(value):
    with pytest.raises(InputError, match=r"use one of distribution, github, dockerhub, gitlab"):
        parse_api(value)
    assert parse_api(" GitHub ") is ApiKind.GITHUB


def test_the_lifecycle_rules_printed_for_ecr_are_a_policy_ecr_takes():
    policy = json.loads(lifecycle_rules(5, ("latest", "buildcache*", "imagegraph-retention", "stable-?")))
    rules = policy["rules"]
    assert [r["rulePriority"] for r in rules] == list(range(1, len(rules) + 1))
    # ECR requires the rule that selects any tag status to come last
    assert rules[-1]["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    assert rules[1]["selection"]["tagPrefixList"] == ["buildcache", "imagegraph-retention", "latest"]  # a pattern ECR cannot say is left out


@pytest.mark.parametrize(("url", "ok"), [
    ("https://api.github.com", True),
    ("https://github.example.com/api/v3/", True),
    ("http://127.0.0.1:8080/api", True),
    ("http://[::1]:8080", True),
    ("http://api.github.com", False),
    ("ftp://api.github.com", False),
    ("https://user:secret@api.github.com", False),
    ("https://api.github.com/?token=x", False),
    ("api.github.com", False),
])
def test_an_api_url_is_https_or_loopback_http(url, ok):
    if ok:
        assert not api_base(url, "GITHUB_API_URL").endswith("/")
    else:
        with pytest.raises(RegistryError) as err:
            api_base(url, "GITHUB_API_URL")
        assert "secret" not in str(err.value) and "token=x" not in str(err.value)


@pytest.mark.parametrize(("status", "headers", "wait"), [
    (403, {"Retry-After": "30"}, 30.0),  # GitHub's secondary rate limit
    (429, {"retry-after": "5"}, 5.0),
    (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1100"}, 100.0),  # the primary limit: until its reset
    (429, {"RateLimit-Remaining": "0", "RateLimit-Reset": "1010"}, 10.0),  # GitLab's names
    (429, {}, 60.0),
    (403, {"X-RateLimit-Remaining": "12"}, None),  # a refusal, not a limit: no wait
    (403, {}, None),
    (404, {"Retry-After": "5"}, None),
    (200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "1100"}, None),
])
def test_rate_limit_waits(status, headers, wait):
    assert rate_limit_wait(status, headers, 1000.0) == wait


class Script(requests.Session):
    """Answers from a script, and what was sent (the HTTP seam)."""

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)
        self.sent = []

    def request(self, method, url, **kwargs):
        self.sent.append((method, url, kwargs.get("headers", {})))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        status, headers, body, links = answer
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        if links:
            response.headers["Link"] = links
        response._content = json.dumps(body).encode()
        response.url = url
        return response


def test_pages_follow_the_link_header_and_never_carry_the_token_to_another_host():
    session = Script([
        (200, {}, [1, 2], '<https://api.github.com/x?page=2>; rel="next"'),
        (200, {}, [3], '<https://evil.example/x?page=3>; rel="next"'),
    ])
    api = ForgeHTTP("https://api.github.com", {"Authorization": "Bearer s3cret"}, what="GitHub's API", session=session)
    pages = api.pages("/x", params={"per_page": 2})
    assert next(pages)[1] == [1, 2] and next(pages)[1] == [3]
    with pytest.raises(RegistryError, match=r"pointed to evil.example .* refusing to send the token there"):
        next(pages)
    assert [url for _, url, _ in session.sent] == ["https://api.github.com/x", "https://api.github.com/x?page=2"]
    assert api.requests == 2


def test_a_rate_limit_is_waited_out_and_said_and_a_far_reset_is_one_line():
    waits, said = [], []
    session = Script([(403, {"Retry-After": "7"}, {"message": "secondary rate limit"}, None), (200, {}, {"ok": 1}, None)])
    api = ForgeHTTP("https://api.github.com", {}, what="GitHub's API", session=session, sleep=waits.append, say=said.append)
    assert api.get_json("/y") == {"ok": 1} and waits == [7.0] and api.requests == 2
    assert said == ["GitHub's API: rate limit reached, waiting 7 s as it asks"]
    session = Script([(403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "4600"}, {"message": "API rate limit exceeded"}, None)])
    api = ForgeHTTP("https://api.github.com", {}, what="GitHub's API", session=session, sleep=waits.append, clock=lambda: 1000.0)
    with pytest.raises(RegistryError, match=r"^GitHub's API rate-limited the requests; it lets them through again at 01:16:40 UTC"):
        api.get_json("/y")


@pytest.mark.parametrize("first", [requests.ConnectionError("the answer was lost"), (503, {}, {"message": "unavailable"}, None)])
def test_a_delete_sent_again_that_finds_nothing_was_done_by_its_first_send(first):
    session = Script([first, (404, {}, {"message": "Package version not found."}, None),
                      (404, {}, {"message": "Package version not found."}, None)])
    api = ForgeHTTP("https://api.github.com", {}, what="GitHub's API", session=session, sleep=lambda seconds: None)
    answer = api.request("DELETE", "/user/packages/container/app/versions/1", ok=(404,))
    assert answer.status_code == 404 and api.resent and api.gone_by_us(answer) and api.requests == 2
    # the same 404 to a DELETE sent once: gone before it, not by it
    answer = api.request("DELETE", "/user/packages/container/app/versions/1", ok=(404,))
    assert not api.resent and not api.gone_by_us(answer)


def test_an_error_is_one_line_with_the_apis_own_words_cleaned():
    session = Script([(403, {}, {"message": "Resource not accessible\x1b[31m by integration\nnext"}, None)])
    api = ForgeHTTP("https://api.github.com", {"Authorization": "Bearer s3cret"}, what="GitHub's API", session=session)
    with pytest.raises(RegistryError) as err:
        api.request("DELETE", "/orgs/acme/packages/container/app/versions/1")
    text = str(err.value)
    assert text == ("GitHub's API answered 403 (Resource not accessible [31m by integration next) to DELETE "
                    "/orgs/acme/packages/container/app/versions/1")
    assert "\n" not in text and "\x1b" not in text and "s3cret" not in text


def test_writes_are_paced_when_the_api_asks_for_a_pause_and_reads_are_not():
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(round(seconds, 3))
        now[0] += seconds

    session = Script([(204, {}, {}, None)] * 3 + [(200, {}, {}, None)] + [(204, {}, {}, None)])
    api = ForgeHTTP("https://api.github.com", {}, what="GitHub's API", session=session, sleep=sleep, clock=lambda: now[0],
                    mutation_gap=1.0)
    api.request("DELETE", "/a")  # the first write waits for nothing
    now[0] += 0.25
    api.request("DELETE", "/b")  # 0.25 s after the first: waits the rest of the second
    api.request("DELETE", "/c")
    api.request("GET", "/d")  # reads are not paced
    now[0] += 5
    api.request("DELETE", "/e")  # long after: no wait
    assert waits == [0.75, 1.0]
