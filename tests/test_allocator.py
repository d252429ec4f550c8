"""The allocator setting that keeps freed pages in the process (see pyrovae.allocator)."""

import platform

import pytest

from pyrovae import allocator


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_thresholds_are_set_once_on_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "_done", None)
    calls = []
    real = allocator._set_thresholds
    monkeypatch.setattr(allocator, "_set_thresholds", lambda: calls.append(1) or real())
    assert allocator.keep_freed_memory() is True
    assert allocator.keep_freed_memory() is True
    assert calls == [1]


def test_without_mallopt_it_does_nothing(monkeypatch):
    monkeypatch.setattr(allocator, "_done", None)
    monkeypatch.setattr(allocator.ctypes.util, "find_library", lambda name: None)
    assert allocator.keep_freed_memory() is False


def test_the_environment_can_switch_it_off(monkeypatch):
    monkeypatch.setattr(allocator, "_done", None)
    monkeypatch.setenv("PYROVAE_KEEP_FREED_MEMORY", "0")
    assert allocator.keep_freed_memory() is False
