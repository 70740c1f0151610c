"""A local server speaking the Gemini REST API the ``google-genai`` SDK
calls (``models/{model}:embedContent``, ``:batchEmbedContents``,
``:generateContent``), for tests: deterministic embeddings with
semantics (texts naming the same skill, per the vocabulary, point the
same way), failure modes (429, 500, hanging, bad key), and a record of
every request body so tests can check what left the server."""

from __future__ import annotations

import asyncio
import hashlib
import math
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from server.marketplace.text import search_tokens
from server.marketplace.vocabulary import default_vocabulary

DIMENSIONS = 64
RELATED_SHARE = 0.3
API_KEY = "test-gemini-key"
HANG_S = 3600
# What this "model" knows beyond the shipped vocabulary, so tests can tell
# a semantic match from a vocabulary one.
EXTRA_SYNONYMS = {"telecaster": "guitar", "stratocaster": "guitar", "bandurria": "guitar",
                  "jamon": "cooking"}


def _dim(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:4], "big") % DIMENSIONS


def embed(text: str) -> list[float]:
    """Each concept the text names (or word no concept covers) is one
    direction; related skills lean a little towards each other."""
    vector = [0.0] * DIMENSIONS
    tokens = [EXTRA_SYNONYMS.get(t, t) for t in search_tokens(text)]
    for unit in default_vocabulary().units(tokens):
        vector[_dim(" ".join(unit.synonyms[0]))] += 1.0
        for term in unit.related:
            vector[_dim(" ".join(term))] += RELATED_SHARE
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _texts(content: dict[str, Any]) -> str:
    return " ".join(p.get("text", "") for p in content.get("parts", []))


class FakeGemini:
    def __init__(self) -> None:
        self.mode = "ok"  # ok | 429 | 500 | hang
        self.bodies: list[str] = []
        self.paths: list[str] = []
        self._server: TestServer | None = None
        app = web.Application()
        app.router.add_post("/{version}/models/{call}", self._call)
        self._app = app

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url("/"))

    async def start(self) -> None:
        self._server = TestServer(self._app, host="127.0.0.1")
        await self._server.start_server()

    async def close(self) -> None:
        if self._server is not None:
            await self._server.close()

    def calls(self, method: str) -> int:
        return sum(1 for p in self.paths if p.endswith(":" + method))

    async def _call(self, request: web.Request) -> web.Response:
        raw = await request.text()
        self.bodies.append(raw)
        self.paths.append(request.path)
        if request.headers.get("x-goog-api-key") != API_KEY:
            return _error(400, "API key not valid. Please pass a valid API key.",
                          "INVALID_ARGUMENT")
        if self.mode == "429":
            return _error(429, "Resource has been exhausted (e.g. check quota).",
                          "RESOURCE_EXHAUSTED")
        if self.mode == "500":
            return _error(500, "Internal error encountered.", "INTERNAL")
        if self.mode == "hang":
            await asyncio.sleep(HANG_S)
        body = await request.json()
        model, _, method = request.match_info["call"].partition(":")
        if method == "batchEmbedContents":
            return web.json_response({"embeddings": [
                {"values": embed(_texts(r["content"]))} for r in body["requests"]]})
        if method == "embedContent":
            return web.json_response({"embedding": {"values": embed(_texts(body["content"]))}})
        if method == "generateContent":
            prompt = " ".join(_texts(c) for c in body.get("contents", []))
            return web.json_response({"candidates": [{
                "content": {"role": "model", "parts": [{"text": why(prompt)}]},
                "finishReason": "STOP"}], "modelVersion": model})
        return _error(404, f"Unknown method {method}", "NOT_FOUND")


def why(prompt: str) -> str:
    digest = hashlib.sha256(prompt.encode()).hexdigest()[:8]
    return f"Their skills fit what you are after ({digest})."


def _error(code: int, message: str, status: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "status": status}},
                             status=code)
