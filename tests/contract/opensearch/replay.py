"""A loopback HTTP server replaying recorded OpenSearch exchanges, recording what it receives.

Each fixture file in `recorded/` is a list of exchanges: the request the
adapter must send (method, path, query, and a JSON or NDJSON body) and the
response OpenSearch gives to it. The server answers in order and keeps the
requests it received, so a test can compare them line by line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

RECORDED = Path(__file__).parent / "recorded"


def load(name: str) -> list[dict[str, Any]]:
    exchanges: list[dict[str, Any]] = json.loads((RECORDED / f"{name}.json").read_text())
    return exchanges


def parse_body(raw: bytes) -> dict[str, Any]:
    """A JSON body as `{"json": …}`, an NDJSON one as `{"ndjson": [lines]}`, none as `{}`."""
    if not raw:
        return {}
    text = raw.decode()
    lines = [line for line in text.split("\n") if line]
    if len(lines) > 1 or text.endswith("\n"):
        return {"ndjson": [json.loads(line) for line in lines]}
    return {"json": json.loads(text)}


@dataclass
class Replay:
    exchanges: list[dict[str, Any]]
    received: list[dict[str, Any]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        got = {"method": request.method, "path": request.path, "query": dict(request.query)}
        got.update(parse_body(raw))
        self.received.append(got)
        if len(self.received) > len(self.exchanges):
            return web.json_response({"error": "unexpected request"}, status=500)
        response = self.exchanges[len(self.received) - 1]["response"]
        if request.method == "HEAD":
            return web.Response(status=response["status"])
        return web.json_response(response.get("json", {}), status=response["status"])

    def expected(self) -> list[dict[str, Any]]:
        return [e["request"] for e in self.exchanges]


async def serve(replay: Replay) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", replay.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"
