"""What this run is, as the CI platform (or git) says: the event the tags follow, and the commit changes are explained against.

Read here, once, for both: GitHub Actions (the environment and the event
file) and GitLab CI (its predefined variables), else git (a version tag at
HEAD, the branch).

**The event** (:func:`event_from_env`, :func:`event_from_git`), for the tag
policy (:mod:`imagegraph.core.tags`):

- a version tag: ``refs/tags/vX.Y.Z`` (GitHub), ``CI_COMMIT_TAG`` (GitLab), else
  the highest version tag at HEAD;
- a pull or merge request: ``refs/pull/<N>/...`` or a ``pull_request*`` event
  (GitHub), ``CI_MERGE_REQUEST_IID`` or an external pull request (GitLab);
- a branch: ``refs/heads/<name>`` (GitHub), ``CI_COMMIT_BRANCH`` (GitLab), else
  the checked-out branch; it is the default branch when it is the one the
  platform names (the event's ``repository.default_branch``, ``CI_DEFAULT_BRANCH``).

**The base** (:func:`choose_base`): ``--since``, the CI event as its platform
defines it, or the default branch. GitHub Actions names the event (``GITHUB_EVENT_NAME``) and writes its webhook
payload to ``GITHUB_EVENT_PATH``; GitLab CI names the pipeline's source
(``CI_PIPELINE_SOURCE``) and sets ``CI_MERGE_REQUEST_*`` and ``CI_COMMIT_*``.
Each kind of run gets the base whose images CI published and whose
difference is this run's own change:

- a push: the commit the branch had before (``before``, ``CI_COMMIT_BEFORE_SHA``);
  a new branch or tag: the merge base with the default branch; the first push
  of the default branch: nothing (everything is new);
- a pull or merge request: the merge base with its target (GitHub's
  ``pull_request.base.sha``, GitLab's diff base); a merged-results pipeline or
  merge train runs on a merge commit: the target commit it was merged onto
  (``CI_MERGE_REQUEST_TARGET_BRANCH_SHA``, else ``HEAD^1``); a merge queue
  group: its parent commit (``merge_group.base_sha``);
- a run that no push started (a schedule, a manual or API run, a trigger, a
  parent pipeline, ``workflow_run``): on the default branch the previous
  commit (``HEAD^1``), elsewhere the merge base with the default branch.

The image's source address comes from here too (:func:`source_url`).
Every value read here is checked (:mod:`imagegraph.core.gitnames`) before it
can reach git: a malformed one fails the run in one line naming the variable
or event field, never a silent "fingerprints alone".
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from .changes import EMPTY_TREE, PREVIOUS_COMMIT, REMOTE_DEFAULT, BaseRequest
from .errors import InputError
from .gitnames import commit_id, ref_name, revision
from .tags import Event, Version, tag_rule
from .values import shown

__all__ = ["PREVIOUS_COMMIT", "choose_base", "event_from_env", "event_from_git", "read_event", "source_url"]

#: Where refusals say an event field came from.
EVENT = "$GITHUB_EVENT_PATH"
_FROM_CI = "the CI platform sets it: find what overrides it (the workflow's or pipeline's variables) and fix or remove that"
_FROM_EVENT = "GitHub writes that file: find the step that rewrites it"

_WORD = re.compile(r"[a-z_]*")
#: A tag that means to be a version (v1.2, 1.2.3, V1.0.0): never ignored without a word.
_VERSION_LIKE = re.compile(r"^[vV]?\d+(?:\.|$)")
#: GitHub events whose payload carries `pull_request` (base and head).
PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target", "pull_request_review", "pull_request_review_comment"})
#: GitLab's pipeline sources that are no push: CI_COMMIT_BEFORE_SHA is all zeros and says nothing about what CI built last.
GITLAB_SOURCES = {
    "schedule": "scheduled pipeline",
    "web": "pipeline run from the web",
    "api": "pipeline started through the API",
    "trigger": "triggered pipeline",
    "pipeline": "multi-project pipeline",
    "parent_pipeline": "child pipeline",
    "chat": "pipeline started from chat",
    "external": "external CI pipeline",
    "webide": "Web IDE pipeline",
}


def read_event(env: Mapping[str, str]) -> dict[str, object]:
    """The GitHub Actions event payload ($GITHUB_EVENT_PATH); {} outside GitHub Actions or without one.

    In GitHub Actions a file that cannot be read or is no JSON object is refused:
    deciding without it would be deciding on another event than this run's.
    """
    path = env.get("GITHUB_EVENT_PATH")
    if not path or env.get("GITHUB_ACTIONS") != "true":
        return {}
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError("GITHUB_EVENT_PATH", f"cannot read the event file {shown(path)} ({err.strerror}); {_FROM_CI}") from None
    except ValueError:
        raise InputError("GITHUB_EVENT_PATH", f"the event file {shown(path)} is not JSON; {_FROM_EVENT}") from None
    if not isinstance(data, dict):
        raise InputError("GITHUB_EVENT_PATH", f"the event file {shown(path)} holds no JSON object; {_FROM_EVENT}")
    return data


def choose_base(since: str | None, env: Mapping[str, str], event: Mapping[str, object], *, default_branch: str | None) -> BaseRequest:
    """Pick the base ref from the flag, the CI event, or the default branch.

    ``default_branch`` is what the repository calls it locally (e.g.
    ``origin/main``), None when it has none.
    """
    if since is not None:
        since = revision(since, "--since")
        return BaseRequest(rev=since, how=f"--since {since}", trusted=True, fetch=since, explicit=True)
    if env.get("GITHUB_ACTIONS") == "true":
        request = _github_base(env, event, default_branch)
        if request is not None:
            return request
    if env.get("GITLAB_CI") == "true":
        request = _gitlab_base(env, default_branch)
        if request is not None:
            return request
    if default_branch is None:
        # `git fetch origin HEAD` brings the remote's default branch (a single-branch clone has no origin/main);
        # without a remote the plan rests on fingerprints alone and says so, never on HEAD (an empty plan).
        return BaseRequest(rev=REMOTE_DEFAULT, how="merge base with the remote's default branch", fetch="HEAD")
    return BaseRequest(rev=default_branch, how=f"merge base with {default_branch}")


# -- the event the tags follow ------------------------------------------------------------------


def event_from_env(env: Mapping[str, str], event: Mapping[str, object], *, default_branch: str = "main") -> Event | None:
    """The event GitHub Actions or GitLab CI describes; None outside both.

    ``event`` is GitHub's event payload (:func:`read_event`); ``default_branch``
    is the name to assume when the platform names none.
    """
    if env.get("GITHUB_ACTIONS") == "true":
        return _github_event(env, event, default_branch)
    if env.get("GITLAB_CI") == "true":
        return _gitlab_event(env, default_branch)
    return None


def _github_event(env: Mapping[str, str], event: Mapping[str, object], default_branch: str) -> Event:
    # Both reach git (tag moves ask whether a commit descends from GITHUB_SHA) and the output: checked first.
    sha = commit_id(env["GITHUB_SHA"], "GITHUB_SHA", "GitHub sets it to the commit this run is for") if env.get("GITHUB_SHA") else ""
    ref = ref_name(env["GITHUB_REF"], "GITHUB_REF", "GitHub sets it to the branch, tag or pull request ref") if env.get("GITHUB_REF") else ""
    repository = _mapping(event.get("repository"))
    default = _branch(repository.get("default_branch"), f"{EVENT} repository.default_branch", _FROM_EVENT) or default_branch
    if ref.startswith("refs/tags/"):
        return Event("tag", sha, ref.removeprefix("refs/tags/"), default)
    pull = re.match(r"^refs/pull/(\d+)/", ref)
    if pull or env.get("GITHUB_EVENT_NAME", "").startswith("pull_request"):
        number = pull.group(1) if pull else _github_pr_number(event)
        return Event("pull_request", sha, "", default, int(number) if number else None)
    if ref.startswith("refs/heads/"):
        return Event("branch", sha, _branch(ref, "GITHUB_REF") or "", default)
    return Event("local", sha, "", default)


def _github_pr_number(event: Mapping[str, object]) -> str | None:
    """The pull request's number in GitHub's event payload (``pull_request.number``, else ``number``)."""
    pr = _mapping(event.get("pull_request"))
    return _number(pr.get("number"), f"{EVENT} pull_request.number", _FROM_EVENT) or _number(event.get("number"), f"{EVENT} number", _FROM_EVENT)


def _gitlab_event(env: Mapping[str, str], default_branch: str) -> Event:
    """A tag pipeline, a merge request pipeline (or an external pull request's), or a branch pipeline, as GitLab's variables say."""
    sha = commit_id(env["CI_COMMIT_SHA"], "CI_COMMIT_SHA") if env.get("CI_COMMIT_SHA") else ""
    default = _branch(env.get("CI_DEFAULT_BRANCH"), "CI_DEFAULT_BRANCH") or default_branch
    tag = ref_name(env["CI_COMMIT_TAG"], "CI_COMMIT_TAG") if env.get("CI_COMMIT_TAG") else None
    if tag is not None:
        return Event("tag", sha, tag, default)
    source = _kind(env, "CI_PIPELINE_SOURCE")
    iid = _number(env.get("CI_MERGE_REQUEST_IID"), "CI_MERGE_REQUEST_IID")
    if iid or source == "merge_request_event":
        return Event("pull_request", sha, "", default, int(iid) if iid else None)
    if source == "external_pull_request_event":
        number = _number(env.get("CI_EXTERNAL_PULL_REQUEST_IID"), "CI_EXTERNAL_PULL_REQUEST_IID")
        return Event("pull_request", sha, "", default, int(number) if number else None)
    # CI_COMMIT_BRANCH is set in branch pipelines only (a tag or merge request pipeline has none)
    branch = _branch(env.get("CI_COMMIT_BRANCH"), "CI_COMMIT_BRANCH")
    if branch:
        return Event("branch", sha, branch, default)
    return Event("local", sha, "", default)


def event_from_git(sha: str, tags_at_head: Iterable[str], branch: str | None, default_branch: str) -> Event:
    """The event a local checkout stands for: the highest version tag at HEAD wins, then the branch.

    Every other version-like tag at HEAD is named in the event's notes: a
    lower version passed over, or a tag that breaks a rule (``1.0.0``,
    ``V1.0.0``, ``v1.0.0+build.5``) and the rule it breaks.
    """
    candidates = sorted(t for t in tags_at_head if _VERSION_LIKE.match(t))
    valid = sorted((t for t in candidates if tag_rule(t) is None), key=lambda t: Version.parse(t), reverse=True)  # type: ignore[arg-type,return-value]
    refused = tuple(f"tag {t} at HEAD is not a release tag: {tag_rule(t)}" for t in candidates if tag_rule(t) is not None)
    notes: list[str] = []
    if len(valid) > 1:
        notes.append(f"several version tags at HEAD: {valid[0]} is the highest, so {', '.join(valid[1:])} "
                     f"{'is' if len(valid) == 2 else 'are'} not released")
    notes.extend(refused)
    if valid:
        return Event("tag", sha, valid[0], default_branch, notes=tuple(notes), refused=refused)
    if branch:
        return Event("branch", sha, branch, default_branch, notes=tuple(notes), refused=refused)
    return Event("local", sha, "", default_branch, notes=tuple(notes), refused=refused)


def source_url(remote: str | None, env: Mapping[str, str]) -> str | None:
    """The repository's web address for org.opencontainers.image.source: ``https://host/path``, never a secret in it.

    GitHub Actions names it (``$GITHUB_SERVER_URL/$GITHUB_REPOSITORY``), GitLab
    CI too (``$CI_PROJECT_URL``); otherwise the ``origin`` remote. Either way
    only the host and the path are kept: the userinfo (``user:token@``,
    whatever it holds, an ``@`` included), the query (``?private_token=``) and
    the fragment are dropped, from ``https://``, ``ssh://``, ``git://`` and
    scp-like ``git@host:org/repo`` remotes alike, in any case of scheme. A
    local path, another scheme, or an address that is not a plain host and
    path names no public address: None.
    """
    server, repository = env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY")
    if server and repository:
        remote = f"{re.split(r'[?#]', server, maxsplit=1)[0].rstrip('/')}/{repository}"
    elif env.get("GITLAB_CI") == "true" and env.get("CI_PROJECT_URL"):
        remote = env["CI_PROJECT_URL"]
    if not remote:
        return None
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", remote)
    if scheme:
        kind, rest = scheme.group(1).lower(), remote[scheme.end():]
    elif re.match(r"[^/]+:", remote) and not remote.startswith((".", "/")):
        kind, rest = "scp", remote.replace(":", "/", 1) if "@" not in remote else _scp_path(remote)
    else:
        return None  # a local path: no public address to name
    if kind not in ("https", "http", "ssh", "git", "git+ssh", "ssh+git", "scp"):
        return None
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    rest = rest[rest.rfind("@") + 1:]
    host, _, path = rest.partition("/")
    if kind not in ("https", "http"):
        host = host.split(":", 1)[0]  # an ssh port is not the web server's
    path = path.removesuffix("/").removesuffix(".git").strip("/")
    if not re.fullmatch(r"[A-Za-z0-9.-]+(:[0-9]+)?", host) or not path or not re.fullmatch(r"[A-Za-z0-9._~/+-]+", path):
        return None
    return f"https://{host}/{path}"


def _scp_path(remote: str) -> str:
    """``user:pass@host:org/repo`` -> ``user:pass@host/org/repo``: the scp-like path starts at the first ':' after the last '@'."""
    at = remote.rfind("@")
    head, tail = remote[:at + 1], remote[at + 1:]
    return head + tail.replace(":", "/", 1)


# -- reading values: each checked, the source named in a refusal ----------------------------


def _sha(value: object, origin: str, fix: str = _FROM_CI) -> str | None:
    """A commit id; None when absent, empty or all zeros ("no such commit")."""
    if value is None or value == "":
        return None
    sha = commit_id(value if isinstance(value, str) else json.dumps(value), origin, fix)
    return None if set(sha) == {"0"} else sha


def _branch(value: object, origin: str, fix: str = _FROM_CI) -> str | None:
    """A branch name (``refs/heads/`` dropped); None when absent or empty."""
    if value is None or value == "":
        return None
    text = ref_name(value if isinstance(value, str) else json.dumps(value), origin, fix)
    return ref_name(text.removeprefix("refs/heads/"), origin, fix)  # refs/heads/-x passes as a ref, not as a branch


def _number(value: object, origin: str, fix: str = _FROM_CI) -> str | None:
    """A pull or merge request number, as text; None when absent."""
    if value is None or value == "":
        return None
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value if isinstance(value, str) else json.dumps(value)
    if not (text.isascii() and text.isdigit()):
        raise InputError(origin, f"{shown(text)} is not a request number; {fix}")
    return text


def _kind(env: Mapping[str, str], name: str) -> str:
    """An event name or pipeline source (``pull_request``, ``merge_request_event``): a word, since it is printed."""
    value = env.get(name, "")
    if not _WORD.fullmatch(value):
        raise InputError(name, f"{shown(value)} is no event name (lowercase letters and _); {_FROM_CI}")
    return value


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def _merge_base_with(branch: str, how: str, rev: str | None = None) -> BaseRequest:
    """The merge base with ``branch`` (the remote's, unless ``rev`` names a local one)."""
    return BaseRequest(rev=rev or f"origin/{branch}", how=how, trusted=True, fetch=branch)


def _default(named: str | None, default_branch: str | None) -> tuple[str | None, str | None]:
    """The default branch's name and the rev to compare with: the CI's name (on the remote), else the local one's."""
    if named:
        return named, f"origin/{named}"
    return ((default_branch.removeprefix("origin/"), default_branch) if default_branch else (None, None))


def _previous_commit(what: str) -> BaseRequest:
    # No push says which commit CI built last; the commit before this one on the branch did get a pipeline of its own.
    return BaseRequest(rev=PREVIOUS_COMMIT, how=f"{what}: the previous commit, HEAD^1", merge_base=False, trusted=True)


# -- GitHub Actions ------------------------------------------------------------------


def _github_base(env: Mapping[str, str], event: Mapping[str, object], default_branch: str | None) -> BaseRequest | None:
    name = _kind(env, "GITHUB_EVENT_NAME")
    ref = env.get("GITHUB_REF", "")
    if ref:
        ref_name(ref, "GITHUB_REF")
        if ref.startswith("refs/heads/"):
            _branch(ref, "GITHUB_REF")
    repository = _mapping(event.get("repository"))
    default, default_rev = _default(_branch(repository.get("default_branch"), f"{EVENT} repository.default_branch", _FROM_EVENT), default_branch)
    if name in PULL_REQUEST_EVENTS:
        return _github_pull_request(env, event)
    if name == "merge_group":
        group = _mapping(event.get("merge_group"))
        sha = _sha(group.get("base_sha"), f"{EVENT} merge_group.base_sha", _FROM_EVENT)
        _sha(group.get("head_sha"), f"{EVENT} merge_group.head_sha", _FROM_EVENT)
        target = _branch(group.get("base_ref"), f"{EVENT} merge_group.base_ref", _FROM_EVENT)
        into = f"merge queue into {target}" if target else "merge queue"
        if sha:
            # The group's parent: the target branch, or the group ahead of it in the queue (whose own run builds what it changed).
            return BaseRequest(rev=sha, how=f"{into}: merge base with the group's parent {sha[:7]}", trusted=True, fetch=sha)
        return _merge_base_with(target, f"{into}: merge base with {target}") if target else None
    if name == "push":
        return _github_push(event, ref, default, default_rev)
    if not name:
        return None
    # schedule, workflow_dispatch, repository_dispatch, workflow_run, ...: no push says what CI built last.
    run = _mapping(event.get("workflow_run")) if name == "workflow_run" else {}
    branch = None
    if run:
        branch = _branch(run.get("head_branch"), f"{EVENT} workflow_run.head_branch", _FROM_EVENT)
        _sha(run.get("head_sha"), f"{EVENT} workflow_run.head_sha", _FROM_EVENT)
        pulls = run.get("pull_requests")
        first = _mapping(pulls[0]) if isinstance(pulls, list) and pulls else {}
        base = _mapping(first.get("base"))
        sha = _sha(base.get("sha"), f"{EVENT} workflow_run.pull_requests[0].base.sha", _FROM_EVENT)
        target = _branch(base.get("ref"), f"{EVENT} workflow_run.pull_requests[0].base.ref", _FROM_EVENT)
        if sha:
            return BaseRequest(rev=sha, how=f"workflow_run of a pull request: merge base with {target or sha[:7]}", trusted=True, fetch=sha)
    if branch is None and ref.startswith("refs/heads/"):
        branch = ref.removeprefix("refs/heads/")
    if branch is None and not ref.startswith("refs/tags/"):
        return None  # no branch or tag named: the local rules apply
    what = f"{name} on {branch}" if branch else f"{name} on {ref.removeprefix('refs/tags/')}"
    if branch is not None and branch == default:
        return _previous_commit(what)
    if default:
        return _merge_base_with(default, f"{what}: merge base with {default}", default_rev)
    return None


def _github_pull_request(env: Mapping[str, str], event: Mapping[str, object]) -> BaseRequest | None:
    pr = _mapping(event.get("pull_request"))
    base = _mapping(pr.get("base"))
    branch = (_branch(base.get("ref"), f"{EVENT} pull_request.base.ref", _FROM_EVENT)
              or _branch(env.get("GITHUB_BASE_REF"), "GITHUB_BASE_REF"))
    if base.get("ref"):
        _branch(env.get("GITHUB_BASE_REF"), "GITHUB_BASE_REF")
    head = _branch(env.get("GITHUB_HEAD_REF"), "GITHUB_HEAD_REF")
    sha = _sha(base.get("sha"), f"{EVENT} pull_request.base.sha", _FROM_EVENT)
    number = _github_pr_number(event)
    label = (f"pull request #{number}" if number else "pull request") + (f" from {head}" if head else "")
    if sha:
        return BaseRequest(rev=sha, how=f"{label}: merge base with {branch or sha[:7]}", trusted=True, fetch=sha)
    if branch:
        return _merge_base_with(branch, f"{label}: merge base with {branch}")
    return None


def _github_push(event: Mapping[str, object], ref: str, default: str | None, default_rev: str | None) -> BaseRequest:
    before = _sha(event.get("before"), f"{EVENT} before", _FROM_EVENT)
    _sha(event.get("after"), f"{EVENT} after", _FROM_EVENT)
    if before:
        # Not a merge base: a force push's `before` is no ancestor, and what matters is how the
        # content differs from what CI built last time.
        return BaseRequest(rev=before, how=f"previous push {before[:7]}", merge_base=False, trusted=True, fetch=before)
    if ref.startswith("refs/tags/"):
        what = f"new tag {ref.removeprefix('refs/tags/')}"
    else:
        branch = ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None
        if branch is not None and branch == default:
            return BaseRequest(rev=EMPTY_TREE, how=f"first push of {default}: everything is new", merge_base=False)
        what = f"new branch {branch}" if branch else "new branch"
    if default:
        return _merge_base_with(default, f"{what}: merge base with {default}", default_rev)
    return BaseRequest(rev=EMPTY_TREE, how=f"{what}, no default branch known: everything is new", merge_base=False)


# -- GitLab CI -------------------------------------------------------------------------


def _gitlab_base(env: Mapping[str, str], default_branch: str | None) -> BaseRequest | None:
    source = _kind(env, "CI_PIPELINE_SOURCE")
    default, default_rev = _default(_branch(env.get("CI_DEFAULT_BRANCH"), "CI_DEFAULT_BRANCH"), default_branch)
    iid = _number(env.get("CI_MERGE_REQUEST_IID"), "CI_MERGE_REQUEST_IID")
    if iid or source == "merge_request_event" or env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME") or env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA"):
        return _gitlab_merge_request(env, iid)
    if source == "external_pull_request_event":
        number = _number(env.get("CI_EXTERNAL_PULL_REQUEST_IID"), "CI_EXTERNAL_PULL_REQUEST_IID")
        target = _branch(env.get("CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_NAME"), "CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_NAME")
        sha = _sha(env.get("CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_SHA"), "CI_EXTERNAL_PULL_REQUEST_TARGET_BRANCH_SHA")
        label = f"external pull request #{number}" if number else "external pull request"
        if sha:
            return BaseRequest(rev=sha, how=f"{label}: merge base with {target or sha[:7]}", trusted=True, fetch=sha)
        if target:
            return _merge_base_with(target, f"{label}: merge base with {target}")
    before = _sha(env.get("CI_COMMIT_BEFORE_SHA"), "CI_COMMIT_BEFORE_SHA")
    tag = _branch(env.get("CI_COMMIT_TAG"), "CI_COMMIT_TAG")
    branch = _branch(env.get("CI_COMMIT_BRANCH"), "CI_COMMIT_BRANCH")
    if branch is None and tag is None:
        branch = _branch(env.get("CI_COMMIT_REF_NAME"), "CI_COMMIT_REF_NAME")
    if before:
        # as a GitHub push: the previous pipeline's commit itself (a force push's is no ancestor)
        return BaseRequest(rev=before, how=f"previous push {before[:7]}", merge_base=False, trusted=True, fetch=before)
    pushed = source in ("push", "")  # no source: a GitLab too old to say; a zero before sha is read as a push's
    if tag is not None:
        what = f"{'new tag' if pushed else GITLAB_SOURCES.get(source, f'{source} pipeline')} {tag}"
    elif pushed:
        # A push whose before sha is all zeros created the branch.
        if branch is not None and branch == default:
            return BaseRequest(rev=EMPTY_TREE, how=f"first push of {default}: everything is new", merge_base=False)
        what = f"new branch {branch}" if branch else "new branch"
    else:
        what = f"{GITLAB_SOURCES.get(source, f'{source} pipeline')} on {branch}" if branch else GITLAB_SOURCES.get(source, f"{source} pipeline")
        if branch is not None and branch == default:
            return _previous_commit(what)
    if default:
        return _merge_base_with(default, f"{what}: merge base with {default}", default_rev)
    return None


def _gitlab_merge_request(env: Mapping[str, str], iid: str | None) -> BaseRequest | None:
    """A merge request pipeline: detached (the source branch), merged results or a merge train (a merge commit)."""
    label = f"merge request !{iid}" if iid else "merge request"
    kind = env.get("CI_MERGE_REQUEST_EVENT_TYPE", "")
    target = _branch(env.get("CI_MERGE_REQUEST_TARGET_BRANCH_NAME"), "CI_MERGE_REQUEST_TARGET_BRANCH_NAME")
    _branch(env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME"), "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME")
    _sha(env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA"), "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA")
    target_sha = _sha(env.get("CI_MERGE_REQUEST_TARGET_BRANCH_SHA"), "CI_MERGE_REQUEST_TARGET_BRANCH_SHA")
    diff_base = _sha(env.get("CI_MERGE_REQUEST_DIFF_BASE_SHA"), "CI_MERGE_REQUEST_DIFF_BASE_SHA")
    if kind in ("merged_result", "merge_train"):
        # HEAD is a merge commit onto the target: compared with the diff base, everything the target gained since
        # the request forked would count as its change.
        train = kind == "merge_train"
        what = f"{label}, {'merge train' if train else 'merged results'}"
        onto = f"{target} at " if target and not train else ""
        # A train car is merged onto the car ahead of it, whose pipeline may still be running: its images are looked up.
        if target_sha:
            return BaseRequest(rev=target_sha, how=f"{what}: {onto}{target_sha[:7]}, the commit it was merged onto",
                               trusted=not train, fetch=target_sha)
        return BaseRequest(rev=PREVIOUS_COMMIT, how=f"{what}: the commit it was merged onto (HEAD^1)", merge_base=False, trusted=not train)
    if diff_base:
        return BaseRequest(rev=diff_base, how=f"{label}: merge base with {target or diff_base[:7]}", trusted=True, fetch=diff_base)
    if target:
        return _merge_base_with(target, f"{label}: merge base with {target}")
    return None
