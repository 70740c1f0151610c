"""Talking to providers: OpenID Connect (discovery, JWKS, authorization code
with PKCE, ID token validation by joserfc) and GitHub's OAuth 2 (no ID
token: the user and the verified primary email come from its REST API).
HTTP goes through one aiohttp session owned by the caller."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from loguru import logger

from ...clock import Clock
from ...errors import SignInFailed, Unavailable
from .providers import ProviderConfig

DISCOVERY_PATH = "/.well-known/openid-configuration"
METADATA_TTL_S = 3600  # discovery document and JWKS are re-read this often
JWKS_MIN_REFRESH_S = 60  # an unknown key id re-reads the JWKS at most this often
CLOCK_LEEWAY_S = 60  # clock skew tolerated on exp / iat / nbf
# Asymmetric algorithms only: a symmetric one would let the client secret sign.
ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                         "ES256", "ES384", "ES512", "EdDSA")
GOOGLE_ISSUER = "https://accounts.google.com"
GOOGLE_LEGACY_ISSUER = "accounts.google.com"  # Google's ID tokens may carry either
GITHUB_API = "https://api.github.com"


class ProviderUnavailable(Unavailable):
    message = "The sign-in provider cannot be reached right now. Please try again later."


@dataclass(frozen=True, slots=True)
class ExternalIdentity:
    """Who the provider says signed in."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


class ProviderClient(Protocol):
    config: ProviderConfig

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str,
                                redirect_uri: str) -> str: ...

    async def identity(self, *, code: str, code_verifier: str, nonce: str,
                       redirect_uri: str) -> ExternalIdentity: ...


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


class _Http:
    """JSON over aiohttp; any transport failure or non-2xx is the provider's."""

    def __init__(self, http: aiohttp.ClientSession, timeout: float, provider: str) -> None:
        self._http = http
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._provider = provider

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        try:
            async with self._http.request(method, url, timeout=self._timeout,
                                          allow_redirects=False, **kwargs) as response:
                if response.status >= 500:
                    raise ProviderUnavailable()
                data = await response.json(content_type=None)
                if response.status >= 400:
                    logger.info("oidc {}: {} {} answered {}: {}", self._provider, method, url,
                                response.status, str(data)[:300])
                    raise SignInFailed()
                return data
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            logger.warning("oidc {}: {} {} failed: {!r}", self._provider, method, url, exc)
            raise ProviderUnavailable() from None


def _client_auth(config: ProviderConfig) -> aiohttp.BasicAuth:
    # RFC 6749 2.3.1: form-encode the id and secret before basic auth
    return aiohttp.BasicAuth(quote(config.client_id, safe=""), quote(config.client_secret, safe=""))


class OidcClient:
    """An OpenID Connect provider found by discovery from its issuer."""

    def __init__(self, config: ProviderConfig, *, http: aiohttp.ClientSession, timeout: float,
                 clock: Clock) -> None:
        self.config = config
        self._http = _Http(http, timeout, config.name)
        self._clock = clock
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._keys_at = 0.0

    async def metadata(self) -> dict[str, Any]:
        now = self._clock.time()
        if self._metadata is None or now - self._metadata_at > METADATA_TTL_S:
            data = await self._http.json("GET", self.config.issuer + DISCOVERY_PATH)
            if not isinstance(data, dict) or data.get("issuer") != self.config.issuer:
                logger.warning("oidc {}: discovery document names issuer {!r}, expected {!r}",
                               self.config.name, (data or {}).get("issuer"), self.config.issuer)
                raise ProviderUnavailable()
            for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(data.get(key), str):
                    raise ProviderUnavailable()
            self._metadata, self._metadata_at = data, now
        return self._metadata

    async def _key_set(self, *, refresh: bool = False) -> KeySet:
        now = self._clock.time()
        stale = now - self._keys_at > (JWKS_MIN_REFRESH_S if refresh else METADATA_TTL_S)
        if self._keys is None or stale:
            metadata = await self.metadata()
            data = await self._http.json("GET", metadata["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(data)
            except (JoseError, ValueError, TypeError, KeyError):
                logger.warning("oidc {}: unreadable JWKS", self.config.name)
                raise ProviderUnavailable() from None
            self._keys_at = now
        return self._keys

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str,
                                redirect_uri: str) -> str:
        endpoint = (await self.metadata())["authorization_endpoint"]
        params = {
            "response_type": "code", "client_id": self.config.client_id,
            "redirect_uri": redirect_uri, "scope": self.config.scopes, "state": state,
            "nonce": nonce, "code_challenge": code_challenge, "code_challenge_method": "S256",
        }
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(params)}"

    async def identity(self, *, code: str, code_verifier: str, nonce: str,
                       redirect_uri: str) -> ExternalIdentity:
        metadata = await self.metadata()
        tokens = await self._http.json(
            "POST", metadata["token_endpoint"], auth=_client_auth(self.config),
            data={"grant_type": "authorization_code", "code": code,
                  "redirect_uri": redirect_uri, "code_verifier": code_verifier},
            headers={"Accept": "application/json"},
        )
        id_token = tokens.get("id_token") if isinstance(tokens, dict) else None
        if not isinstance(id_token, str):
            logger.info("oidc {}: token response without an id_token", self.config.name)
            raise SignInFailed()
        claims = await self.validate_id_token(id_token, nonce=nonce)
        if "email" not in claims and metadata.get("userinfo_endpoint") and tokens.get(
                "access_token"):
            claims = {**await self._userinfo(metadata["userinfo_endpoint"],
                                             tokens["access_token"], claims["sub"]), **claims}
        email = claims.get("email")
        return ExternalIdentity(
            provider=self.config.name, subject=str(claims["sub"]),
            email=email if isinstance(email, str) and email else None,
            email_verified=_truthy(claims.get("email_verified")),
            name=claims.get("name") if isinstance(claims.get("name"), str) else None,
        )

    async def _userinfo(self, endpoint: str, access_token: str, subject: str) -> dict[str, Any]:
        info = await self._http.json("GET", endpoint,
                                     headers={"Authorization": f"Bearer {access_token}"})
        if not isinstance(info, dict) or info.get("sub") != subject:
            logger.info("oidc {}: userinfo subject differs from the ID token's", self.config.name)
            raise SignInFailed()
        return {k: info[k] for k in ("email", "email_verified", "name") if k in info}

    async def validate_id_token(self, id_token: str, *, nonce: str) -> dict[str, Any]:
        """Signature (the provider's JWKS), issuer, audience, expiry and nonce."""
        metadata = await self.metadata()
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in ASYMMETRIC_ALGORITHMS]
        try:
            try:
                token = jwt.decode(id_token, await self._key_set(), algorithms=algorithms)
            except JoseError as exc:
                if "key" not in type(exc).__name__.lower() and "kid" not in str(exc).lower():
                    raise
                # the provider may have rotated its keys since we read them
                token = jwt.decode(id_token, await self._key_set(refresh=True),
                                   algorithms=algorithms)
            issuers = [self.config.issuer]
            if self.config.issuer == GOOGLE_ISSUER:
                issuers.append(GOOGLE_LEGACY_ISSUER)
            jwt.JWTClaimsRegistry(
                now=int(self._clock.time()), leeway=CLOCK_LEEWAY_S,
                iss={"essential": True, "values": issuers},
                aud={"essential": True, "value": self.config.client_id},
                sub={"essential": True}, exp={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            logger.info("oidc {}: ID token refused: {!r}", self.config.name, exc)
            raise SignInFailed() from None
        claims = token.claims
        aud = claims["aud"]
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.config.client_id:
            logger.info("oidc {}: ID token for several audiences without our azp",
                        self.config.name)
            raise SignInFailed()
        return claims


class GitHubClient:
    """GitHub's OAuth 2 web flow; ``issuer`` is the web origin (github.com or
    a GitHub Enterprise host, whose API is under /api/v3)."""

    def __init__(self, config: ProviderConfig, *, http: aiohttp.ClientSession, timeout: float,
                 clock: Clock) -> None:
        self.config = config
        self._http = _Http(http, timeout, config.name)
        host = urlsplit(config.issuer).hostname
        self._api = GITHUB_API if host == "github.com" else config.issuer + "/api/v3"

    async def authorization_url(self, *, state: str, nonce: str, code_challenge: str,
                                redirect_uri: str) -> str:
        params = {"client_id": self.config.client_id, "redirect_uri": redirect_uri,
                  "scope": self.config.scopes, "state": state, "allow_signup": "true",
                  "code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"{self.config.issuer}/login/oauth/authorize?{urlencode(params)}"

    async def identity(self, *, code: str, code_verifier: str, nonce: str,
                       redirect_uri: str) -> ExternalIdentity:
        tokens = await self._http.json(
            "POST", f"{self.config.issuer}/login/oauth/access_token",
            data={"client_id": self.config.client_id, "client_secret": self.config.client_secret,
                  "code": code, "redirect_uri": redirect_uri, "code_verifier": code_verifier},
            headers={"Accept": "application/json"},
        )
        access_token = tokens.get("access_token") if isinstance(tokens, dict) else None
        if not isinstance(access_token, str):
            logger.info("oidc {}: no access token ({})", self.config.name,
                        (tokens or {}).get("error") if isinstance(tokens, dict) else tokens)
            raise SignInFailed()
        headers = {"Authorization": f"Bearer {access_token}",
                   "Accept": "application/vnd.github+json"}
        user = await self._http.json("GET", f"{self._api}/user", headers=headers)
        emails = await self._http.json("GET", f"{self._api}/user/emails", headers=headers)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise SignInFailed()
        primary = next((e for e in emails if isinstance(e, dict) and e.get("primary")), None) \
            if isinstance(emails, list) else None
        email = primary.get("email") if primary else None
        return ExternalIdentity(
            provider=self.config.name, subject=str(user["id"]),
            email=email if isinstance(email, str) and email else None,
            email_verified=bool(primary and primary.get("verified") is True),
            name=user.get("name") or user.get("login"),
        )


def build_client(config: ProviderConfig, *, http: aiohttp.ClientSession, timeout: float,
                 clock: Clock) -> ProviderClient:
    if config.kind == "github":
        return GitHubClient(config, http=http, timeout=timeout, clock=clock)
    return OidcClient(config, http=http, timeout=timeout, clock=clock)
