"""Names and ids that reach git's command line from outside: checked before git sees them.

git reads an argument that starts with ``-`` as an option wherever it can
(``git fetch origin --upload-pack=<command>`` runs the command), and a
refspec with a ``:`` writes a ref. So every value from a flag, a CI variable
or a CI event file is one of these before it goes near git:

- a commit id: 40 (SHA-1) or 64 (SHA-256) hexadecimal digits, all of them;
- a ref name by ``git check-ref-format``'s rules (a branch ``feature/x``, a
  full ``refs/heads/main``), which also excludes a leading ``-``;
- for ``--since``, a revision (``v1.2.0``, ``HEAD~3``): anything printable
  that does not start with ``-``, and git is told where its options end.

A value that is none of these is refused in one line naming where it came
from, the value shown escaped (``shown``): never passed on, never printed raw.
The adapters place such values after ``--end-of-options`` as well.
"""

from __future__ import annotations

import re

from .errors import InputError
from .values import shown

__all__ = ["ZERO_SHA", "commit_id", "is_commit_id", "is_ref_name", "ref_name", "revision"]

#: What GitHub and GitLab send for "no such commit" (a branch's first push, a scheduled pipeline).
ZERO_SHA = "0" * 40

_HEX_ID = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
#: check-ref-format's rules 3, 4, 5, 8 and 10: "..", blanks and control characters, "~^:?*[\", "@{".
_BAD_IN_REF = re.compile(r"\.\.|[\x00-\x20\x7f~^:?*\[\\]|@\{")


def is_commit_id(text: str) -> bool:
    """Whether ``text`` is a whole commit id (abbreviations are revisions, not ids)."""
    return _HEX_ID.fullmatch(text) is not None


def is_ref_name(text: str) -> bool:
    """Whether ``text`` is a ref name by ``git check-ref-format --allow-onelevel``, and does not start with ``-``.

    git itself refuses a branch that starts with ``-`` (``check-ref-format --branch``);
    here that holds for every name, since a name is passed where git parses options.
    """
    if not text or text == "@" or text.startswith(("-", "/")) or text.endswith(("/", ".")):
        return False
    if _BAD_IN_REF.search(text) or not text.isprintable():
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in text.split("/"))


def _refuse(origin: str, value: str, what: str, fix: str) -> InputError:
    option = value.startswith("-")
    why = f"starts with '-', which git would read as an option, not as {what}" if option else f"is not {what}"
    return InputError(origin, f"{shown(value)} {why}; {fix}")


def commit_id(value: str, origin: str, fix: str = "give the whole commit id") -> str:
    """``value`` as a commit id (lowercase), or an :class:`InputError` naming ``origin``."""
    if not is_commit_id(value):
        raise _refuse(origin, value, "a commit id (40 or 64 hexadecimal digits)", fix)
    return value.lower()


def ref_name(value: str, origin: str, fix: str = "give a branch or tag name") -> str:
    """``value`` as a ref name (``main``, ``release/1.x``, ``refs/heads/main``), or an :class:`InputError` naming ``origin``."""
    if not is_ref_name(value):
        raise _refuse(origin, value, "a ref name git accepts (git check-ref-format)", fix)
    return value


def revision(value: str, origin: str) -> str:
    """A revision a user names (``v1.2.0``, ``main``, ``HEAD~3``, a commit id); never one git could read as an option."""
    fix = "name a branch, tag or commit (see `git log --oneline`)"
    if not value:
        raise InputError(origin, f"is empty; {fix}, or leave it out for the default base")
    if value.startswith("-"):
        raise _refuse(origin, value, "a revision", fix)
    if not value.isprintable() or value != value.strip():
        raise InputError(origin, f"{shown(value)} contains control characters or surrounding blanks; {fix}")
    return value
