"""The checkpoint content-hash cache: reused for an untouched file, recomputed for any rewrite."""

import os
import time

from ttskiln.fingerprint import sha256_file


def test_cache_is_reused_for_an_untouched_file(tmp_path):
    path, cache = tmp_path / "weights.bin", tmp_path / "cache.json"
    path.write_bytes(b"a" * 64)
    first = sha256_file(path, cache)
    # A cached value is returned as recorded: plant one to see that it is used.
    cache.write_text(cache.read_text().replace(first, "recorded"))
    assert sha256_file(path, cache) == "recorded"


def test_in_place_rewrite_with_same_size_and_mtime_is_hashed_again(tmp_path):
    path, cache = tmp_path / "weights.bin", tmp_path / "cache.json"
    path.write_bytes(b"a" * 64)
    before = sha256_file(path, cache)
    stat = path.stat()
    time.sleep(0.05)  # lets the clock tick so the rewrite gets its own ctime
    with path.open("r+b") as fh:
        fh.write(b"b" * 64)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (stat.st_size, stat.st_mtime_ns, stat.st_ino)
    assert after.st_ctime_ns != stat.st_ctime_ns
    assert sha256_file(path, cache) != before
    assert sha256_file(path, cache) == sha256_file(path)


def test_copy_renamed_over_the_file_is_hashed_again(tmp_path):
    path, cache = tmp_path / "weights.bin", tmp_path / "cache.json"
    path.write_bytes(b"a" * 64)
    before = sha256_file(path, cache)
    stat = path.stat()
    other = tmp_path / "new.bin"
    other.write_bytes(b"c" * 64)
    os.utime(other, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(other, path)
    assert sha256_file(path, cache) != before
