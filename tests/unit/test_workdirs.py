"""The working-folder primitives on their own, and the stores built on them: a link is never followed, only refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagegraph.adapters.inputcache import InputCache
from imagegraph.adapters.workdirs import LinkRefused, open_own, own_folder, remove_own
from imagegraph.presentation.reports.store import ReportStore


@pytest.fixture
def sentinel(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "old").mkdir(parents=True)
    (outside / "keep.txt").write_text("keep me\n")
    (outside / "old" / "keep.txt").write_text("keep me too\n")
    return outside


def untouched(outside: Path) -> bool:
    return sorted(str(p.relative_to(outside)) for p in outside.rglob("*")) == ["keep.txt", "old", "old/keep.txt"] \
        and (outside / "keep.txt").read_text() == "keep me\n"


def test_own_folder_makes_every_part_and_refuses_a_link_at_any_of_them(tmp_path, sentinel):
    root = tmp_path / "repo"
    made = own_folder(root / ".imagegraph" / "contexts" / "app", root)
    assert made.is_dir() and not made.is_symlink()
    (root / ".imagegraph" / "logs").symlink_to(sentinel)
    with pytest.raises(LinkRefused, match=r"/\.imagegraph/logs' is a symbolic link \(to '.*outside'\) .* remove the link \(rm '.*/logs'\)"):
        own_folder(root / ".imagegraph" / "logs" / "deeper", root)
    with pytest.raises(LinkRefused, match="logs' is a symbolic link"):
        own_folder(root / ".imagegraph" / "logs", root, make=False)
    assert untouched(sentinel)


def test_remove_own_removes_a_folder_but_never_what_a_link_names(tmp_path, sentinel):
    root = tmp_path / "repo"
    folder = own_folder(root / ".imagegraph" / "contexts" / "app" / "old", root)
    (folder / "inner").symlink_to(sentinel)  # a link inside the tree goes as a link
    remove_own(folder, root)
    assert not folder.exists() and untouched(sentinel)
    (root / ".imagegraph" / "contexts" / "app" / "gone").symlink_to(sentinel / "old")
    with pytest.raises(LinkRefused, match="gone' is a symbolic link"):
        remove_own(root / ".imagegraph" / "contexts" / "app" / "gone", root)
    assert untouched(sentinel)


def test_open_own_never_writes_through_a_link_at_the_file(tmp_path, sentinel):
    root = tmp_path / "repo"
    own_folder(root / ".imagegraph" / "logs", root)
    (root / ".imagegraph" / "logs" / "app.log").symlink_to(sentinel / "keep.txt")
    for mode in ("w", "a", "x"):
        with pytest.raises(LinkRefused, match=r"app\.log' is a symbolic link"):
            open_own(root / ".imagegraph" / "logs" / "app.log", root, mode)
    assert untouched(sentinel)


def test_the_plan_cache_refuses_a_linked_folder_instead_of_writing_through_it(tmp_path, sentinel):
    root = tmp_path / "repo"
    (root / ".imagegraph").mkdir(parents=True)
    (root / ".imagegraph" / "cache").symlink_to(sentinel)
    cache = InputCache(root / ".imagegraph" / "cache" / "inputs", within=root)
    with pytest.raises(LinkRefused, match="cache' is a symbolic link"):
        cache.remember("k", lambda: 1, encode=lambda v: {"v": v}, decode=lambda e: e["v"])
    assert untouched(sentinel)


def test_the_report_store_neither_reads_nor_writes_through_a_link(tmp_path, sentinel):
    root = tmp_path / "repo"
    (root / ".imagegraph").mkdir(parents=True)
    (root / ".imagegraph" / "reports").symlink_to(sentinel)
    store = ReportStore(root / ".imagegraph" / "reports", within=root)
    with pytest.raises(LinkRefused, match="reports' is a symbolic link"):
        store.load()
    os.unlink(root / ".imagegraph" / "reports")
    (root / ".imagegraph" / "reports").mkdir()
    (root / ".imagegraph" / "reports" / "20990101T000000-abcdef1.json").symlink_to(sentinel / "keep.txt")
    with pytest.raises(LinkRefused, match=r"abcdef1\.json' is a symbolic link"):
        store.load()
    assert untouched(sentinel)
