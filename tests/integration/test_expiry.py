"""Git-aware expiry against real git repositories (a bare origin, branches pushed, deleted, squash-merged) and a
stand-in of GitHub's and GitLab's pull request endpoints (tests/standins/forge_pulls.py)."""

from __future__ import annotations

import hashlib
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from imagegraph.adapters.forge_state import branch_commits, expiry_facts, find_forge
from imagegraph.adapters.repo import Repository
from imagegraph.core.expiry import judge_expiry
from imagegraph.core.retention import Manifest, RetentionPolicy, plan_retention
from tests.standins.forge_pulls import Forges, forge_pulls

WEEK = timedelta(days=7)
NOW = datetime.now(UTC)
AUTHOR = ("-c", "user.name=t", "-c", "user.email=t@example.invalid")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *AUTHOR, *args], check=True, capture_output=True, text=True).stdout.strip()


def commit(root: Path, name: str) -> str:
    (root / name).write_text(name)
    git(root, "add", "-A")
    git(root, "commit", "-qm", name)
    return git(root, "rev-parse", "HEAD")


@pytest.fixture
def repos(tmp_path):
    """A bare origin and a full clone of it, with a live branch, a deleted one and a squash-merged one; and a commit of a
    branch that another clone pushed after this one last fetched."""
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(origin), str(work)], check=True, capture_output=True)
    ids = {"main1": commit(work, "main1")}
    git(work, "push", "-q", "origin", "HEAD:refs/heads/main")
    for branch in ("live", "deleted", "squashed"):
        git(work, "checkout", "-q", "-b", branch, "main")
        ids[branch] = commit(work, branch)
        if branch == "squashed":
            ids["squashed2"] = commit(work, "squashed2")
        git(work, "push", "-q", "origin", branch)
    git(work, "checkout", "-q", "main")
    git(work, "merge", "-q", "--squash", "squashed")
    git(work, "commit", "-qm", "squash of squashed")
    ids["squash"] = git(work, "rev-parse", "HEAD")
    git(work, "push", "-q", "origin", "main")
    other = tmp_path / "other"
    subprocess.run(["git", "clone", "-q", str(origin), str(other)], check=True, capture_output=True)
    git(other, "push", "-q", "origin", "--delete", "deleted", "squashed")  # from elsewhere: work keeps origin/deleted
    git(other, "checkout", "-q", "-b", "later")
    ids["later"] = commit(other, "later")
    git(other, "push", "-q", "origin", "later")
    return origin, work, ids


def image(repository: str, key: str, *tags: str, made: datetime) -> Manifest:
    fingerprint = hashlib.sha256(key.encode()).hexdigest()
    return Manifest(repository, f"sha256:{fingerprint}", (fingerprint[:16], *tags), made.strftime("%Y-%m-%dT%H:%M:%SZ"))


def test_commits_of_deleted_and_squash_merged_branches_are_on_no_branch_and_live_ones_are(repos):
    _, work, ids = repos
    short = {name: commit_id[:7] for name, commit_id in ids.items()}
    placed, note = branch_commits(Repository(work), [*short.values(), "fffffff"])
    assert {name: placed.get(s) for name, s in short.items()} == {
        "main1": True, "live": True, "squash": True, "later": True,  # later: fetched first, the clone lacked it
        "deleted": False, "squashed": False, "squashed2": False,
    }
    assert "fffffff" not in placed and note == "note: commit fffffff not placed on a branch of origin (the clone does not have them)"
    assert git(work, "rev-parse", "refs/remotes/origin/deleted") == ids["deleted"]  # the stale tracking branch kept nothing


def test_a_shallow_clone_is_deepened_to_the_oldest_image_and_says_what_it_still_cannot_place(repos, tmp_path):
    origin, _, ids = repos
    shallow = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--no-single-branch", f"file://{origin}", str(shallow)], check=True,
                   capture_output=True)
    assert git(shallow, "rev-parse", "--is-shallow-repository") == "true"
    asked = [ids["main1"][:7], ids["deleted"][:7]]
    placed, note = branch_commits(Repository(shallow), asked)  # no image time: nothing to deepen to
    assert placed == {} and note == f"note: commit {', '.join(sorted(asked))} not placed on a branch of origin (the clone is shallow)"
    placed, note = branch_commits(Repository(shallow), asked, since=NOW - timedelta(days=1))
    assert placed == {ids["main1"][:7]: True}  # deepened to the day before the oldest image: main's older commit is on main
    assert note == f"note: commit {ids['deleted'][:7]} not placed on a branch of origin (the clone does not have them)"


def test_github_pull_requests_expire_after_their_age_open_ones_stay_and_deleted_branches_go(repos):
    _, work, ids = repos
    old, young = NOW - timedelta(days=30), NOW - timedelta(days=2)
    manifests = [
        image("ns/app", "open", "pr-1", made=old),
        image("ns/app", "merged", "pr-2", made=old),
        image("ns/base", "merged-base", "pr-2", made=old),  # the same request in another repository: asked once
        image("ns/app", "closed-lately", "pr-3", made=old),
        image("ns/app", "unknown", "pr-4", made=old),
        image("ns/app", "deleted", f"sha-{ids['deleted'][:7]}", made=old),
        image("ns/app", "squashed", f"sha-{ids['squashed2'][:7]}", made=young),
        image("ns/app", "live", f"sha-{ids['live'][:7]}", made=old),
        image("ns/app", "edge", "edge", made=NOW),
    ]
    with forge_pulls() as forges:
        forges.github_pull("o/r", 1, "open")
        forges.github_pull("o/r", 2, "closed", closed_at=stamp(NOW - timedelta(days=10)), merged=True)
        forges.github_pull("o/r", 3, "closed", closed_at=stamp(NOW - timedelta(days=1)))
        said: list[str] = []
        environ = {"GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": forges.url, "GITHUB_TOKEN": forges.token}
        facts = expiry_facts(Repository(work), manifests, age=WEEK, environ=environ, say=said.append)
        asked = sorted(seen.target for seen in forges.seen)
    assert asked == [f"/repos/o/r/pulls/{n}" for n in (1, 2, 3, 4)]
    assert said == [f"note: GitHub's API at {forges.url} knows no pull request #4: their images count from when they were made"]
    expiry = judge_expiry(manifests, facts, NOW)
    verdicts = {v.manifest.digest: v for v in plan_retention(manifests, RetentionPolicy(keep=1), expired=expiry.expired,
                                                             held=expiry.held)}
    keep = {key: verdicts[image("ns/app", key, made=old).digest].keep
            for key in ("open", "merged", "closed-lately", "unknown", "deleted", "squashed", "live", "edge")}
    assert keep == {"open": True, "merged": False, "closed-lately": True, "unknown": False, "deleted": False,
                    "squashed": True, "live": True, "edge": True}  # live: the keep count rules (the 1 most recent)
    assert verdicts[image("ns/app", "open", made=old).digest].reason == "pull request #1 is open"
    assert verdicts[image("ns/app", "merged", made=old).digest].reason.startswith("pull request #2 merged ")
    assert verdicts[image("ns/app", "deleted", made=old).digest].reason.startswith(
        f"no remote branch contains commit {ids['deleted'][:7]} any more (branch deleted)")
    assert "expires" in verdicts[image("ns/app", "squashed", made=old).digest].reason


def test_gitlab_merge_requests_are_asked_by_project_path_with_a_personal_token(repos):
    _, work, _ = repos
    manifests = [image("g/app", str(n), f"pr-{n}", made=NOW - timedelta(days=30)) for n in (5, 6, 7, 8)]
    with forge_pulls() as forges:
        forges.gitlab_merge_request("group%2Fsub%2Fproject", 5, "opened")
        forges.gitlab_merge_request("group%2Fsub%2Fproject", 6, "merged", closed_at=stamp(NOW - timedelta(days=9)))
        forges.gitlab_merge_request("group%2Fsub%2Fproject", 7, "closed", closed_at=stamp(NOW - timedelta(days=2)))
        forges.gitlab_merge_request("group%2Fsub%2Fproject", 8, "locked")
        environ = {"CI_PROJECT_PATH": "group/sub/project", "CI_API_V4_URL": forges.url, "GITLAB_TOKEN": forges.token}
        facts = expiry_facts(Repository(work), manifests, age=WEEK, environ=environ)
    assert facts.notes == ()
    assert {n: (s.open, s.merged) for n, s in facts.pull_requests.items()} == {5: (True, False), 6: (False, True), 7: (False, False),
                                                                               8: (True, False)}
    expiry = judge_expiry(manifests, facts, NOW)
    assert [key[1] for key in expiry.expired] == [manifests[1].digest]
    assert {key[1] for key in expiry.held} == {manifests[0].digest, manifests[2].digest, manifests[3].digest}


@pytest.mark.parametrize(("environ", "said"), [
    ({"GITHUB_REPOSITORY": "o/r"}, "note: pull requests not asked about (no GITHUB_TOKEN to ask GitHub with): images of pull "
                                   "requests expire 7d after they were made"),
    ({"CI_PROJECT_PATH": "g/p", "CI_JOB_TOKEN": "job"},
     "note: 1 of 1 pull requests not asked about (GitLab's API at URL answered 401 (401 Unauthorized) to GET "
     "/projects/g%2Fp/merge_requests/9) (GitLab's job token cannot read merge requests: set GITLAB_TOKEN, scope read_api): "
     "their images count from when they were made"),
    ({"GITHUB_REPOSITORY": "o/r", "GITHUB_TOKEN": "wrong"},
     "note: 1 of 1 pull requests not asked about (GitHub's API at URL answered 401 (Bad credentials) to GET /repos/o/r/pulls/9): "
     "their images count from when they were made"),
])
def test_a_forge_that_cannot_be_asked_falls_back_to_age_in_one_line(repos, environ, said):
    _, work, _ = repos
    manifests = [image("ns/app", "old", "pr-9", made=NOW - timedelta(days=8)), image("ns/app", "new", "pr-9", "pr-10", made=NOW)]
    manifests = manifests[:1]
    with forge_pulls() as forges:
        lines: list[str] = []
        full = {**environ, "GITHUB_API_URL": forges.url, "CI_API_V4_URL": forges.url}
        facts = expiry_facts(Repository(work), manifests, age=WEEK, environ=full, say=lines.append)
        sent = len(forges.seen)
    assert lines == [said.replace("URL", forges.url)]
    assert sent == (0 if "GITHUB_TOKEN" not in environ and "CI_JOB_TOKEN" not in environ else 1)
    assert list(judge_expiry(manifests, facts, NOW).expired) == [("ns/app", manifests[0].digest)]


def test_requests_go_side_by_side_one_per_number(repos):
    _, work, _ = repos
    numbers = range(1, 9)
    manifests = [image(f"ns/{repo}", f"{repo}{n}", f"pr-{n}", made=NOW) for n in numbers for repo in ("a", "b")]
    with forge_pulls(Forges(delay=0.3)) as forges:
        for n in numbers:
            forges.github_pull("o/r", n, "open")
        started = time.monotonic()
        facts = expiry_facts(Repository(work), manifests, age=WEEK,
                             environ={"GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": forges.url, "GITHUB_TOKEN": forges.token})
        took = time.monotonic() - started
    assert len(forges.seen) == 8 and sorted(facts.pull_requests) == list(numbers)
    assert took < 0.3 * 8 * 0.6, took  # the first alone, then four at a time: about 0.3 + 2 * 0.3


def test_the_repository_is_read_from_the_origin_remote_as_data():
    forge = find_forge({"GITHUB_TOKEN": "t"}, "https://user:secret@github.com/owner/repo.git")
    assert not isinstance(forge, str) and forge.path == "/repos/owner/repo/pulls/" and forge.base == "https://api.github.com"
    forge = find_forge({"GITLAB_TOKEN": "t"}, "git@gitlab.com:group/sub/project.git")
    assert not isinstance(forge, str) and forge.path == "/projects/group%2Fsub%2Fproject/merge_requests/"
    assert find_forge({"GITHUB_TOKEN": "t"}, "--upload-pack=touch /tmp/x") == \
        "no GITHUB_REPOSITORY or CI_PROJECT_PATH, and no origin remote on a forge's host"
    assert find_forge({"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "../x/y"}, None) == "GITHUB_REPOSITORY is not owner/repository"
    assert find_forge({"GITHUB_TOKEN": "t", "GITHUB_REPOSITORY": "o/r?x=1"}, None) == "GITHUB_REPOSITORY is not owner/repository"
    assert "neither github.com nor gitlab.com" in find_forge({}, "https://git.example.com/o/r.git")


def stamp(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_invoke_cleanup_deletes_the_images_of_merged_requests_and_deleted_branches_and_keeps_open_ones(tmp_path, private_registry):
    """`invoke cleanup` end to end: a real git repository with its origin, the stand-in forge, a real registry."""
    from tests.conftest import FAMILY, FAMILY_FILES, write_tree
    from tests.integration.conftest import run_invoke
    from tests.integration.oci_seed import Seeder

    origin = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    root = tmp_path / "project"
    config = FAMILY.replace("127.0.0.1:5000", private_registry.address) + "retention:\n  pull_requests: 7d\n"
    write_tree(root, {"images.yaml": config, **FAMILY_FILES, "tasks.py": "from imagegraph.tasks import namespace  # noqa: F401\n"})
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", str(origin))
    main = commit(root, "main.txt")
    git(root, "push", "-q", "origin", "main")
    git(root, "checkout", "-q", "-b", "gone")
    gone = commit(root, "gone.txt")
    git(root, "push", "-q", "origin", "gone")
    git(root, "checkout", "-q", "main")
    git(root, "push", "-q", "origin", "--delete", "gone")

    seed = Seeder(private_registry.address)
    old = stamp(NOW - timedelta(days=30))
    fingerprints = {}

    def push(repository: str, key: str, *tags: str, parent: str = "") -> None:
        fingerprints[key] = hashlib.sha256(key.encode()).hexdigest()[:16]
        labels = {"imagegraph.parent": parent} if parent else {}
        seed.image(repository, fingerprints[key], text=key, created=old, labels=labels)
        for tag in tags:
            seed.image(repository, tag, text=key, created=old, labels=labels)  # the same content: the same digest

    push("test/base", "base-pr2", "pr-2")  # a merged request's base that the kept edge was built on
    push("test/app", "edge", "edge", f"sha-{main[:7]}", parent=f"{private_registry.address}/test/base:{fingerprints['base-pr2']}")
    push("test/app", "open", "pr-1")
    push("test/app", "merged", "pr-2")
    push("test/app", "lately", "pr-3")
    push("test/app", "gone", f"sha-{gone[:7]}")
    with forge_pulls() as forges:
        forges.github_pull("o/r", 1, "open")
        forges.github_pull("o/r", 2, "closed", closed_at=stamp(NOW - timedelta(days=10)), merged=True)
        forges.github_pull("o/r", 3, "closed", closed_at=stamp(NOW - timedelta(days=1)))
        env = {"GITHUB_REPOSITORY": "o/r", "GITHUB_API_URL": forges.url, "GITHUB_TOKEN": forges.token}
        dry = run_invoke(root, "cleanup", "--keep", "1", "--show-kept", **env)
        assert dry.returncode == 0, dry.stdout + dry.stderr
        assert "pull request #1 is open" in dry.stdout and "pull request #2 merged" in dry.stdout, dry.stdout
        assert f"no remote branch contains commit {gone[:7]}" in dry.stdout and "base of kept app:" in dry.stdout
        done = run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **env)
        assert done.returncode == 0, done.stdout + done.stderr
        tags = {name: seed.tags(name) - {"imagegraph-retention"} for name in ("test/app", "test/base")}
        assert tags["test/app"] == {fingerprints["edge"], "edge", f"sha-{main[:7]}", fingerprints["open"], "pr-1",
                                    fingerprints["lately"], "pr-3"}
        assert tags["test/base"] == {fingerprints["base-pr2"], "pr-2"}
        again = run_invoke(root, "cleanup", "--keep", "1", "--yes", "--grace", "0", **env)
        assert again.returncode == 0 and seed.tags("test/app") - {"imagegraph-retention"} == tags["test/app"], again.stdout
