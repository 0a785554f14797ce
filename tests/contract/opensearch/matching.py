"""A replay for concurrent senders: each request is answered by the exchange recorded for it.

`replay.Replay` answers strictly in order, which suits one sender. A
reconciliation scans the index (one task) while checkers write (others), so
the order between the two streams is not fixed. `MatchingReplay` answers each
request with the first unused exchange whose request equals it (method, path,
query and body; `"match_body": false` compares everything but the body), and
can hold a response until a named exchange was answered (`"hold_until"`), to
pin an interleaving a test needs.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.contract.opensearch.replay import parse_body

HOLD_DEADLINE = 10.0


def canonical(request: dict[str, Any]) -> str:
    return json.dumps(request, sort_keys=True)


def _matches(recorded: dict[str, Any], got: dict[str, Any]) -> bool:
    want = recorded["request"]
    if recorded.get("match_body", True):
        return bool(want == got)
    keys = ("method", "path", "query")
    return all(want[k] == got[k] for k in keys)


@dataclass
class MatchingReplay:
    exchanges: list[dict[str, Any]]
    received: list[dict[str, Any]] = field(default_factory=list)
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    used: set[int] = field(default_factory=set)
    answered: dict[str, asyncio.Event] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.answered = {e["name"]: asyncio.Event() for e in self.exchanges if "name" in e}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        got: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
        }
        got.update(parse_body(await request.read()))
        self.received.append(got)
        found = next(
            (i for i, e in enumerate(self.exchanges) if i not in self.used and _matches(e, got)),
            None,
        )
        if found is None:
            self.unmatched.append(got)
            return web.json_response({"error": "unexpected request"}, status=500)
        self.used.add(found)
        exchange = self.exchanges[found]
        if "hold_until" in exchange:
            # A deadline instead of waiting forever: a missing request fails the
            # test's assertions rather than its timeout.
            await asyncio.wait_for(self.answered[exchange["hold_until"]].wait(), HOLD_DEADLINE)
        response = exchange["response"]
        reply = web.json_response(response.get("json", {}), status=response["status"])
        if "name" in exchange:
            self.answered[exchange["name"]].set()
        return reply

    def expected(self) -> list[dict[str, Any]]:
        return [e["request"] for e in self.exchanges]

    def unanswered(self) -> list[dict[str, Any]]:
        return [e["request"] for i, e in enumerate(self.exchanges) if i not in self.used]

    def paths(self) -> list[tuple[str, str]]:
        return [(r["method"], r["path"]) for r in self.received]
