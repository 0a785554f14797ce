"""An emulator started for a run never outlives the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest

from loadtest.emulator import fauxqs_available

PARENT = textwrap.dedent(
    """
    import sys
    from loadtest import emulator
    with emulator.emulator(sys.argv[1]) as url:
        print(url, flush=True)
        sys.stdin.read()  # until killed
    """
)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError as exc:
        # An HTTP error status still means something listens.
        return hasattr(exc, "code")


@pytest.mark.parametrize("kind", ["moto", "fauxqs"])
def test_a_killed_parent_leaves_no_emulator_behind(kind: str) -> None:
    if kind == "fauxqs" and not fauxqs_available():
        pytest.skip("fauxqs is not installed (npm ci in scripts/fauxqs)")
    # GIVEN a process running an emulator (in a session of its own, like the demo's)
    with subprocess.Popen(
        [sys.executable, "-c", PARENT, kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as parent:
        assert parent.stdout is not None
        url = parent.stdout.readline().decode().strip()
        assert _answers(url)
        # WHEN the parent is killed with SIGKILL, so no cleanup of its own runs
        os.kill(parent.pid, signal.SIGKILL)
    # THEN the emulator exits by itself shortly after
    deadline = time.monotonic() + 10
    while _answers(url) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _answers(url)
