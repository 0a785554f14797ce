"""Which redis-server the local servers run when several are installed."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest import redis_binaries


def _fake(folder: Path, name: str, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=0 malloc=libc bits=64'\n")
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def _fresh_choice() -> Iterator[None]:
    redis_binaries.find_redis_server.cache_clear()
    yield
    redis_binaries.find_redis_server.cache_clear()


def test_the_newest_server_wins_whatever_comes_first_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an old redis-server first on PATH (an activated venv's) and a newer one after it
    old = _fake(tmp_path / "venv-bin", "redis-server", "6.2.14")
    new = _fake(tmp_path / "usr-bin", "redis-server", "99.0.1")
    cli = _fake(tmp_path / "usr-bin", "redis-cli", "99.0.1")
    monkeypatch.setenv("PATH", f"{old.parent}:{new.parent}")

    # WHEN the server and its cli are looked up
    # THEN the newer one and the cli beside it are chosen
    assert redis_binaries.find_redis_server() == new
    assert redis_binaries.find_redis_binary("redis-cli") == str(cli)


def test_a_missing_tool_is_named_in_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(tmp_path / "bin", "redis-server", "99.0.1")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    with pytest.raises(redis_binaries.RedisBinaryError, match="redis-benchmark"):
        redis_binaries.find_redis_binary("redis-benchmark")


def test_versions_are_compared_as_numbers(tmp_path: Path) -> None:
    assert redis_binaries.server_version(_fake(tmp_path, "a", "7.10.0")) > (
        redis_binaries.server_version(_fake(tmp_path, "b", "7.9.9"))
    )
    assert redis_binaries.server_version(tmp_path / "missing") == ()
