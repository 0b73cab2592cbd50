"""A stand-in for the two endpoints that say whether a pull or merge request is open: GitHub's and GitLab's.

- GitHub, "Get a pull request": ``GET /repos/{owner}/{repo}/pulls/{pull_number}``
  answers the pull request with ``state`` (``open`` or ``closed``), ``closed_at``
  and ``merged_at`` (null until it happens); 404 ``{"message": "Not Found"}`` for
  none, 401 ``{"message": "Bad credentials"}`` for a wrong token.
  https://docs.github.com/en/rest/pulls/pulls#get-a-pull-request
- GitLab, "Get single MR": ``GET /projects/:id/merge_requests/:merge_request_iid``
  (``:id`` a number or the URL-encoded path ``group%2Fproject``) answers with
  ``state`` (``opened``, ``closed``, ``locked``, ``merged``), ``closed_at`` and
  ``merged_at``; 404 ``{"message": "404 Not found"}``, 401
  ``{"message": "401 Unauthorized"}``. The job token cannot read merge requests
  (https://gitlab.com/gitlab-org/gitlab/-/issues/545150): a ``JOB-TOKEN`` gets 401 here.
  https://docs.gitlab.com/ee/api/merge_requests.html#get-single-mr

Tokens: GitHub's ``Authorization: Bearer <token>``; GitLab's ``PRIVATE-TOKEN``.
Every request is recorded (method, path, when it arrived) so a test can count them.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Forges:
    """What the stand-in knows: pull requests by (owner/repo, number), merge requests by (project, iid)."""

    token: str = "forge-token"
    pulls: dict[tuple[str, int], dict] = field(default_factory=dict)
    merge_requests: dict[tuple[str, int], dict] = field(default_factory=dict)
    #: (method, path, monotonic time) of every request received.
    seen: list[tuple[str, str, float]] = field(default_factory=list)
    #: Seconds each answer takes (to show that requests go side by side).
    delay: float = 0.0
    url: str = ""

    def github_pull(self, repository: str, number: int, state: str, *, closed_at: str | None = None, merged: bool = False) -> None:
        self.pulls[(repository, number)] = {"number": number, "state": state, "closed_at": closed_at,
                                            "merged_at": closed_at if merged else None, "merged": merged}

    def gitlab_merge_request(self, project: str, iid: int, state: str, *, closed_at: str | None = None) -> None:
        self.merge_requests[(project, iid)] = {"iid": iid, "state": state,
                                               "closed_at": closed_at if state == "closed" else None,
                                               "merged_at": closed_at if state == "merged" else None}


def _handler(forges: Forges) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            forges.seen.append(("GET", self.path, time.monotonic()))
            if forges.delay:
                time.sleep(forges.delay)
            parts = self.path.split("?", 1)[0].strip("/").split("/")
            if len(parts) == 5 and parts[0] == "repos" and parts[3] == "pulls" and parts[4].isdigit():
                if self.headers.get("Authorization") != f"Bearer {forges.token}":
                    return self._answer(401, {"message": "Bad credentials"})
                found = forges.pulls.get((f"{parts[1]}/{parts[2]}", int(parts[4])))
                return self._answer(200, found) if found else self._answer(404, {"message": "Not Found"})
            if len(parts) == 4 and parts[0] == "projects" and parts[2] == "merge_requests" and parts[3].isdigit():
                if self.headers.get("PRIVATE-TOKEN") != forges.token:
                    return self._answer(401, {"message": "401 Unauthorized"})
                found = forges.merge_requests.get((parts[1], int(parts[3])))
                return self._answer(200, found) if found else self._answer(404, {"message": "404 Not found"})
            return self._answer(404, {"message": "Not Found"})

    return Handler


@contextmanager
def forge_pulls(forges: Forges | None = None) -> Iterator[Forges]:
    """The stand-in, serving on a free loopback port (``forges.url``) until the block ends."""
    forges = forges or Forges()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(forges))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    forges.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield forges
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
