"""Freed heap memory goes back to the system after a burst of large allocations."""

from __future__ import annotations

import psutil

from processors.memory import release_freed_memory


def test_a_trim_gives_back_what_many_small_freed_blocks_held() -> None:
    process = psutil.Process()
    # Many blocks below glibc's mmap threshold stay in the heap when freed.
    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # about 190 MB
    held = process.memory_info().rss
    # Keep the last block: the heap's top is then in use, so only a trim (not the automatic
    # release at the top of the heap) can hand back the freed pages below it.
    last = blocks[-1]
    del blocks
    before = process.memory_info().rss
    assert release_freed_memory()
    after = process.memory_info().rss
    assert len(last) == 64 * 1024
    assert held - after > 100 * 2**20, (held, before, after)
    assert after < before
