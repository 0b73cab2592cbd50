from __future__ import annotations

from pathlib import Path

from imagegraph.adapters.runner import Command, CommandResult
from imagegraph.adapters.wheelhouse import Wheelhouse, pip_platform_tags


class DownloadingRunner:
    """Stands in for `pip download`: drops the named wheels into --dest and records the call."""

    def __init__(self, wheels: dict[str, list[str]]) -> None:
        self.wheels = wheels
        self.calls: list[tuple[str, ...]] = []

    def run(self, command: Command, **_) -> CommandResult:
        argv = command.argv
        self.calls.append(argv)
        dest = Path(argv[argv.index("--dest") + 1])
        platform = argv[argv.index("--platform") + 1]
        for name in self.wheels["aarch64" if platform.endswith("aarch64") else "x86_64"]:
            (dest / name).write_text("wheel")
        return CommandResult(0, "")


def test_platform_tags_cover_every_glibc_up_to_bookworm():
    tags = pip_platform_tags("linux/arm64")
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags and tags[-1] == "manylinux2014_aarch64"
    assert pip_platform_tags("linux/amd64")[0] == "manylinux_2_36_x86_64"


def test_download_command_is_binary_only_for_the_image_python(tmp_path):
    house = Wheelhouse(tmp_path, DownloadingRunner({}), python="3.11", pip=("pip",))
    argv = house.download_command("requirements/r.txt", "linux/amd64", tmp_path / "d").argv
    assert argv[:2] == ("pip", "download") and "--only-binary=:all:" in argv
    assert argv[argv.index("--abi") + 1] == "cp311" and argv[argv.index("--python-version") + 1] == "3.11"
    assert argv[-2:] == ("--requirement", str(tmp_path / "requirements/r.txt"))


def test_ensure_fetches_once_per_platform_and_keeps_only_current_wheels(tmp_path):
    (tmp_path / "requirements").mkdir()
    req = tmp_path / "requirements/requirements.txt"
    req.write_text("a==1\n")
    runner = DownloadingRunner({"x86_64": ["a-1-py3-none-any.whl", "b-1-cp311-x86_64.whl"], "aarch64": ["a-1-py3-none-any.whl", "b-1-cp311-aarch64.whl"]})
    house = Wheelhouse(tmp_path, runner, cache_dir=tmp_path / "cache")
    folder = house.folder("requirements/requirements.txt")
    (folder).mkdir(parents=True)
    (folder / "stale-0-py3-none-any.whl").write_text("old")

    house.ensure(["requirements/requirements.txt"], ["linux/amd64", "linux/arm64"])
    assert sorted(p.name for p in folder.iterdir()) == ["a-1-py3-none-any.whl", "b-1-cp311-aarch64.whl", "b-1-cp311-x86_64.whl"]
    assert len(runner.calls) == 2

    # A comment edit normalises away: the cache answers, pip is not run again.
    req.write_text("# pinned\na==1\n")
    house.ensure(["requirements/requirements.txt"], ["linux/amd64", "linux/arm64"])
    assert len(runner.calls) == 2
    assert (folder / "a-1-py3-none-any.whl").stat().st_nlink >= 2  # hard-linked from the cache, not copied
