"""The demo and the load tester without the `loadtest` extra: a clear message, no traceback.

The image installs only the runtime dependencies; moto's server and matplotlib come
with the `loadtest` extra. A run that lacks one says what to install (the emulator)
or goes on without the picture.
"""

from __future__ import annotations

import importlib.util
from importlib.machinery import ModuleSpec

import pytest

from loadtest import report
from loadtest.emulator import EmulatorError, emulator


def without(monkeypatch: pytest.MonkeyPatch, *missing: str) -> None:
    """Make `importlib.util.find_spec` report `missing` as not installed."""
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> ModuleSpec | None:
        return None if name in missing else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_the_moto_emulator_names_the_extra_when_moto_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN an install without moto WHEN the demo asks for its emulator
    without(monkeypatch, "moto")
    # THEN it fails before starting anything, naming the extra to install
    with pytest.raises(EmulatorError, match=r"socialpipe\[loadtest\]"), emulator("moto"):
        pass


def test_the_report_knows_when_it_cannot_draw(monkeypatch: pytest.MonkeyPatch) -> None:
    assert report.can_draw()
    without(monkeypatch, "matplotlib")
    assert not report.can_draw()
