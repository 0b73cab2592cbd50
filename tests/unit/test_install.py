"""Which engine packages a machine gets, and from where: decided from /etc/os-release alone."""

from __future__ import annotations

import pytest

from imagegraph.core.errors import EngineError
from imagegraph_provision.install import (
    MIN_ENGINE_MAJOR,
    SUPPORT_PACKAGES,
    AptSource,
    Distribution,
    EnginePackages,
    engine_packages,
    engine_too_old,
    parse_docker_version,
    parse_os_release,
    version_major,
)

# /etc/os-release as each distribution ships it.
DEBIAN_12 = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
SUPPORT_URL="https://www.debian.org/support"
BUG_REPORT_URL="https://bugs.debian.org/"
"""

DEBIAN_13 = """\
PRETTY_NAME="Debian GNU/Linux 13 (trixie)"
NAME="Debian GNU/Linux"
VERSION_ID="13"
VERSION="13 (trixie)"
VERSION_CODENAME=trixie
DEBIAN_VERSION_FULL=13.1
ID=debian
HOME_URL="https://www.debian.org/"
"""

# testing and unstable carry no VERSION_ID
DEBIAN_SID = """\
PRETTY_NAME="Debian GNU/Linux forky/sid"
NAME="Debian GNU/Linux"
VERSION_CODENAME=forky
ID=debian
HOME_URL="https://www.debian.org/"
"""

DEBIAN_11 = """\
PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"
NAME="Debian GNU/Linux"
VERSION_ID="11"
VERSION="11 (bullseye)"
VERSION_CODENAME=bullseye
ID=debian
"""

UBUNTU_2204 = """\
PRETTY_NAME="Ubuntu 22.04.4 LTS"
NAME="Ubuntu"
VERSION_ID="22.04"
VERSION="22.04.4 LTS (Jammy Jellyfish)"
VERSION_CODENAME=jammy
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=jammy
"""

UBUNTU_2404 = """\
PRETTY_NAME="Ubuntu 24.04.1 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.1 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
UBUNTU_CODENAME=noble
LOGO=ubuntu-logo
"""

FEDORA_40 = """\
NAME="Fedora Linux"
VERSION="40 (Container Image)"
ID=fedora
VERSION_ID=40
VERSION_CODENAME=""
PLATFORM_ID="platform:f40"
PRETTY_NAME="Fedora Linux 40 (Container Image)"
"""

ENGINE = ("docker.io", "docker-cli", "containerd", "docker-buildx")
SUPPORT = ("docker-registry", "qemu-user-static", "binfmt-support", "debootstrap")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DEBIAN_12, Distribution("debian", "12", "bookworm")),
        (DEBIAN_13, Distribution("debian", "13", "trixie")),
        (DEBIAN_SID, Distribution("debian", "", "forky")),
        (UBUNTU_2204, Distribution("ubuntu", "22.04", "jammy", ("debian",))),
        (UBUNTU_2404, Distribution("ubuntu", "24.04", "noble", ("debian",))),
        (FEDORA_40, Distribution("fedora", "40", "")),
        ("", Distribution("")),
        ("ID='LinuxMint'\nID_LIKE=\"ubuntu debian\"\n", Distribution("linuxmint", "", "", ("ubuntu", "debian"))),
    ],
    ids=["debian 12", "debian 13", "sid", "ubuntu 22.04", "ubuntu 24.04", "fedora", "empty", "mint"],
)
def test_parse_os_release(text, expected):
    assert parse_os_release(text) == expected


@pytest.mark.parametrize(
    ("distro", "family", "described"),
    [
        (Distribution("debian", "12", "bookworm"), "debian", "Debian 12 (bookworm)"),
        (Distribution("linuxmint", "21.3", "virginia", ("ubuntu", "debian")), "ubuntu", "Linuxmint 21.3 (virginia)"),
        (Distribution("fedora", "40"), None, "Fedora 40"),
        (Distribution(""), None, "unknown"),
    ],
)
def test_distribution_family_and_description(distro, family, described):
    assert distro.family == family and distro.describe() == described


def test_debian_12_takes_the_engine_from_trixie_through_a_pin():
    packages = engine_packages(parse_os_release(DEBIAN_12))
    assert packages == EnginePackages(ENGINE, SUPPORT, AptSource("trixie", "http://deb.debian.org/debian", "main", ENGINE))
    assert packages.apt_arguments() == (*(f"{p}/trixie" for p in ENGINE), *SUPPORT)
    assert packages.describe() == (
        "docker.io docker-cli containerd docker-buildx docker-registry qemu-user-static binfmt-support debootstrap "
        "(docker.io, docker-cli, containerd, docker-buildx from Debian trixie, pinned)")


@pytest.mark.parametrize(
    ("text", "engine"),
    [
        (DEBIAN_13, ENGINE),
        (DEBIAN_SID, ENGINE),
        ("ID=debian\nVERSION_CODENAME=trixie\n", ENGINE),
        ("ID=debian\nVERSION_CODENAME=sid\n", ENGINE),
        ('ID=debian\nVERSION_ID="14"\nVERSION_CODENAME=forky\n', ENGINE),
        (UBUNTU_2404, ("docker.io", "docker-buildx")),
        ('ID=ubuntu\nVERSION_ID="24.10"\nVERSION_CODENAME=oracular\n', ("docker.io", "docker-buildx")),
        ('ID=ubuntu\nVERSION_ID="26.04"\n', ("docker.io", "docker-buildx")),
    ],
    ids=["debian 13", "debian sid", "trixie testing", "sid", "debian 14", "ubuntu 24.04", "ubuntu 24.10", "ubuntu 26.04"],
)
def test_recent_distributions_take_the_engine_from_themselves(text, engine):
    packages = engine_packages(parse_os_release(text))
    assert packages == EnginePackages(engine, SUPPORT, None)
    assert packages.apt_arguments() == (*engine, *SUPPORT)
    assert "pinned" not in packages.describe()


def test_debian_12_is_recognised_by_codename_or_version_alone():
    assert engine_packages(Distribution("debian", "", "bookworm")).source is not None
    assert engine_packages(Distribution("debian", "12.7", "")).source is not None


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (UBUNTU_2204, "Ubuntu 22.04 (jammy)"),
        ('ID=ubuntu\nVERSION_ID="23.10"\nVERSION_CODENAME=mantic\n', "Ubuntu 23.10 (mantic)"),
        (DEBIAN_11, "Debian 11 (bullseye)"),
        (FEDORA_40, "Fedora 40"),
        ("", "unknown"),
        # a derivative is not guessed at: its own releases say nothing of Debian's or Ubuntu's
        ("ID=linuxmint\nID_LIKE=\"ubuntu debian\"\nVERSION_ID=\"22\"\n", "Linuxmint 22"),
    ],
    ids=["ubuntu 22.04", "ubuntu 23.10", "debian 11", "fedora", "no os-release", "mint"],
)
def test_other_distributions_are_an_error_naming_the_fix(text, named):
    with pytest.raises(EngineError, match=r"^[^\n]+$") as caught:
        engine_packages(parse_os_release(text))
    message = str(caught.value)
    assert message.startswith(f"{named} has no Docker 23+ with buildx that imagegraph knows how to install;")
    assert "https://docs.docker.com/engine/install/" in message and "invoke engine.up" in message


def test_the_apt_source_names_its_files_and_pins_only_its_packages():
    source = AptSource("trixie", "http://deb.debian.org/debian", "main", ("docker.io", "docker-buildx"))
    assert source.list_name == "imagegraph-trixie.list"
    # apt reads preferences.d files with no extension or .pref only
    assert source.preferences_name == "imagegraph-trixie"
    assert source.list_text().splitlines()[-1] == "deb http://deb.debian.org/debian trixie main"
    stanzas = source.preferences_text().split("\n\n")
    assert stanzas[0].splitlines()[1:] == ["Package: *", "Pin: release n=trixie", "Pin-Priority: 100"]
    assert stanzas[1].splitlines() == ["Package: docker.io docker-buildx", "Pin: release n=trixie", "Pin-Priority: 500"]


def test_support_packages_alone():
    only = EnginePackages(engine=())
    assert only.support == SUPPORT_PACKAGES == SUPPORT
    assert only.apt_arguments() == SUPPORT and only.describe() == " ".join(SUPPORT)


@pytest.mark.parametrize(
    ("output", "version"),
    [
        ("Docker version 26.1.5+dfsg1, build a72d7cd\n", "26.1.5+dfsg1"),
        ("Docker version 20.10.24+dfsg1, build 297e128", "20.10.24+dfsg1"),
        ("Docker version 27.3.1, build ce12230", "27.3.1"),
        ("", None),
        ("dockerd: command not found", None),
        ("Docker version", None),
    ],
)
def test_parse_docker_version(output, version):
    assert parse_docker_version(output) == version


@pytest.mark.parametrize(
    ("version", "major", "too_old"),
    [
        ("20.10.24+dfsg1", 20, True),
        ("22.06.0-beta.0", 22, True),
        ("23.0.0", 23, False),
        ("26.1.5+dfsg1", 26, False),
        ("v27.3.1", 27, False),
        (None, None, False),
        ("", None, False),
        ("unknown", None, False),
    ],
)
def test_engine_too_old(version, major, too_old):
    assert MIN_ENGINE_MAJOR == 23
    assert version_major(version) == major
    assert engine_too_old(version) is too_old
