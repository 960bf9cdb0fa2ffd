"""Keeping freed memory: large blocks stop page-faulting after the first use."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from dove_model import allocator

# Eight passes of a small conv net whose activations are 64 MiB each; prints the page faults
# of the last four (the first passes grow the heap).
CHILD = """
import resource, sys, torch
from dove_model.allocator import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == "retain" else False
torch.set_num_threads(1)
conv = torch.nn.Sequential(
    torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1)
).eval()
pixels = torch.randn(16, 3, 128, 128)
faults = []
with torch.inference_mode():
    for _ in range(8):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        conv(pixels)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(applied, sum(faults[4:]))
"""

glibc = pytest.mark.skipif(
    sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)


def page_faults(mode: str) -> tuple[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode], check=True, capture_output=True, text=True
    ).stdout.split()
    return out[0], int(out[1])


@glibc
def test_freed_blocks_are_reused_without_faulting_pages_in_again() -> None:
    applied, retained = page_faults("retain")
    _, default = page_faults("default")
    assert applied == "True"
    assert default > 4 * 16_384  # glibc's default: each pass faults its blocks' pages in again
    assert retained < default / 10


def test_other_platforms_keep_their_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allocator.sys, "platform", "darwin")
    assert allocator.retain_freed_memory.__wrapped__() is False


def test_consumers_turn_it_on_only_when_the_environment_asks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(allocator, "retain_freed_memory", lambda: calls.append(True) or True)
    monkeypatch.delenv(allocator.ENV, raising=False)
    assert allocator.retain_freed_memory_if_enabled() is False and calls == []
    monkeypatch.setenv(allocator.ENV, "1")
    assert allocator.retain_freed_memory_if_enabled() is True and calls == [True]
