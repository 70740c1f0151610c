"""The Gemini API through the official ``google-genai`` SDK: embeddings of
short texts (listing text, skill names) and one-sentence explanations.
Every call is bounded by ``timeout``; the SDK's own retries are off (a
failed call degrades to the local ranking instead of waiting)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from google import genai
from google.genai import types

MS_PER_S = 1000
MAX_WHY_TOKENS = 60
EMBED_DIMENSIONS = 256  # Matryoshka truncation: small vectors stored with each listing


@dataclass(frozen=True, slots=True)
class GeminiConfig:
    api_key: str
    embed_model: str
    model: str
    base_url: str | None
    timeout: float


class ProviderError(Exception):
    """Gemini failed (HTTP error, bad key, timeout, malformed answer);
    ``kind`` is the metrics label."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind


def _kind(exc: BaseException) -> str:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timeout"
    code = getattr(exc, "code", None)
    if code == 429:
        return "rate_limited"
    if code in (400, 401, 403):
        return "auth" if "key" in str(exc).lower() or code in (401, 403) else "bad_request"
    if isinstance(code, int) and code >= 500:
        return "server_error"
    return "error"


class GeminiClient:
    def __init__(self, config: GeminiConfig) -> None:
        self._config = config
        options = types.HttpOptions(
            base_url=config.base_url, timeout=int(config.timeout * MS_PER_S),
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        self._client = genai.Client(api_key=config.api_key, http_options=options)

    @property
    def embed_model(self) -> str:
        return self._config.embed_model

    async def embed(self, texts: list[str]) -> list[list[float]]:
        """One vector per text (one ``batchEmbedContents`` call)."""
        try:
            response = await asyncio.wait_for(
                self._client.aio.models.embed_content(
                    model=self._config.embed_model, contents=list(texts),
                    config=types.EmbedContentConfig(output_dimensionality=EMBED_DIMENSIONS)),
                self._config.timeout)
        except Exception as exc:
            raise ProviderError(_kind(exc), str(exc)[:200]) from exc
        vectors = [list(e.values or []) for e in response.embeddings or []]
        if len(vectors) != len(texts) or any(not v for v in vectors):
            raise ProviderError("malformed", "embedding count or size")
        return vectors

    async def generate(self, prompt: str) -> str:
        try:
            response = await asyncio.wait_for(
                self._client.aio.models.generate_content(
                    model=self._config.model, contents=prompt,
                    # no thinking: on 2.5 models it would spend the output budget
                    config=types.GenerateContentConfig(
                        max_output_tokens=MAX_WHY_TOKENS,
                        thinking_config=types.ThinkingConfig(thinking_budget=0))),
                self._config.timeout)
        except Exception as exc:
            raise ProviderError(_kind(exc), str(exc)[:200]) from exc
        text = (response.text or "").strip()
        if not text:
            raise ProviderError("malformed", "empty text")
        return text

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # closing must never fail shutdown
            await self._client.aio.aclose()
