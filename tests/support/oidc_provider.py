"""A real OpenID provider for the sign-in tests: npm ``oidc-provider`` run by
tests/js/oidc_provider.mjs in a node process on a free loopback port."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from .services import ChildProcess, free_port, wait_for_port

JS_DIR = Path(__file__).resolve().parents[1] / "js"
SCRIPT = JS_DIR / "oidc_provider.mjs"


class OidcProviderProcess(ChildProcess):
    """``start()`` / ``stop()``; ``issuer`` is its URL. Clients register with
    ``register_client(redirect_uri)``; accounts and tampered ID tokens are
    set with the script's test hooks."""

    def __init__(self) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["node", str(SCRIPT), str(self.port)], cwd=JS_DIR, stdout=subprocess.DEVNULL,
        )
        wait_for_port(self.port, proc=self.proc)

    def stop(self) -> None:
        self._terminate(timeout=10)

    async def _post(self, path: str, data: dict[str, Any]) -> Any:
        async with aiohttp.ClientSession() as http, http.post(self.issuer + path, json=data) as response:
            assert response.status < 300, await response.text()
            return await response.json() if response.status != 204 else None

    async def register_client(self, redirect_uri: str) -> dict[str, str]:
        """Dynamic client registration: ``{client_id, client_secret}``."""
        client = await self._post("/reg", {"redirect_uris": [redirect_uri]})
        return {"client_id": client["client_id"], "client_secret": client["client_secret"]}

    async def add_account(self, sub: str, *, email: str, email_verified: bool,
                          name: str = "Provider Person") -> None:
        await self._post("/test/accounts", {"sub": sub, "email": email,
                                            "email_verified": email_verified, "name": name})

    async def tamper_next_id_token(self, *, claims: dict[str, Any] | None = None,
                                   exp_offset: int | None = None,
                                   foreign_key: bool = False) -> None:
        change: dict[str, Any] = {"claims": claims or {}, "foreign_key": foreign_key}
        if exp_offset is not None:
            change["exp_offset"] = exp_offset
        await self._post("/test/tamper", change)
