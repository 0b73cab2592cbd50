"""The registry client against a real registry that misbehaves: the fault proxy (faultproxy.py) in front of the shared one.

Each test scripts the faults, then checks what the client made of them and
what reached the registry (the proxy's record). Timings are printed (run with
-s to see them): they are what a user waits for when a registry is in trouble.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import socket
import subprocess
import threading
import time

import pytest
import requests

from imagegraph.adapters.registry import Registry
from imagegraph.adapters.registry_http import RetryPolicy
from imagegraph.core.errors import RegistryError
from imagegraph_provision import seed, seed_build
from imagegraph_provision.observe import probe_registry
from tests.integration.faultproxy import Answer, Cut, Drop, FaultProxy, Hold, Stall, start_fault_proxy
from tests.integration.oci_seed import Seeder

pytestmark = pytest.mark.integration

FIX = "check that it is up and healthy (`invoke engine.status`, the registry's log) and run again"


@pytest.fixture
def tiny(registry, namespace) -> tuple[str, str]:
    """(repository, digest) of a small image pushed straight to the shared registry as <namespace>/tiny:v1."""
    name = f"{namespace}/tiny"
    return name, Seeder(registry).image(name, "v1", text="hello\n", created="2026-01-01T00:00:00Z")


def gets(proxy: FaultProxy, name: str, tag: str = "v1", method: str = "GET") -> list[int | None]:
    return [seen.status for seen in proxy.seen(method, rf"/{re.escape(name)}/manifests/{tag}$")]


def test_a_500_on_a_tag_being_rewritten_is_read_again(fault_proxy, tiny):
    name, digest = tiny
    fault_proxy.inject(Answer(500, detail="invalid checksum digest format"), "GET", rf"/{name}/manifests/v1$", nth=2)
    client = Registry(fault_proxy.address)
    assert client.inspect(name, "v1")[1] == digest
    assert client.inspect(name, "v1")[1] == digest  # the second read met the 500, and was sent again
    assert gets(fault_proxy, name) == [200, 500, 200]
    _, failed, again = fault_proxy.seen("GET", "/manifests/v1$")
    print(f"waited {again.at - failed.at:.2f} s after the 500")
    assert 0.25 <= again.at - failed.at < 1.5


def test_a_persistent_500_fails_in_one_line_after_bounded_tries_and_time(fault_proxy, tiny):
    name, _ = tiny
    fault_proxy.inject(Answer(500, detail="invalid checksum digest format"), "GET", rf"/{name}/manifests/v1$", times=None)
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        Registry(fault_proxy.address).inspect(name, "v1")
    seconds = time.monotonic() - started
    print(f"gave up after {seconds:.2f} s: {caught.value}")
    message = str(caught.value)
    assert re.fullmatch(
        rf"registry {re.escape(fault_proxy.address)} answered 500 \(invalid checksum digest format\) to GET /v2/{name}/manifests/v1 "
        rf"on 5 tries over \d+\.\d s; {re.escape(FIX)}", message), message
    assert gets(fault_proxy, name) == [500] * 5
    # Waits of 0.5, 1, 2, 4 s, each shortened by up to half: 3.75 to 7.5 s, plus the sends.
    assert 3.75 <= seconds < 9


def test_a_stalled_registry_is_given_up_on_at_the_total_time_limit(fault_proxy, tiny):
    name, _ = tiny
    fault_proxy.inject(Stall(30), "GET", rf"/{name}/tags/list", times=None)
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        Registry(fault_proxy.address, timeout=1.0, retry=RetryPolicy(total=3.0)).tags(name)
    seconds = time.monotonic() - started
    print(f"stalled: gave up after {seconds:.2f} s: {caught.value}")
    assert re.match(rf"registry {re.escape(fault_proxy.address)} did not answer in time to GET /v2/{name}/tags/list\?n=1000 "
                    rf"on [23] tries over \d\.\d s; ", str(caught.value)), str(caught.value)
    assert 2.0 <= seconds < 4.5


@pytest.mark.parametrize("fault", [Cut(after=16), Drop(), Drop(reset=True)], ids=["cut-mid-body", "closed-unanswered", "reset"])
def test_a_dropped_connection_is_sent_again(fault, fault_proxy, tiny):
    name, digest = tiny
    fault_proxy.inject(fault, "GET", rf"/{name}/manifests/v1$")
    assert Registry(fault_proxy.address).inspect(name, "v1")[1] == digest
    assert gets(fault_proxy, name) == [None, 200]


def test_a_rate_limit_waits_as_long_as_retry_after_says(fault_proxy, tiny):
    name, digest = tiny
    fault_proxy.inject(Answer(429, detail="toomanyrequests", headers={"Retry-After": "1"}), "HEAD", rf"/{name}/manifests/v1$")
    client = Registry(fault_proxy.address)
    assert client.manifest_digest(name, "v1") == digest
    limited, allowed = fault_proxy.seen("HEAD", "/manifests/v1$")
    print(f"Retry-After: 1 -> waited {allowed.at - limited.at:.2f} s")
    assert (limited.status, allowed.status) == (429, 200) and 1.0 <= allowed.at - limited.at < 1.8

    # An HTTP date: Retry-After names when (second granularity), 2 s from now.
    fault_proxy.inject(Answer(503, headers={"Retry-After": email.utils.formatdate(time.time() + 2, usegmt=True)}), "HEAD", rf"/{name}/manifests/v1$")
    assert client.manifest_digest(name, "v1") == digest
    _, _, unavailable, allowed = fault_proxy.seen("HEAD", "/manifests/v1$")
    print(f"Retry-After: <date 2 s ahead> -> waited {allowed.at - unavailable.at:.2f} s")
    assert unavailable.status == 503 and 1.0 <= allowed.at - unavailable.at < 2.8


def test_a_manifest_put_is_sent_again(fault_proxy, tiny):
    name, digest = tiny
    fault_proxy.inject(Answer(503), "PUT", rf"/{name}/manifests/copy$")
    assert Registry(fault_proxy.address).copy_tag(name, "v1", "copy") == digest
    assert gets(fault_proxy, name, "copy", "PUT") == [503, 201]
    assert Registry(fault_proxy.upstream).manifest_digest(name, "copy") == digest


def test_a_registry_that_is_not_running_fails_at_once():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there once the socket is closed
    started = time.monotonic()
    with pytest.raises(RegistryError) as caught:
        Registry(address).tags("team/app")
    assert str(caught.value) == f"registry {address} is not reachable; start it with `invoke engine.up` or set IMAGEGRAPH_REGISTRY"
    assert time.monotonic() - started < 1


def test_a_registry_that_goes_away_mid_run_is_waited_for_then_named(registry, tiny):
    name, _ = tiny
    proxy = start_fault_proxy(registry)
    client = Registry(proxy.address, retry=RetryPolicy(total=2.0))
    assert client.tags(name) == ("v1",)
    proxy.close()  # the port is closed now: connections are refused
    with pytest.raises(RegistryError) as caught:
        client.tags(name)
    assert re.match(rf"registry {re.escape(proxy.address)} refused the connection to GET /v2/{name}/tags/list\?n=1000 on [2-4] tries ",
                    str(caught.value)), str(caught.value)


def test_engine_setup_probes_go_through_the_same_client(fault_proxy):
    fault_proxy.inject(Answer(503), "GET", r"^/v2/$")
    assert probe_registry(fault_proxy.address)
    assert [s.status for s in fault_proxy.seen("GET", r"^/v2/$")] == [503, 200]

    direct = seed_build.probe_base_platforms(fault_proxy.upstream)
    if not direct:
        pytest.skip(f"{fault_proxy.upstream} serves no library/python:3.11-slim to probe; `invoke engine.up` seeds it")
    fault_proxy.inject(Answer(500, detail="invalid checksum digest format"), "GET", rf"/{seed.BASE_REPOSITORY}/manifests/{seed.BASE_TAG}$")
    assert seed_build.probe_base_platforms(fault_proxy.address) == direct
    fault_proxy.inject(Drop(), "HEAD", rf"/{seed.BASE_REPOSITORY}/manifests/")
    assert seed_build.probe_pushed_platforms(fault_proxy.address, direct) == direct


# -- the proxy itself: what other tests rely on ----------------------------------------------


def test_a_chunked_upload_and_its_location_pass_through(fault_proxy, namespace):
    name = f"{namespace}/blob"
    data = b"layer bytes " * 100_000  # 1.2 MB, sent in chunks of unknown total length
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    base = f"http://{fault_proxy.address}/v2/{name}/blobs/uploads/"
    started = requests.post(base, timeout=10)
    assert started.status_code == 202, started.text
    location = requests.compat.urljoin(base, started.headers["Location"])
    assert location.startswith(f"http://{fault_proxy.address}/")  # the registry built it from the Host the proxy passed on
    patched = requests.patch(location, data=(data[i:i + 65536] for i in range(0, len(data), 65536)), timeout=30)
    assert patched.status_code == 202, patched.text
    done = requests.put(requests.compat.urljoin(location, patched.headers["Location"]), params={"digest": digest}, timeout=10)
    assert done.status_code == 201, done.text
    assert Registry(fault_proxy.upstream).blob(name, digest) == data
    assert [s.method for s in fault_proxy.seen()] == ["POST", "PATCH", "PUT"]


def test_buildx_pushes_through_the_proxy(fault_proxy, namespace, tmp_path, docker_client):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY payload.bin /payload.bin\n")
    (tmp_path / "payload.bin").write_bytes(hashlib.sha256(namespace.encode()).digest() * 400_000)  # 12.8 MB
    ref = f"{fault_proxy.address}/{namespace}/pushed:v1"
    started = time.monotonic()
    result = subprocess.run(["docker", "buildx", "build", "--provenance=false", "--push", "--tag", ref, str(tmp_path)],
                            capture_output=True, text=True, timeout=300)
    print(f"buildx build --push through the proxy: {time.monotonic() - started:.1f} s")
    assert result.returncode == 0, result.stderr[-2000:]
    digest = Registry(fault_proxy.upstream).manifest_digest(f"{namespace}/pushed", "v1")
    assert digest is not None and digest in result.stderr
    uploads = [s for s in fault_proxy.seen(path=r"/blobs/uploads/.") if s.method in ("PUT", "PATCH")]
    assert uploads and all(s.status in (201, 202) for s in uploads)


def test_a_held_request_reaches_the_registry_only_when_released(fault_proxy, tiny):
    name, digest = tiny
    held = fault_proxy.inject(Hold(), "PUT", rf"/{name}/manifests/moved$").fault
    done: list[str] = []
    copying = threading.Thread(target=lambda: done.append(Registry(fault_proxy.address).copy_tag(name, "v1", "moved")))
    copying.start()
    assert held.wait_until_held(10)
    time.sleep(0.3)
    assert done == [] and Registry(fault_proxy.upstream).manifest_digest(name, "moved") is None  # in flight, not yet written
    held.release()
    copying.join(10)
    assert done == [digest] and Registry(fault_proxy.upstream).manifest_digest(name, "moved") == digest
