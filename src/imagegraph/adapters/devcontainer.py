"""The devcontainer: which image it opens, and what its post-create step does.

``.devcontainer/devcontainer.json`` names a fixed local tag as its image and
resolves it on the host first (``invoke dev.image``): the plan's image for
this checkout, prebuilt from the registry when it is there, else the local
one, else built. Inside the container, ``invoke dev.post-create`` installs
the checkout, points git at the repository's hooks, gives the user the
engine's socket and checks the tools.

Pure decisions here: :func:`image_source` reads a plan entry,
:func:`post_create_steps` and :func:`probes` turn what post-create observed
(a :class:`Container`) into commands, :func:`read_probe` judges a probe's
result. The tasks in ``tasks/dev.py`` observe, run and print.
"""

from __future__ import annotations

import enum
import grp
import json
import os
import pwd
import shutil
import stat
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import ConfigError
from ..core.plan import Decision, ImagePlan
from ..presentation.tables import table
from .runner import Command, CommandResult, Runner

__all__ = [
    "CONFIG_PATH",
    "HOOKS_PATH",
    "IMAGE",
    "MARKER_VARIABLE",
    "Container",
    "ImageSource",
    "Probe",
    "Step",
    "ToolCheck",
    "describe_image",
    "find_cli",
    "format_tools",
    "image_source",
    "in_devcontainer",
    "lint_command",
    "observe_container",
    "post_create_steps",
    "probes",
    "read_image_tag",
    "read_probe",
    "staged_python",
    "tool_problem",
    "up_command",
]

#: The devcontainer definition, relative to the repository root.
CONFIG_PATH = ".devcontainer/devcontainer.json"
#: The images.yaml image the devcontainer opens.
IMAGE = "devcontainer"
#: The repository's git hooks (core.hooksPath), relative to the repository root.
HOOKS_PATH = ".githooks"
#: devcontainer.json's containerEnv sets it to 1: post-create refuses to change a host by mistake.
MARKER_VARIABLE = "IMAGEGRAPH_DEVCONTAINER"
#: A group of this name is made in the container when none has the engine socket's gid.
SOCKET_GROUP = "docker-host"


class ImageSource(enum.Enum):
    """Where the devcontainer's image came from."""

    REGISTRY = "prebuilt"
    LOCAL = "local"
    BUILT = "built"


def image_source(entry: ImagePlan) -> ImageSource:
    """Prebuilt when the registry has this fingerprint, local when only the engine has it, else built."""
    if entry.decision is Decision.BUILD:
        return ImageSource.BUILT
    if entry.push_existing:
        return ImageSource.LOCAL
    return ImageSource.REGISTRY


def describe_image(source: ImageSource, ref: str, tag: str) -> str:
    """The one line `invoke dev.image` prints: which image the devcontainer opens, and where it came from."""
    where = {
        ImageSource.REGISTRY: "from the registry",
        ImageSource.LOCAL: "from this engine, now pushed to the registry too",
        ImageSource.BUILT: "no image had its fingerprint",
    }[source]
    return f"devcontainer: {source.value} image {ref} ({where}) → {tag}"


def read_image_tag(root: Path) -> str:
    """The local tag devcontainer.json opens (its ``image``); the file may have whole-line ``//`` comments."""
    path = root / CONFIG_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(CONFIG_PATH, f"cannot read it ({err.strerror}); it defines the devcontainer") from None
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("//")]
    try:
        config = json.loads("\n".join(lines))
    except json.JSONDecodeError as err:
        raise ConfigError(CONFIG_PATH, f"not valid JSON (line {err.lineno}: {err.msg}); comments must be whole lines starting with //") from None
    image = config.get("image") if isinstance(config, dict) else None
    if not isinstance(image, str) or not image.strip():
        raise ConfigError(CONFIG_PATH, 'has no "image": name the local tag `invoke dev.image` gives the image, e.g. "imagegraph/devcontainer:workspace"')
    return image.strip()


@dataclass(frozen=True)
class Container:
    """What post-create sees inside the container."""

    #: The checkout, bind-mounted from the host.
    root: Path
    user: str
    uid: int
    #: Who owns the checkout: the host user, through the bind mount (root on some hosts, 1000 on most laptops).
    owner_uid: int
    #: safe.directory entries of the system and global git config.
    safe_directories: tuple[str, ...] = ()
    #: The checkout's core.hooksPath, None when unset.
    hooks_path: str | None = None
    #: Where the docker client looks for the engine (DOCKER_HOST, else the default socket).
    docker_host: str = "unix:///var/run/docker.sock"
    #: The engine's unix socket when it is there, its group id, and whether this user can use it now.
    socket: str | None = None
    socket_gid: int | None = None
    socket_usable: bool = True
    #: The container's group that has ``socket_gid``, if any.
    socket_group: str | None = None
    python: str = "python"
    home: Path = field(default_factory=Path.home)

    @property
    def foreign_checkout(self) -> bool:
        """The checkout belongs to another user than this one (git calls that dubious ownership)."""
        return self.owner_uid != self.uid

    def as_root(self, *argv: str) -> tuple[str, ...]:
        return argv if self.uid == 0 else ("sudo", "--non-interactive", *argv)

    def as_owner(self, *argv: str) -> tuple[str, ...]:
        """Writes into the checkout are made as its owner, so no file there ends up belonging to the container's user."""
        return argv if not self.foreign_checkout else ("sudo", "--non-interactive", f"--user=#{self.owner_uid}", "--", *argv)

    @property
    def needs_socket_group(self) -> bool:
        return self.socket is not None and self.socket_gid is not None and not self.socket_usable


@dataclass(frozen=True)
class Step:
    """One thing post-create does: what it is in words, and the command."""

    what: str
    command: Command


def post_create_steps(container: Container) -> tuple[Step, ...]:
    """What post-create runs, in order; a step whose work is already done is left out (the install always runs)."""
    root = str(container.root)
    steps: list[Step] = []
    if container.foreign_checkout and not {root, "*"} & set(container.safe_directories):
        steps.append(Step(f"git: trust {root}, which belongs to uid {container.owner_uid} (safe.directory, system config)",
                          Command.of(*container.as_root("git", "config", "--system", "--add", "safe.directory", root))))
    # The image holds every dependency: --no-deps, and no build isolation (which would fetch setuptools).
    steps.append(Step(f"pip: editable install of {root} (--no-deps)",
                      Command.of(container.python, "-m", "pip", "install", "--quiet", *(("--user",) if container.uid != 0 else ()),
                                 "--no-deps", "--no-build-isolation", "--editable", root, cwd=container.home)))
    if container.hooks_path != HOOKS_PATH:
        who = f" (as uid {container.owner_uid}, its owner)" if container.foreign_checkout else ""
        steps.append(Step(f"git: core.hooksPath = {HOOKS_PATH}{who}",
                          Command.of(*container.as_owner("git", "-C", root, "config", "core.hooksPath", HOOKS_PATH))))
    if container.needs_socket_group:
        group = container.socket_group or SOCKET_GROUP
        if container.socket_group is None:
            steps.append(Step(f"engine: group {group} for {container.socket}'s gid {container.socket_gid}",
                              Command.of(*container.as_root("groupadd", "--gid", str(container.socket_gid), group))))
        steps.append(Step(f"engine: {container.user} joins group {group} (gid {container.socket_gid}) to use {container.socket}",
                          Command.of(*container.as_root("usermod", "--append", "--groups", group, container.user))))
    return tuple(steps)


@dataclass(frozen=True)
class Probe:
    """One tool check: a command, what its output must show, and the fix when it fails."""

    name: str
    command: Command
    fix: str
    expect: Callable[[str], bool] | None = None


def probes(container: Container) -> tuple[Probe, ...]:
    """The tools check. Python imports run from the home folder, so only the editable install can make them work."""
    root = str(container.root)
    home = container.home
    python = "python"  # the one on PATH, as a user types it
    rebuild = "the image lacks it: rebuild it on the host (`invoke dev.image`) and recreate the container"
    reinstall = "the editable install is missing: run `invoke dev.post-create` again"

    def imports(module: str, show: str) -> Command:
        return Command.of(python, "-c", f"import {module}; print({show})", cwd=home)

    def in_checkout(output: str) -> bool:
        return output.strip().startswith(f"{root.rstrip('/')}/src/")

    docker = ("docker", "version", "--format", "engine {{.Server.Version}}")
    if container.needs_socket_group:
        # The group was just added: this process lacks it, a new login (and every later shell) has it.
        docker = ("sudo", "--non-interactive", f"--user={container.user}", "--", *docker)
    return (
        Probe("python", imports("sys", "sys.version.split()[0]"), "python is missing from PATH: the image is broken, rebuild it"),
        Probe("torch", imports("torch", "torch.__version__"), rebuild),
        Probe("imagegraph", imports("imagegraph", "imagegraph.__file__"), reinstall, expect=in_checkout),
        Probe("scorer", imports("scorer", "scorer.__file__"), reinstall, expect=in_checkout),
        Probe("invoke", Command.of("invoke", "--version"), rebuild),
        Probe("nox", Command.of("nox", "--version"), rebuild),
        Probe("ruff", Command.of("ruff", "--version"), rebuild),
        Probe("pytest", Command.of(python, "-m", "pytest", "--version", cwd=home), rebuild),
        Probe("git", Command.of("git", "-C", root, "status", "--short", "--branch"),
              f"git refuses the checkout: run `git config --global --add safe.directory {root}`"),
        Probe("hooks", Command.of("git", "-C", root, "config", "core.hooksPath"),
              f"core.hooksPath is not {HOOKS_PATH}: run `invoke dev.post-create` again", expect=lambda out: out.strip() == HOOKS_PATH),
        Probe("docker", Command.of(*docker),
              f"the engine is not reachable at {container.docker_host}: start it on the host (`invoke engine.up`); "
              "devcontainer.json mounts its socket at /var/run/docker.sock"),
        Probe("buildx", Command.of("docker", "buildx", "version"),
              f"the docker client has no buildx plugin, which `invoke build` needs: {rebuild}"),
    )


@dataclass(frozen=True)
class ToolCheck:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def read_probe(probe: Probe, result: CommandResult) -> ToolCheck:
    """Judge a probe: its exit status and expectation; the detail is the first output line (the last one on failure)."""
    lines = [line.strip() for line in result.output.splitlines() if line.strip()]
    ok = result.returncode == 0 and (probe.expect is None or probe.expect(result.output))
    if ok:
        detail = lines[0] if lines else "ok"
    elif result.returncode == 0:
        detail = f"unexpected: {lines[0] if lines else 'no output'}"
    else:
        detail = lines[-1] if lines else f"exited {result.returncode}"
    return ToolCheck(probe.name, ok, detail if len(detail) <= 100 else detail[:97] + "...", "" if ok else probe.fix)


def format_tools(checks: Sequence[ToolCheck]) -> str:
    return table(("tool", "status", "detail"), [(c.name, "ok" if c.ok else "FAILED", c.detail) for c in checks])


def tool_problem(checks: Sequence[ToolCheck]) -> str | None:
    """One line for the first tool that does not work: what failed, and the fix."""
    for check in checks:
        if not check.ok:
            return f"{check.name} does not work ({check.detail}); {check.fix}"
    return None


def staged_python(staged: Sequence[str]) -> tuple[str, ...]:
    """The Python files among the staged ones (:meth:`imagegraph.adapters.repo.Repository.staged`)."""
    return tuple(path for path in staged if path.endswith((".py", ".pyi")))


def lint_command(python: str, paths: Sequence[str], root: Path) -> Command:
    """ruff on the given files; --force-exclude keeps ruff's own excludes for files named explicitly."""
    return Command.of(python, "-m", "ruff", "check", "--force-exclude", "--", *paths, cwd=root)


def up_command(cli: str, root: Path, *, rebuild: bool = False) -> Command:
    """`devcontainer up` for this checkout, as an editor would run it."""
    return Command.of(cli, "up", "--workspace-folder", str(root), *(("--remove-existing-container",) if rebuild else ()))


def find_cli(environ: Mapping[str, str] | None = None) -> str | None:
    """The Dev Containers CLI: on PATH, else where `nox -s devcontainer` installs it."""
    env = os.environ if environ is None else environ
    on_path = shutil.which("devcontainer", path=env.get("PATH"))
    if on_path:
        return on_path
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    installed = cache / "imagegraph" / "devcontainers-cli" / "node_modules" / ".bin" / "devcontainer"
    return str(installed) if installed.exists() else None


def in_devcontainer(environ: Mapping[str, str] | None = None) -> bool:
    """Whether this process runs in the devcontainer: devcontainer.json's containerEnv says so."""
    return (os.environ if environ is None else environ).get(MARKER_VARIABLE) == "1"


def observe_container(root: Path, runner: Runner, environ: Mapping[str, str] | None = None) -> Container:
    """Look at the container post-create runs in: user, checkout owner, git settings, the engine's socket."""
    env = os.environ if environ is None else environ
    uid = os.getuid()

    def git(*args: str) -> tuple[str, ...]:
        result = runner.run(Command.of("git", *args, cwd=Path.home()), check=False)
        return tuple(line.strip() for line in result.output.splitlines() if line.strip()) if result.returncode == 0 else ()

    # -c safe.directory lets this read the checkout's own config before git trusts the checkout (git honours it on the command line).
    hooks = git("-c", f"safe.directory={root}", "-C", str(root), "config", "--get", "core.hooksPath")
    host = env.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    socket = host.removeprefix("unix://") if host.startswith("unix://") else None
    socket_gid = socket_group = None
    usable = True
    if socket is not None:
        try:
            info = os.stat(socket)
        except OSError:
            socket = None
        else:
            if stat.S_ISSOCK(info.st_mode):
                socket_gid = info.st_gid
                usable = os.access(socket, os.R_OK | os.W_OK)
                try:
                    socket_group = grp.getgrgid(socket_gid).gr_name
                except KeyError:
                    socket_group = None
            else:
                socket = None
    return Container(
        root=root,
        user=pwd.getpwuid(uid).pw_name,
        uid=uid,
        owner_uid=root.stat().st_uid,
        safe_directories=git("config", "--get-all", "safe.directory"),
        hooks_path=hooks[0] if hooks else None,
        docker_host=host,
        socket=socket,
        socket_gid=socket_gid,
        socket_usable=usable,
        socket_group=socket_group,
        python=sys.executable if Path(sys.executable).name.startswith("python") else "python",
        home=Path.home(),
    )
