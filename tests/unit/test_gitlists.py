"""git's listings read one way, against output captured from a real repository (tests/unit/data/git/*.z).

The repository's names: a newline, a tab, quotes, a backslash, a byte that
is not UTF-8, a leading dash, a leading blank and `a -> b`; one rename, one
link, one mode change, untracked and deleted files, and attributes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagegraph.adapters import gitlists

DATA = Path(__file__).parent / "data" / "git"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def test_status_entries_keep_every_name_exactly():
    assert list(gitlists.status_entries(data("status.z"))) == [
        (" M", " lead"), ("M ", "a -> b"), (" D", "back\\slash"), ("D ", "plain.txt"), ("A ", "ren\udcffamed"), ("??", "new\ttab")]


def test_status_with_renames_lists_the_origin_as_a_deletion():
    assert list(gitlists.status_entries(data("status-renames.z")))[3:5] == [("R ", "ren\udcffamed"), ("D ", "plain.txt")]


def test_index_entries():
    found = dict((path, oid) for oid, path in gitlists.INDEX_ENTRY.findall(gitlists.decoded(data("ls-files.z"))))
    assert {"moved\nname", "-dash", "quo\"te", "bad\udcffbyte", " lead", "a -> b", "link"} <= set(found)
    assert found["quo\"te"].startswith("100755 ") and found["link"].startswith("120000 ")


def test_tree_entries():
    entries = {path: (mode, kind) for mode, kind, _, path in gitlists.tree_entries(data("ls-tree.z"))}
    assert entries["moved\nname"] == ("100644", "blob") and entries["link"] == ("120000", "blob")
    assert "nl\nname" not in entries and os.fsencode("bad\udcffbyte") == b"bad\xffbyte" and "bad\udcffbyte" in entries


def test_raw_diff_entries_pair_a_rename_with_its_old_path():
    assert list(gitlists.raw_diff(data("diff-tree.z"))) == [
        ("M", None, "-dash"), ("A", None, "link"), ("R", "nl\nname", "moved\nname"), ("M", None, "quo\"te")]


def test_attributes_leave_out_what_is_unspecified():
    found = gitlists.attributes(data("check-attr.z"))
    assert found["plain.txt"] == {"ident": "set", "text": "set", "eol": "crlf"}
    assert found["-dash"] == {"filter": "lfs"} and "a -> b" not in found
    assert gitlists.converting({**found, "bin": {"text": "unset", "diff": "unset"}}) == {"plain.txt": "text=set", "-dash": "filter=lfs"}


def test_a_git_lfs_pointer_is_told_from_content():
    pointer = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 9\n"
    assert gitlists.is_lfs_pointer(pointer, len(pointer))
    assert not gitlists.is_lfs_pointer(pointer, 5000) and not gitlists.is_lfs_pointer(b"version 2\n", 10)


COMMANDS = [gitlists.status(":(top)"), gitlists.index(":(top)"), gitlists.tree("-x"), gitlists.diff_commits("-a", "-b"),
            gitlists.staged(), gitlists.check_attr()]  # (check-attr reads its paths from standard input)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_every_listing_is_nul_separated_and_ends_its_options_before_any_operand(command):
    assert "-z" in command
    operands = [arg for arg in command[1:] if (not arg.startswith("-") or arg in ("-x", "-a", "-b")) and command[0] != "check-attr"]
    if operands:
        end = max(command.index(mark) for mark in ("--", "--end-of-options") if mark in command)
        assert all(command.index(arg) > end for arg in operands), command
