"""Files are hashed and copied a chunk at a time: memory stays flat whatever an input weighs."""

from __future__ import annotations

import subprocess
import tracemalloc

import pytest

from imagegraph.adapters.trees import CHUNK_BYTES, TEXT_LIMIT_BYTES, blob_id, file_blob_id, read_small
from imagegraph.core.errors import InputError
from imagegraph.core.fingerprint import Fingerprint, large_inputs


def test_a_file_larger_than_a_chunk_gets_gits_own_blob_id(tmp_path):
    data = bytes(range(256)) * (2 * CHUNK_BYTES // 256) + b"tail"
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    copy = tmp_path / "copy.bin"
    git_says = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    assert file_blob_id(path) == blob_id(data) == git_says
    assert file_blob_id(path, copy_to=copy) == git_says and copy.read_bytes() == data


def test_hashing_a_large_file_holds_about_one_chunk_in_memory(tmp_path):
    path = tmp_path / "sparse.bin"
    with path.open("wb") as out:
        out.truncate(40 * CHUNK_BYTES)  # sparse: no disk used
    tracemalloc.start()
    try:
        file_blob_id(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * CHUNK_BYTES, f"{peak} bytes at peak for a {40 * CHUNK_BYTES}-byte file"


def test_a_file_read_whole_as_text_is_refused_when_far_too_large():
    assert read_small("requirements.txt", 10, lambda: b"torch\n") == b"torch\n"
    with pytest.raises(InputError) as refused:
        read_small("requirements.txt", TEXT_LIMIT_BYTES + 1, lambda: pytest.fail("read all the same"))
    assert str(refused.value) == ("requirements.txt: is 17 MB, too large to be a requirements or ignore file (read whole, as text); "
                                  "name the right file in images.yaml")


def test_each_large_input_is_named_once_with_the_images_that_take_it():
    fingerprints = {name: Fingerprint(name, "0" * 64, files) for name, files in {
        "base": (("data/model.bin", "x"), ("Dockerfile", "y")),
        "app": (("data/model.bin", "x"), ("src/app.py", "z")),
    }.items()}
    sizes = {"data/model.bin": 2_147_483_648, "Dockerfile": 100, "src/app.py": 99_999_999}
    (big,) = large_inputs(fingerprints, sizes.__getitem__)
    assert str(big) == ("data/model.bin is 2.1 GB, an input of base, app: every build copies it into the context (and hashes it while "
                        "it is uncommitted); if no image needs it, leave it out of inputs: in images.yaml or list it in the .dockerignore")
    assert [b.path for b in large_inputs(fingerprints, sizes.__getitem__, limit=99_999_999)] == ["data/model.bin", "src/app.py"]
