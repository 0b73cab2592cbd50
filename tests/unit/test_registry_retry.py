"""When the registry client sends a request again, and how long it waits: the pure policy, then RegistryHTTP at the session seam.

The clock and the sleep are injected: nothing here waits. What real faults look
like on the wire (a 500 from the distribution registry, a cut connection, a
429 with Retry-After) is tested through the fault proxy in
tests/integration/test_registry_faults.py.
"""

from __future__ import annotations

import email.utils

import pytest
import requests
import urllib3.exceptions

from imagegraph.adapters.registry_http import RegistryHTTP, RetryPolicy, parse_retry_after
from imagegraph.core.errors import RegistryError

HOST = "registry.example.com"
NOW = 1_790_000_000.0  # epoch seconds of the injected wall clock
STEADY = RetryPolicy(jitter=lambda: 0.0)  # no random part: the longest waits
HALVED = RetryPolicy(jitter=lambda: 0.999999)  # the most shortened ones


# -- the policy ---------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/team/app/manifests/v1", True),
    ("HEAD", "/team/app/manifests/v1", True),
    ("get", "/team/app/tags/list?n=1000", True),
    ("DELETE", "/team/app/manifests/sha256:ab", True),
    ("PUT", "/team/app/manifests/v1", True),
    ("PUT", "/team/app/blobs/uploads/0f3c?digest=sha256:ab", False),
    ("POST", "/team/app/blobs/uploads/", False),
    ("PATCH", "/team/app/blobs/uploads/0f3c", False),
])
def test_only_idempotent_requests_are_sent_again(method, path, expected):
    assert RetryPolicy.idempotent(method, path) is expected


@pytest.mark.parametrize("status", [200, 201, 202, 307, 400, 401, 403, 404, 405, 409, 416, 501, 505])
def test_answers_that_mean_no_are_final(status):
    assert not RetryPolicy.retries_status(status)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_server_errors_and_rate_limits_are_passing(status):
    assert RetryPolicy.retries_status(status)


def test_the_waits_double_from_the_backoff_up_to_its_ceiling_and_stop_at_the_tries():
    assert STEADY.schedule() == (0.5, 1.0, 2.0, 4.0)  # 5 tries: 4 waits, 7.5 s at most
    assert HALVED.schedule() == pytest.approx((0.25, 0.5, 1.0, 2.0), rel=1e-5)
    assert RetryPolicy(tries=8, total=600, jitter=lambda: 0.0).schedule() == (0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0)
    assert RetryPolicy(tries=1).schedule() == ()


def test_jitter_shortens_each_wait_by_up_to_half():
    draws = iter([0.2, 0.8, 0.5, 0.0])
    waits = RetryPolicy(jitter=lambda: next(draws)).schedule()
    assert waits == pytest.approx((0.5 * 0.9, 1.0 * 0.6, 2.0 * 0.75, 4.0))


def test_no_wait_ends_after_the_total_time_limit():
    policy = RetryPolicy(tries=100, total=10.0, jitter=lambda: 0.0)
    assert policy.schedule() == (0.5, 1.0, 2.0, 4.0)  # 7.5 s; the next 8 s wait would end at 15.5 s
    assert policy.wait(sent=2, elapsed=9.5) is None  # a 1 s wait would end at 10.5 s
    assert policy.wait(sent=2, elapsed=9.0) == 1.0
    assert policy.wait(sent=1, elapsed=31.0) is None


def test_retry_after_replaces_the_backoff_and_is_capped():
    assert STEADY.wait(sent=1, elapsed=0.0, retry_after=3.0) == 3.0
    assert STEADY.wait(sent=1, elapsed=0.0, retry_after=0.0) == 0.0
    assert STEADY.wait(sent=1, elapsed=0.0, retry_after=3600.0) == 10.0  # max_retry_after
    assert STEADY.wait(sent=1, elapsed=25.0, retry_after=8.0) is None  # past the 30 s total
    assert STEADY.wait(sent=5, elapsed=0.0, retry_after=1.0) is None  # no tries left


def test_bounds_below_sense_are_refused():
    with pytest.raises(ValueError, match="tries >= 1"):
        RetryPolicy(tries=0)


@pytest.mark.parametrize(("header", "seconds"), [
    ("1", 1.0),
    (" 120 ", 120.0),
    ("0", 0.0),
    ("2.5", 2.5),
    (email.utils.formatdate(NOW + 7, usegmt=True), 7.0),
    (email.utils.formatdate(NOW - 60, usegmt=True), 0.0),  # already past: no wait
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    (None, None),
    ("", None),
    ("soon", None),
    ("Wed, 21 Oct 2015 07:28:00", None),  # a date without its zone is no HTTP date
])
def test_retry_after_is_delta_seconds_or_an_http_date(header, seconds):
    assert parse_retry_after(header, now=NOW) == seconds


# -- RegistryHTTP at the session seam ------------------------------------------------------


def reply(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response._content = body
    return response


def refused() -> requests.ConnectionError:
    """What requests raises when nothing listens: MaxRetryError around urllib3's NewConnectionError."""
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, f"https://{HOST}/v2/", reason))


def reset() -> requests.ConnectionError:
    reason = urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104, "Connection reset by peer"))
    return requests.ConnectionError(reason)


DISTRIBUTION_500 = b'{"errors":[{"code":"UNKNOWN","message":"unknown error","detail":"invalid checksum digest format"}]}'


class Script:
    """A session that plays a script of answers (responses, or exceptions to raise), on a clock that each send and sleep advance."""

    def __init__(self, *answers: requests.Response | Exception, send_takes: float = 0.1) -> None:
        self.answers = list(answers)
        self.send_takes = send_takes
        self.now = 100.0
        self.sent: list[tuple[str, str, float]] = []
        self.slept: list[float] = []

    def request(self, method, url, *, headers, data=None, timeout=None):
        self.sent.append((method, url, timeout))
        self.now += min(self.send_takes, timeout)  # a send that times out takes its timeout
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def client(self, policy: RetryPolicy = STEADY, timeout: float = 10.0) -> RegistryHTTP:
        return RegistryHTTP(HOST, session=self, retry=policy, timeout=timeout, sleep=self.sleep, clock=lambda: self.now,
                            wallclock=lambda: NOW)


def test_a_500_then_an_answer_is_sent_again_after_the_backoff():
    script = Script(reply(500, body=DISTRIBUTION_500), reply(200))
    assert script.client().request("GET", "/team/app/manifests/v1").status_code == 200
    assert [s[1] for s in script.sent] == [f"https://{HOST}/v2/team/app/manifests/v1"] * 2
    assert script.slept == [0.5]


@pytest.mark.parametrize("failure", [reply(502), reply(503), reply(504), reset(), requests.ReadTimeout("read timed out")],
                         ids=["502", "503", "504", "reset", "read-timeout"])
def test_passing_faults_are_sent_again(failure):
    script = Script(failure, failure, reply(200))
    assert script.client().request("HEAD", "/team/app/manifests/v1").status_code == 200
    assert script.slept == [0.5, 1.0]


def test_a_persistent_500_gives_up_after_the_tries_in_one_line():
    script = Script(*[reply(500, body=DISTRIBUTION_500)] * 5)
    with pytest.raises(RegistryError) as caught:
        script.client().request("GET", "/team/app/manifests/v1")
    assert str(caught.value) == (
        f"registry {HOST} answered 500 (invalid checksum digest format) to GET /v2/team/app/manifests/v1 on 5 tries over 8.0 s; "
        "check that it is up and healthy (`invoke engine.status`, the registry's log) and run again"
    )
    assert script.slept == [0.5, 1.0, 2.0, 4.0] and caught.value.__cause__ is None


def test_the_total_time_limit_ends_the_tries_and_bounds_each_send():
    script = Script(*[requests.ReadTimeout("read timed out")] * 5, send_takes=10.0)
    with pytest.raises(RegistryError) as caught:
        script.client(RetryPolicy(tries=5, total=25.0, jitter=lambda: 0.0)).request("GET", "/team/app/tags/list?n=1000")
    # 10 s, wait 0.5, 10 s, wait 1, then only 3.5 s are left for the third send; no time for a fourth
    assert str(caught.value).startswith(f"registry {HOST} did not answer in time to GET /v2/team/app/tags/list?n=1000 on 3 tries over 25.0 s; ")
    assert [timeout for *_, timeout in script.sent] == [10.0, 10.0, 3.5]
    # Less than a send's timeout left: the send gets what is left (at least 1 s).
    short = Script(reply(503), reply(200), send_takes=0.0)
    short.client(RetryPolicy(total=3.0, jitter=lambda: 0.0)).request("GET", "/")
    assert [timeout for *_, timeout in short.sent] == [3.0, 2.5]


def test_a_refusal_at_first_contact_fails_at_once_with_the_fix():
    script = Script(refused())
    with pytest.raises(RegistryError) as caught:
        script.client().request("GET", "/team/app/manifests/v1")
    assert str(caught.value) == f"registry {HOST} is not reachable; start it with `invoke engine.up` or set IMAGEGRAPH_REGISTRY"
    assert script.slept == [] and len(script.sent) == 1


def test_no_connection_in_time_at_first_contact_fails_at_once():
    script = Script(requests.ConnectTimeout("connect timed out"))
    with pytest.raises(RegistryError, match=rf"^registry {HOST} did not answer within 10s; check that it is up \(`invoke engine.status`\)$"):
        script.client().request("GET", "/")
    assert script.slept == []


def test_a_refusal_after_the_registry_answered_is_a_restart_and_is_waited_for():
    script = Script(reply(200), refused(), refused(), reply(200))
    client = script.client()
    client.request("GET", "/")
    assert client.request("GET", "/team/app/manifests/v1").status_code == 200
    assert script.slept == [0.5, 1.0]
    gone = Script(reply(200), *[refused()] * 5)
    client = gone.client()
    client.request("GET", "/")
    with pytest.raises(RegistryError, match=rf"^registry {HOST} refused the connection to GET /v2/ on 5 tries over "):
        client.request("GET", "/")


def test_a_429_waits_as_long_as_retry_after_says():
    script = Script(reply(429, {"Retry-After": "3"}), reply(429, {"Retry-After": email.utils.formatdate(NOW + 6, usegmt=True)}), reply(200))
    assert script.client().request("GET", "/team/app/tags/list?n=1000").status_code == 200
    assert script.slept == [3.0, 6.0]


def test_a_429_without_retry_after_backs_off():
    script = Script(reply(429), reply(200))
    script.client().request("GET", "/")
    assert script.slept == [0.5]


@pytest.mark.parametrize("answer", [reply(404), reply(401), reply(400), reply(405), reply(501)])
def test_final_answers_are_returned_at_once(answer):
    script = Script(answer)
    assert script.client().request("GET", "/team/app/manifests/v1") is answer
    assert script.slept == []


def test_a_request_that_is_not_idempotent_is_sent_once():
    script = Script(reply(500))
    assert script.client().request("POST", "/team/app/blobs/uploads/").status_code == 500  # the caller's to report
    cut = Script(reply(200), reset())
    client = cut.client()
    client.request("GET", "/")
    with pytest.raises(RegistryError, match=rf"^registry {HOST} dropped the connection to PATCH /v2/team/app/blobs/uploads/0f3c on 1 try over "):
        client.request("PATCH", "/team/app/blobs/uploads/0f3c", data=b"layer")
    assert cut.slept == []


def test_a_body_that_is_not_distribution_json_is_left_out_of_the_line():
    script = Script(*[reply(502, body=b"<html>Bad Gateway</html>")] * 5)
    with pytest.raises(RegistryError, match=rf"^registry {HOST} answered 502 to GET "):
        script.client().request("GET", "/")


def test_loopback_registries_are_plain_http_unless_a_scheme_is_named():
    assert RegistryHTTP("127.0.0.1:5000").base == "http://127.0.0.1:5000/v2"
    assert RegistryHTTP("localhost:5000").base == "http://localhost:5000/v2"
    assert RegistryHTTP(HOST).base == f"https://{HOST}/v2"
    assert RegistryHTTP("10.0.0.7:5000", scheme="http").base == "http://10.0.0.7:5000/v2"
