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
Every request is recorded (:attr:`~tests.standins.StandIn.seen`: method, path, status, when it arrived) so a test can count them.
No registry stands behind it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.standins import Reply, Request, StandIn

__all__ = ["Forges", "forge_pulls"]


class Forges(StandIn):
    """What the stand-in knows: pull requests by (owner/repo, number), merge requests by (project, iid)."""

    def __init__(self, *, token: str = "forge-token", delay: float = 0.0) -> None:
        super().__init__(None)
        self.token = token
        #: Seconds each answer takes (to show that requests go side by side).
        self.delay = delay
        self.pulls: dict[tuple[str, int], dict] = {}
        self.merge_requests: dict[tuple[str, int], dict] = {}

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def github_pull(self, repository: str, number: int, state: str, *, closed_at: str | None = None, merged: bool = False) -> None:
        self.pulls[(repository, number)] = {"number": number, "state": state, "closed_at": closed_at,
                                            "merged_at": closed_at if merged else None, "merged": merged}

    def gitlab_merge_request(self, project: str, iid: int, state: str, *, closed_at: str | None = None) -> None:
        self.merge_requests[(project, iid)] = {"iid": iid, "state": state,
                                               "closed_at": closed_at if state == "closed" else None,
                                               "merged_at": closed_at if state == "merged" else None}

    def answer(self, request: Request) -> Reply:
        if request.method != "GET":
            return Reply(501, {"message": "Unsupported method"})
        if self.delay:
            time.sleep(self.delay)
        parts = request.target.split("?", 1)[0].strip("/").split("/")
        if len(parts) == 5 and parts[0] == "repos" and parts[3] == "pulls" and parts[4].isdigit():
            if request.header("Authorization") != f"Bearer {self.token}":
                return Reply(401, {"message": "Bad credentials"})
            found = self.pulls.get((f"{parts[1]}/{parts[2]}", int(parts[4])))
            return Reply(200, found) if found else Reply(404, {"message": "Not Found"})
        if len(parts) == 4 and parts[0] == "projects" and parts[2] == "merge_requests" and parts[3].isdigit():
            if request.header("PRIVATE-TOKEN") != self.token:
                return Reply(401, {"message": "401 Unauthorized"})
            found = self.merge_requests.get((parts[1], int(parts[3])))
            return Reply(200, found) if found else Reply(404, {"message": "404 Not found"})
        return Reply(404, {"message": "Not Found"})


@contextmanager
def forge_pulls(forges: Forges | None = None) -> Iterator[Forges]:
    """The stand-in, serving on a free loopback port (``forges.url``) until the block ends."""
    with forges or Forges() as serving:
        yield serving
