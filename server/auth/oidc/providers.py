"""Provider settings: ``SKILLSHARE_OIDC_PROVIDERS=google,github,demo`` and,
per name, ``SKILLSHARE_OIDC_<NAME>_ISSUER`` / ``_CLIENT_ID`` /
``_CLIENT_SECRET`` (optional ``_DISPLAY_NAME``, ``_SCOPES``). The names are
dynamic, so pydantic-settings cannot declare them: they are read here from
the environment (over the ``oidc`` table of the TOML file or the settings
overrides) and checked at start-up, one clear line naming the variable."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

ENV_PREFIX = "SKILLSHARE_OIDC_"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,31}$")
KEYS = ("issuer", "client_id", "client_secret", "display_name", "scopes")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
DEFAULT_OIDC_SCOPES = "openid email profile"

ProviderKind = Literal["oidc", "github"]


class OidcConfigError(ValueError):
    """A bad provider setting; the message is one line naming the variable."""


@dataclass(frozen=True, slots=True)
class Preset:
    kind: ProviderKind
    display_name: str
    issuer: str
    scopes: str


# Providers that need only a client id and secret.
PRESETS: dict[str, Preset] = {
    "google": Preset("oidc", "Google", "https://accounts.google.com", DEFAULT_OIDC_SCOPES),
    # GitHub speaks OAuth 2, not OpenID Connect: no ID token; the account's
    # verified primary email comes from its REST API. ``issuer`` is GitHub's
    # web origin (authorize and token endpoints); the API is api.<host>.
    "github": Preset("github", "GitHub", "https://github.com", "read:user user:email"),
}


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    name: str
    kind: ProviderKind
    display_name: str
    issuer: str
    client_id: str
    client_secret: str
    scopes: str


def env_name(name: str, key: str) -> str:
    return f"{ENV_PREFIX}{name.upper()}_{key.upper()}"


def _check_url(variable: str, url: str, *, production: bool) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise OidcConfigError(f"{variable}: must be an https:// URL")
    if parts.scheme == "http" and (production or parts.hostname not in LOOPBACK_HOSTS):
        raise OidcConfigError(
            f"{variable}: must be an https:// URL (http:// only for loopback in development)")
    return url.rstrip("/")


def load_providers(
    names: list[str], values: Mapping[str, Mapping[str, str]], environ: Mapping[str, str], *,
    production: bool,
) -> list[ProviderConfig]:
    """The configured providers in the order named; raises
    ``OidcConfigError`` naming the first bad variable."""
    providers: list[ProviderConfig] = []
    for raw_name in names:
        name = raw_name.strip().lower()
        if not NAME_PATTERN.match(name):
            raise OidcConfigError(
                f"SKILLSHARE_OIDC_PROVIDERS: {raw_name!r} is not a provider name "
                "(a letter, then letters or digits, at most 32)")
        if any(p.name == name for p in providers):
            raise OidcConfigError(f"SKILLSHARE_OIDC_PROVIDERS: {name!r} is named twice")
        given = {k: str(v) for k, v in (values.get(name) or {}).items()}
        for key in KEYS:
            value = environ.get(env_name(name, key))
            if value is not None:
                given[key] = value
        unknown = set(given) - set(KEYS)
        if unknown:
            raise OidcConfigError(f"{env_name(name, sorted(unknown)[0])}: unknown setting")
        preset = PRESETS.get(name)
        for key in ("client_id", "client_secret"):
            if not given.get(key, "").strip():
                raise OidcConfigError(
                    f"{env_name(name, key)} is required (SKILLSHARE_OIDC_PROVIDERS names {name})")
        issuer = given.get("issuer", "").strip() or (preset.issuer if preset else "")
        if not issuer:
            raise OidcConfigError(
                f"{env_name(name, 'issuer')} is required (SKILLSHARE_OIDC_PROVIDERS names {name})")
        issuer = _check_url(env_name(name, "issuer"), issuer, production=production)
        scopes = " ".join(given.get("scopes", "").replace(",", " ").split()) or (
            preset.scopes if preset else DEFAULT_OIDC_SCOPES)
        kind: ProviderKind = preset.kind if preset else "oidc"
        if kind == "oidc" and "openid" not in scopes.split():
            raise OidcConfigError(f"{env_name(name, 'scopes')}: must include openid")
        providers.append(ProviderConfig(
            name=name, kind=kind,
            display_name=given.get("display_name", "").strip()
            or (preset.display_name if preset else name.capitalize()),
            issuer=issuer, client_id=given["client_id"].strip(),
            client_secret=given["client_secret"].strip(), scopes=scopes,
        ))
    return providers
