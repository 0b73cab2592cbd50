"""Provisioning: make a machine's container engine usable for imagegraph (`invoke engine.*`).

It installs Docker and buildx (as root on Debian/Ubuntu), starts dockerd and a local registry, registers
QEMU emulation, seeds an offline ``python:3.11-slim`` into the registry and, when asked, creates a
docker-container builder. That is this repository's task, not a build's: it lives beside the library so that
a monorepo that installs imagegraph gets no apt-driving provisioner inside its build library. It may import
the library (its values, errors, runner, lock, and the builder choice of ``imagegraph.adapters.engine``);
the library never imports it, and lists `engine.*` among its tasks only where this package is importable
(tests/unit/test_layout.py holds both rules).

Every stage observes facts (:mod:`.observe` into :mod:`.facts`), decides without I/O (:mod:`.decide`,
:mod:`.seed`) and acts (:mod:`.steps`, :mod:`.seed_build`); :mod:`.setup` composes them and
:mod:`.tasks` wires them to Invoke.
"""
