"""Family tag moves against an in-memory registry and history: all or nothing, put back on failure, branch tags only forward."""

from __future__ import annotations

import json

import pytest

from imagegraph.adapters.tagmove import REVISION_LABEL, move_family_tags, relation, verify_tags
from imagegraph.core.errors import RegistryError
from imagegraph.core.tags import BRANCH, COMMIT, VERSION, Move, Outcome, PlannedTag, Relation, TagRequest

FAMILY = ("base", "ci", "app")
OLD = {name: f"sha256:old-{name}" for name in FAMILY}
NEW = {name: f"sha256:new-{name}" for name in FAMILY}
MAIN = ["c1", "c2", "c3", "c4"]  # c1 <- c2 <- c3 <- c4 on the default branch


class FakeHistory:
    """A default branch (a list, oldest first) and commits on other lines; ``fetch`` brings in ``upstream`` commits."""

    def __init__(self, line=MAIN, elsewhere=("x9",), upstream=()):
        self.line, self.elsewhere, self.upstream = list(line), set(elsewhere), list(upstream)
        self.fetches = 0

    def resolve(self, rev):
        return rev if rev in self.line or rev in self.elsewhere else None

    def is_ancestor(self, ancestor, descendant):
        if ancestor in self.line and descendant in self.line:
            return self.line.index(ancestor) <= self.line.index(descendant)
        return ancestor == descendant

    def commits(self):
        return frozenset(self.line) | self.elsewhere

    def fetch(self, remote, *args):
        self.fetches += 1
        self.line += self.upstream
        self.upstream = []
        return None


class FakeRegistry:
    """Tags per repository, images with a revision label; ``fail`` makes chosen writes or reads answer 500."""

    def __init__(self, revisions):
        self.repos = {name: {} for name in FAMILY}
        self.revisions = dict(revisions)  # digest -> the commit it was built at
        self.writes: list[tuple[str, str, str]] = []
        self.fail_write: dict[int, str] = {}  # n-th write (1-based) -> "before" (nothing written) or "after" (written, then 500)
        self.fail_read: set[tuple[str, str]] = set()

    def put(self, name, tag, digest):
        self.repos[name][tag] = digest

    def manifest_digest(self, name, tag):
        if (name, tag) in self.fail_read:
            raise RegistryError(f"registry fake answered 500 for {name}:{tag}")
        if tag in self.revisions:
            return tag
        return self.repos[name].get(tag)

    def copy_tag(self, name, source, target):
        digest = self.manifest_digest(name, source)
        self.writes.append((name, target, digest))
        mode = self.fail_write.get(len(self.writes))
        if mode == "after":
            self.repos[name][target] = digest
        if mode:
            raise RegistryError(f"registry fake answered 500 for tagging {name}:{target}")
        self.repos[name][target] = digest
        return digest

    def tags(self, name):
        return tuple(self.repos[name])

    def inspect(self, name, reference):
        digest = self.manifest_digest(name, reference)
        return ("application/vnd.oci.image.manifest.v1+json", digest,
                {"config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": f"config-of-{digest}"}})

    def blob(self, name, digest):
        return json.dumps({"config": {"Labels": {REVISION_LABEL: self.revisions[digest.removeprefix("config-of-")]}}}).encode()


def family_registry(old_commit="c2", new_commit="c3"):
    """edge on the old family (built at ``old_commit``), the new family pushed under its fingerprint tags."""
    registry = FakeRegistry({**dict.fromkeys(OLD.values(), old_commit), **dict.fromkeys(NEW.values(), new_commit)})
    for name in FAMILY:
        registry.put(name, "edge", OLD[name])
        registry.put(name, f"fp-{name}", NEW[name])
    return registry


def planned(tag: str, kind: str | None = None) -> PlannedTag:
    """A moving tag as the policy plans it: edge a branch tag, sha-<c> a commit's (both forward only), unless ``kind`` says otherwise."""
    return PlannedTag(tag, kind or (COMMIT if tag.startswith("sha-") else BRANCH), True, "test")


def requests(tags=("edge", "sha-c3"), kind=None):
    return [TagRequest(name, name, f"fp-{name}", tuple(planned(tag, kind) for tag in tags), NEW[name]) for name in FAMILY]


def move(registry, commit="c3", history=None, tags=("edge", "sha-c3"), kind=None, **kw):
    return move_family_tags(registry, requests(tags, kind), rerun="`invoke build`", commit=commit, history=history or FakeHistory(), **kw)


def edges(registry):
    return {name: registry.repos[name].get("edge") for name in FAMILY}


def test_the_family_moves_existing_tags_first_and_new_ones_last():
    registry = family_registry()
    result = move(registry)
    assert result.outcome is Outcome.MOVED
    assert result.line == "tags: moved edge, sha-c3 on base, ci, app"
    assert [target for _, target, _ in registry.writes] == ["edge"] * 3 + ["sha-c3"] * 3
    assert edges(registry) == NEW
    assert result.tagged == dict.fromkeys(FAMILY, ("edge", "sha-c3"))


def test_a_500_on_the_third_copy_puts_back_the_two_that_moved():
    registry = family_registry()
    registry.fail_write = {3: "before"}
    result = move(registry)
    assert result.outcome is Outcome.ROLLED_BACK and not result.ok
    assert result.line == ("tags: rolled back (registry fake answered 500 for tagging app:edge): base:edge, ci:edge name their previous "
                           "digest again; rerun `invoke build` to move them")
    assert edges(registry) == OLD
    assert "sha-c3" not in registry.repos["base"]  # the new tags were never created
    assert result.tagged == {}


def test_a_write_the_registry_stored_before_answering_500_is_put_back_too():
    registry = family_registry()
    registry.fail_write = {3: "after"}
    result = move(registry)
    assert result.outcome is Outcome.ROLLED_BACK
    assert "base:edge, ci:edge, app:edge name their previous digest again" in result.line
    assert edges(registry) == OLD


def test_a_failed_look_moves_nothing():
    registry = family_registry()
    registry.fail_read = {("app", "edge")}
    result = move(registry)
    assert result.outcome is Outcome.NONE_MOVED
    assert result.line == ("tags: none moved (registry fake answered 500 for app:edge); the family's tags are as they were; "
                           "rerun `invoke build`")
    assert registry.writes == []


def test_a_missing_source_moves_nothing():
    registry = family_registry()
    del registry.repos["ci"]["fp-ci"]
    result = move(registry)
    assert result.outcome is Outcome.NONE_MOVED and "ci:fp-ci is not in the registry" in result.line
    assert registry.writes == []


def test_when_putting_back_fails_too_the_line_says_which_moved():
    registry = family_registry()
    registry.fail_write = {3: "before", 4: "before"}  # the copy of app:edge, then the first restore (ci:edge)
    result = move(registry)
    assert result.outcome is Outcome.PARTIAL
    assert result.line.startswith("tags: base:edge, ci:edge moved, app:edge not (registry fake answered 500 for tagging app:edge; "
                                  "putting them back failed too: registry fake answered 500 for tagging ci:edge)")
    assert result.line.endswith("rerun `invoke build` to finish the move")


def test_new_tags_created_before_a_failure_stay_and_are_named():
    registry = family_registry()
    registry.fail_write = {5: "before"}  # the three edges moved, base:sha-c3 created, ci:sha-c3 fails
    result = move(registry)
    assert result.outcome is Outcome.ROLLED_BACK
    assert edges(registry) == OLD
    assert "base:sha-c3 is new and stays on this run's image (a registry removes a tag only with its image)" in result.line
    assert registry.repos["base"]["sha-c3"] == NEW["base"] and result.tagged == {"base": ("sha-c3",)}


def test_a_tag_someone_else_moved_meanwhile_is_not_put_back():
    registry = family_registry()
    registry.fail_write = {3: "before"}
    original = registry.copy_tag

    def copy_then_race(name, source, target):
        digest = original(name, source, target)
        if len(registry.writes) == 2:
            registry.repos["base"]["edge"] = "sha256:someone-else"
        return digest

    registry.copy_tag = copy_then_race
    result = move(registry)
    assert registry.repos["base"]["edge"] == "sha256:someone-else"
    assert "ci:edge names its previous digest again" in result.line


def test_edge_moved_by_a_newer_run_stays_for_the_whole_family():
    # B (c4, on top of c3) finished first; this run is of c3
    registry = family_registry()
    for name in FAMILY:
        registry.revisions[f"sha256:b-{name}"] = "c4"
        registry.put(name, "edge", f"sha256:b-{name}")
    registry.revisions["sha256:b-base"] = "c1"  # B reused an older base: only app and ci are B's own
    notes: list[str] = []
    result = move(registry, say=notes.append)
    assert result.outcome is Outcome.MOVED
    assert notes == ["edge stays: a newer run moved it (app:edge's image was built at c4, a descendant of this build's c3)"]
    assert result.line == "tags: moved sha-c3 on base, ci, app; edge stays where it is (see above)"
    assert edges(registry) == {name: f"sha256:b-{name}" for name in FAMILY}
    assert "edge" not in " ".join(t for tags in result.tagged.values() for t in tags)


def test_a_sha_tag_of_a_newer_commit_on_the_image_holds_edge_back_when_the_labels_cannot_tell():
    # B's images were reused from a pull request: built at a merge commit no clone of main has
    registry = family_registry(old_commit="x-pr-merge")
    for name in FAMILY:
        registry.put(name, "sha-c4", OLD[name])
    result = move(registry)
    assert "edge stays: a newer run moved it (app:edge's image carries app:sha-c4, tagged for c4, a descendant of this build's c3)" in result.notes
    assert edges(registry) == OLD


def test_a_tag_of_a_kind_that_is_not_forward_only_moves_whatever_the_witnesses_say():
    """A release's version tags (X.Y, latest) are not the build's branch tags: the plan's kind, not the name, decides."""
    registry = family_registry(old_commit="c4")  # a newer run's images: edge would stay
    history = FakeHistory()
    result = move(registry, history=history, tags=("edge",), kind=VERSION)
    assert result.outcome is Outcome.MOVED and edges(registry) == NEW and result.notes == ()
    assert history.fetches == 0  # no witness is read for it


def test_a_newer_run_this_clone_did_not_know_is_found_after_a_fetch():
    registry = family_registry(old_commit="c4")  # B (c4) was pushed after this clone was made
    history = FakeHistory(line=MAIN[:3], upstream=["c4"])
    result = move(registry, history=history)
    assert history.fetches == 1
    assert "edge stays: a newer run moved it (app:edge's image was built at c4, a descendant of this build's c3)" in result.notes
    assert edges(registry) == OLD


def test_an_image_reused_from_another_line_moves_on_the_sha_tag_of_the_run_that_placed_it():
    registry = family_registry(old_commit="x-pr-merge")
    for name in FAMILY:
        registry.put(name, "sha-c2", OLD[name])
    result = move(registry)
    assert result.outcome is Outcome.MOVED and edges(registry) == NEW


def test_edge_on_rewritten_history_moves():
    registry = family_registry(old_commit="x9")  # known, but on no line that leads here: a force push
    assert move(registry).outcome is Outcome.MOVED and edges(registry) == NEW


def test_no_known_witness_holds_edge_and_says_how_to_fix_it():
    registry = family_registry(old_commit="x-pr-merge")
    history = FakeHistory()
    result = move(registry, history=history)
    assert history.fetches == 1
    assert result.notes == ("edge stays: nothing shows that moving app:edge is forward (app:edge's image was built at x-pr-me), a commit "
                            "this clone does not have; fetch the branch's history (git fetch origin) and rerun",)
    assert edges(registry) == OLD and registry.repos["app"]["sha-c3"] == NEW["app"]


def test_nothing_to_move_when_every_tag_is_already_there():
    registry = family_registry()
    move(registry)
    registry.writes.clear()
    result = move(registry)
    assert result.outcome is Outcome.UNCHANGED and registry.writes == []
    assert result.line == "tags: nothing to move: every tag already names this family's images"
    assert result.tagged == dict.fromkeys(FAMILY, ("edge", "sha-c3"))


def test_a_fingerprint_tag_that_names_another_digest_is_left_and_said():
    registry = family_registry()
    registry.revisions["sha256:rebuilt-app"] = "c3"
    registry.put("app", "fp-app", "sha256:rebuilt-app")
    result = move(registry)
    assert registry.repos["app"]["fp-app"] == "sha256:rebuilt-app" == registry.repos["app"]["edge"]
    assert any(note.startswith("app:fp-app names sha256:rebuilt-app… now, not the sha256:new-app… this run pushed") for note in result.notes)


@pytest.mark.parametrize(("theirs", "ours", "expected"), [
    ("c3", "c3", Relation.SAME), ("c2", "c3", Relation.OLDER), ("c4", "c3", Relation.NEWER),
    ("x9", "c3", Relation.UNRELATED), ("nowhere", "c3", Relation.UNKNOWN),
])
def test_relation(theirs, ours, expected):
    assert relation(FakeHistory(), theirs, ours) is expected


def test_verify_tags_names_the_first_tag_that_does_not_hold():
    registry = family_registry()
    moved = [Move(name, name, "edge", OLD[name], None) for name in FAMILY]
    assert verify_tags(registry, moved) is None
    registry.put("ci", "edge", "sha256:elsewhere")
    del registry.repos["app"]["edge"]
    assert verify_tags(registry, moved) == "ci:edge names sha256:elsewhere… now, not sha256:old-ci… (another run or a cleanup changed it meanwhile)"
    assert verify_tags(registry, moved[2:]) == "app:edge is gone, not sha256:old-app… (another run or a cleanup changed it meanwhile)"
