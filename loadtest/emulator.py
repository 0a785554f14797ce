"""SQS/SNS emulators for load runs and the demo, each in a child process on loopback.

fauxqs (npm, pinned in scripts/fauxqs) keeps receive and send cheap however deep
a queue is, so it is the load test's default. moto needs nothing but Python, so
the demo uses it on a bare machine; its cost grows with queue depth, which is
fine at the seed's rates. Both are started as child processes so that the
emulator's CPU is not taken from the process that drives and measures the load.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Final, Literal

Emulator = Literal["fauxqs", "moto"]

FAUXQS_DIR: Final = Path(__file__).resolve().parent.parent / "scripts" / "fauxqs"
START_TIMEOUT: Final = 30.0


class EmulatorError(Exception):
    """The emulator could not be started; the message says what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fauxqs_available() -> bool:
    return shutil.which("node") is not None and (FAUXQS_DIR / "node_modules" / "fauxqs").is_dir()


def pick(requested: Emulator | Literal["auto"]) -> Emulator:
    """`auto` is fauxqs when Node and the installed package are there, else moto."""
    if requested != "auto":
        return requested
    return "fauxqs" if fauxqs_available() else "moto"


@contextlib.contextmanager
def emulator(kind: Emulator) -> Iterator[str]:
    """Start the named emulator on a free loopback port; yields its endpoint URL."""
    runner = _fauxqs if kind == "fauxqs" else _moto
    with runner() as url:
        yield url


@contextlib.contextmanager
def _fauxqs() -> Iterator[str]:
    if not fauxqs_available():
        raise EmulatorError(
            "fauxqs is not installed: run `npm ci` in scripts/fauxqs (or `make loadtest`)."
        )
    # stdin stays open: the starter exits when it closes, so a killed parent
    # never leaves an emulator behind.
    proc = subprocess.Popen(
        ["node", str(FAUXQS_DIR / "start.mjs"), "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,  # see _moto
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise EmulatorError("fauxqs exited before it listened; is Node 20 or newer installed?")
        yield str(json.loads(line)["url"])
    finally:
        _stop(proc)


@contextlib.contextmanager
def _moto() -> Iterator[str]:
    if importlib.util.find_spec("moto") is None:
        raise EmulatorError(
            "moto's server is not installed: install the loadtest extra "
            "(pip install 'socialpipe[loadtest]'; `make demo` does)."
        )
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest.moto_child", "-H", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        # Out of our process group: a terminal's Ctrl-C must not stop the emulator
        # before the workers have drained into it; we stop it last.
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/moto-api/", proc)
        yield url
    finally:
        _stop(proc)


def _wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise EmulatorError("The moto server exited before it listened.")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1):
            return
        time.sleep(0.1)
    raise EmulatorError(f"The moto server did not answer within {START_TIMEOUT:.0f} s.")


def _stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    with contextlib.suppress(OSError):
        if proc.stdin:
            proc.stdin.close()
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
