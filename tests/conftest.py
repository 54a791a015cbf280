"""Shared pytest fixtures: paths, ../shared handling (skip locally, fail under CI=true), unix port runner."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

from mpyml import paths

IN_CI = os.environ.get("CI", "").lower() == "true"

# tests/device/ holds plain MicroPython files (run under the unix port by the tests here), not pytest modules
collect_ignore_glob = ["device/*"]


def load_module(name: str, path: Path) -> ModuleType:
    """A Python file outside any package (tests/device, models/) imported by path, once per process, as `name`."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


def load_hostrun() -> ModuleType:
    """tests/device/hostrun.py: runs tests/device scripts under the MicroPython unix port."""
    return load_module("mpyml_device_hostrun", Path(__file__).resolve().parent / "device" / "hostrun.py")


def skip_or_fail(msg: str) -> None:
    """Skip a test whose prerequisite is missing, with the reason; under CI=true (where `make test` installs
    everything) a missing prerequisite is a failure, never a silent skip."""
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def shared_path(*parts: str) -> Path:
    """A file under ../shared; skips (or fails under CI=true) when it is absent."""
    p = paths.SHARED.joinpath(*parts)
    if not p.exists():
        msg = f"{p} not found: ../shared (models and data for tests) is only present in CI and dev checkouts"
        if IN_CI:
            pytest.fail(msg)
        pytest.skip(msg)
    return p


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return shared_path()


@pytest.fixture(scope="session")
def micropython() -> str:
    return paths.micropython_exe()


@pytest.fixture(scope="session")
def natmod_x64() -> Path:
    p = paths.natmod_path("x64")
    if not p.exists():
        pytest.fail(f"{p} missing: run `make natmods` first (make test does)")
    return p
