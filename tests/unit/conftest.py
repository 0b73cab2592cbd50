"""Fixtures of the pure unit tests."""

from __future__ import annotations

import pytest

from imagegraph.core.config import load_config
from imagegraph.core.fingerprint import fingerprint_images
from tests.conftest import FAMILY_FILES
from tests.unit.test_fingerprint import MemorySources


@pytest.fixture
def world(family):
    """The sample family (tests/conftest.py), fingerprinted from memory: (config, fingerprints, fingerprint refs)."""
    config = load_config(family)
    fingerprints = fingerprint_images(config, MemorySources(FAMILY_FILES))
    refs = {name: f"{config.repository(name)}:{fp.tag}" for name, fp in fingerprints.items()}
    return config, fingerprints, refs
