"""What expiry asks the world (:mod:`imagegraph.core.expiry`): the forge for pull requests, git for branches.

- **Pull and merge requests.** One request per distinct number, a few side
  by side: GitHub's ``GET /repos/{owner}/{repo}/pulls/{number}`` (``state``,
  ``merged_at``, ``closed_at``), GitLab's ``GET /projects/:id/merge_requests/:iid``
  (``state`` opened, closed, merged or locked; ``closed_at``, ``merged_at``),
  through :class:`~imagegraph.adapters.registry_apis.forge_http.ForgeHTTP`
  (rate limits honoured, errors in one line, the token sent to the API's own
  host only). Which forge and which repository: ``GITHUB_REPOSITORY`` on
  GitHub Actions, ``CI_PROJECT_ID``/``CI_PROJECT_PATH`` on GitLab CI, else the
  ``origin`` remote's address (github.com or gitlab.com), read as data. The
  API's URL comes from ``GITHUB_API_URL``/``CI_API_V4_URL`` or the public
  default, the token from ``GITHUB_TOKEN``, ``GITLAB_TOKEN`` or
  ``CI_JOB_TOKEN``. Where none of that is at hand, or the forge refuses,
  nothing is asked and the images count from their creation; one line says so.
- **Branches.** The remote's branches now (``git ls-remote`` of ``origin``),
  and which ``sha-<7>`` commits they contain (this clone's history from
  those heads). Heads the clone lacks are fetched first; a shallow clone is
  deepened to the oldest such image's time. A commit the clone cannot place
  is unknown: it counts from the image's creation, and one line says so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..core.ci import source_url
from ..core.errors import ImagegraphError
from ..core.expiry import (
    Expiry,
    ExpiryFacts,
    PullRequestState,
    commit_abbreviations,
    judge_expiry,
    moment,
    pull_request_numbers,
    span,
)
from ..core.retention import Manifest
from .registry_apis.forge_http import ForgeHTTP

if TYPE_CHECKING:
    import requests

    from .repo import Repository

__all__ = ["Forge", "branch_commits", "expiry_facts", "expiry_judge", "find_forge", "pull_request_states"]

GITHUB_API = "https://api.github.com"
GITLAB_API = "https://gitlab.com/api/v4"
#: Requests to the forge side by side: a few, not one per image (the secondary rate limit counts concurrency).
WORKERS = 4

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Forge:
    """Where pull or merge requests are asked about, and with which token header."""

    kind: str  # "github" or "gitlab"
    base: str
    #: The path below ``base`` that request numbers are appended to, e.g. /repos/o/r/pulls/ or /projects/o%2Fr/merge_requests/.
    path: str
    headers: Mapping[str, str]
    #: e.g. "GitHub's API at https://api.github.com": the subject of every line said about it.
    what: str


def expiry_judge(git: Repository, age: timedelta, *, environ: Mapping[str, str] = os.environ,
                 say: Callable[[str], None] = lambda line: None, now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 session: requests.Session | None = None) -> Callable[[Sequence[Manifest]], Expiry]:
    """What cleanup hands to :func:`imagegraph.adapters.prune.prune`: the inventory at its look in, the expiry out
    (the forge and git asked then, once)."""

    def judge(manifests: Sequence[Manifest]) -> Expiry:
        return judge_expiry(manifests, expiry_facts(git, manifests, age=age, environ=environ, say=say, session=session), now())

    return judge


def expiry_facts(git: Repository, manifests: Sequence[Manifest], *, age: timedelta, environ: Mapping[str, str] = os.environ,
                 say: Callable[[str], None] = lambda line: None, session: requests.Session | None = None) -> ExpiryFacts:
    """What git and the forge say of the requests and commits ``manifests``' images were tagged for (see the module).

    Never raises for what cannot be asked: each such thing is one line
    (said, and kept in :attr:`ExpiryFacts.notes`), and those images count
    from their creation.
    """
    notes: list[str] = []
    numbers = pull_request_numbers(manifests)
    states: dict[int, PullRequestState] = {}
    if numbers:
        remote = _remote_url(git)
        forge = find_forge(environ, remote)
        if isinstance(forge, str):
            notes.append(f"note: pull requests not asked about ({forge}): images of pull requests expire "
                         f"{span(age)} after they were made")
        else:
            states, note = pull_request_states(forge, numbers, session=session, say=say)
            if note:
                notes.append(note)
    abbreviations = commit_abbreviations(manifests)
    commits: dict[str, bool] = {}
    if abbreviations:
        oldest = min((when for m in manifests if (when := moment(m.created)) is not None), default=None)
        commits, note = branch_commits(git, abbreviations, since=oldest)
        if note:
            notes.append(f"{note}: those images expire {span(age)} after they were made")
    for note in notes:
        say(note)
    return ExpiryFacts(age, states, commits, tuple(notes))


def _remote_url(git: Repository) -> str | None:
    try:
        return git.remote_url()
    except ImagegraphError:
        return None


def find_forge(environ: Mapping[str, str], remote: str | None) -> Forge | str:
    """The forge the repository's requests live on, or why none can be asked (in words, for a note)."""
    if environ.get("GITHUB_REPOSITORY"):
        return _github(environ, environ["GITHUB_REPOSITORY"], "GITHUB_REPOSITORY")
    if environ.get("CI_PROJECT_ID") or environ.get("CI_PROJECT_PATH"):
        project_id = environ.get("CI_PROJECT_ID", "")
        if project_id.isascii() and project_id.isdigit():
            return _gitlab(environ, project_id)
        return _gitlab_path(environ, environ.get("CI_PROJECT_PATH", ""), "CI_PROJECT_PATH")
    address = source_url(remote, {})  # the remote's host and path only: no userinfo, query or port of ssh
    if address is None:
        return "no GITHUB_REPOSITORY or CI_PROJECT_PATH, and no origin remote on a forge's host"
    parts = urlsplit(address)
    host, path = (parts.hostname or "").lower(), parts.path.strip("/")
    if host == "github.com" or (environ.get("GITHUB_API_URL") and not environ.get("CI_API_V4_URL")):
        return _github(environ, path, "the origin remote's path")
    if host == "gitlab.com" or environ.get("CI_API_V4_URL"):
        return _gitlab_path(environ, path, "the origin remote's path")
    return f"the origin remote is on {host}, which is neither github.com nor gitlab.com (GITHUB_API_URL or CI_API_V4_URL names its API)"


def _github(environ: Mapping[str, str], repository: str, origin: str) -> Forge | str:
    parts = repository.split("/")
    if len(parts) != 2 or not all(_NAME.fullmatch(p) and p not in (".", "..") for p in parts):
        return f"{origin} is not owner/repository"
    token = environ.get("GITHUB_TOKEN", "")
    base = environ.get("GITHUB_API_URL") or GITHUB_API
    if not token:
        return "no GITHUB_TOKEN to ask GitHub with"
    return Forge("github", base, f"/repos/{parts[0]}/{parts[1]}/pulls/",
                 {"Authorization": f"Bearer {token}", "X-GitHub-Api-Version": "2022-11-28"},
                 f"GitHub's API at {base}")


def _gitlab_path(environ: Mapping[str, str], path: str, origin: str) -> Forge | str:
    parts = path.split("/")
    if len(parts) < 2 or not all(_NAME.fullmatch(p) and p not in (".", "..") for p in parts):
        return f"{origin} is not a GitLab project path (group/project)"
    return _gitlab(environ, quote(path, safe=""))


def _gitlab(environ: Mapping[str, str], project: str) -> Forge | str:
    base = environ.get("CI_API_V4_URL") or GITLAB_API
    if environ.get("GITLAB_TOKEN"):
        headers = {"PRIVATE-TOKEN": environ["GITLAB_TOKEN"]}
    elif environ.get("CI_JOB_TOKEN"):
        headers = {"JOB-TOKEN": environ["CI_JOB_TOKEN"]}
    else:
        return "no GITLAB_TOKEN or CI_JOB_TOKEN to ask GitLab with"
    return Forge("gitlab", base, f"/projects/{project}/merge_requests/", headers, f"GitLab's API at {base}")


def pull_request_states(forge: Forge, numbers: Collection[int], *, session: requests.Session | None = None,
                        say: Callable[[str], None] = lambda line: None, workers: int = WORKERS,
                        ) -> tuple[dict[int, PullRequestState], str | None]:
    """number -> state for each request the forge answered for, and one line on those it did not (None when all).

    The first is asked alone: a refused token or an unreachable API then
    costs one request, not one per number.
    """
    try:
        http = ForgeHTTP(forge.base, forge.headers, what=forge.what, session=session, say=say)
    except ImagegraphError as err:
        return {}, f"note: pull requests not asked about ({err}): their images count from when they were made"
    ordered = sorted(numbers)
    found: dict[int, PullRequestState] = {}
    missing: list[int] = []

    def ask(number: int) -> None:
        answer = http.request("GET", f"{forge.path}{number}", ok=(404,))
        try:
            state = _state(forge.kind, answer.json() if answer.status_code == 200 else None)
        except ValueError:
            state = None  # not JSON: says nothing of the request
        if state is None:
            missing.append(number)
        else:
            found[number] = state

    try:
        ask(ordered[0])
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ordered) - 1))) as pool:
            for done in [pool.submit(ask, number) for number in ordered[1:]]:
                done.result()
    except ImagegraphError as err:
        hint = " (GitLab's job token cannot read merge requests: set GITLAB_TOKEN, scope read_api)" \
            if forge.kind == "gitlab" and "JOB-TOKEN" in forge.headers else ""
        return found, (f"note: {len(ordered) - len(found)} of {len(ordered)} pull requests not asked about ({_plain(err)}){hint}: "
                       "their images count from when they were made")
    if missing:
        return found, (f"note: {forge.what} knows no pull request {', '.join(f'#{n}' for n in sorted(missing))}: "
                       "their images count from when they were made")
    return found, None


def _state(kind: str, body: object) -> PullRequestState | None:
    """A request's state from the forge's answer; None when the answer is not one."""
    if not isinstance(body, dict) or not isinstance(body.get("state"), str):
        return None
    state = body["state"]
    merged_at = moment(str(body.get("merged_at") or ""))
    closed_at = moment(str(body.get("closed_at") or ""))
    if kind == "github":
        if state == "open":
            return PullRequestState(True)
        return PullRequestState(False, merged_at or closed_at, merged_at is not None) if state == "closed" else None
    if state in ("opened", "locked"):  # locked: GitLab is merging it right now
        return PullRequestState(True)
    if state == "merged":
        return PullRequestState(False, merged_at or closed_at, True)
    return PullRequestState(False, closed_at, False) if state == "closed" else None


def branch_commits(git: Repository, abbreviations: Collection[str], *, since: datetime | None = None,
                   ) -> tuple[dict[str, bool], str | None]:
    """abbreviation -> whether a branch of ``origin`` contains its commit (False: none does, for sure); and one line on
    those git could not place (None when it placed all). ``since``: the oldest image's time, how far to deepen a shallow clone."""
    try:
        heads = git.remote_heads("origin")
        local = git.commits_named(heads)
        shallow = git.is_shallow()
        if len(local) < len(heads) or shallow:
            options = (f"--shallow-since={(since - timedelta(days=1)).astimezone(UTC):%Y-%m-%d}",) if shallow and since else ()
            failed = git.fetch("origin", options=options)
            if failed is None:
                local, shallow = git.commits_named(heads), git.is_shallow()
        reachable = git.reachable(set(local.values()))
        named = git.commits_named(abbreviations)
    except ImagegraphError as err:
        return {}, f"note: commits of branch images not placed ({_plain(err)})"
    complete = len(local) == len(heads) and not shallow
    # sha-<7> is an abbreviation: any branch commit that starts with it keeps the image (when in doubt, keep)
    on_branches = {commit[:7] for commit in (*reachable, *heads)}
    placed: dict[str, bool] = {}
    for abbreviation in abbreviations:
        if abbreviation in on_branches:
            placed[abbreviation] = True
        elif complete and abbreviation in named:
            placed[abbreviation] = False
    unplaced = sorted(set(abbreviations) - set(placed))
    if not unplaced:
        return placed, None
    why = "the clone is shallow" if shallow else "the clone lacks some of origin's branches" if not complete else \
        "the clone does not have them"
    shown_commits = ", ".join(unplaced[:5]) + (f" (and {len(unplaced) - 5} more)" if len(unplaced) > 5 else "")
    return placed, f"note: commit {shown_commits} not placed on a branch of origin ({why})"


def _plain(err: BaseException) -> str:
    return str(err).removeprefix("error: ").strip()
