"""Sign-in provider settings: dynamic SKILLSHARE_OIDC_<NAME>_* variables,
presets, and one clear line naming the bad variable at start-up."""

from __future__ import annotations

import subprocess
import sys

import pytest

from server.config import ConfigError, load_settings

BASE = {"SKILLSHARE_ENV": "test"}


def _load(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]):
    for key in list(__import__("os").environ):
        if key.startswith("SKILLSHARE_"):
            monkeypatch.delenv(key)
    for key, value in {**BASE, **env}.items():
        monkeypatch.setenv(key, value)
    return load_settings()


def test_google_needs_only_id_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _load(monkeypatch, {
        "SKILLSHARE_OIDC_PROVIDERS": "google, github,demo",
        "SKILLSHARE_OIDC_GOOGLE_CLIENT_ID": "gid", "SKILLSHARE_OIDC_GOOGLE_CLIENT_SECRET": "gs",
        "SKILLSHARE_OIDC_GITHUB_CLIENT_ID": "hid", "SKILLSHARE_OIDC_GITHUB_CLIENT_SECRET": "hs",
        "SKILLSHARE_OIDC_DEMO_ISSUER": "https://id.example.com/",
        "SKILLSHARE_OIDC_DEMO_CLIENT_ID": "did", "SKILLSHARE_OIDC_DEMO_CLIENT_SECRET": "ds",
        "SKILLSHARE_OIDC_DEMO_DISPLAY_NAME": "Example ID",
        "SKILLSHARE_OIDC_DEMO_SCOPES": "openid,email",
    })
    google, github, demo = settings.oidc_provider_configs()
    assert (google.kind, google.issuer, google.display_name, google.scopes) == (
        "oidc", "https://accounts.google.com", "Google", "openid email profile")
    assert (github.kind, github.issuer, github.display_name) == (
        "github", "https://github.com", "GitHub")
    assert (demo.issuer, demo.display_name, demo.scopes, demo.client_id) == (
        "https://id.example.com", "Example ID", "openid email", "did")


@pytest.mark.parametrize(("env", "line"), [
    ({"SKILLSHARE_OIDC_PROVIDERS": "google"},
     "SKILLSHARE_OIDC_GOOGLE_CLIENT_ID is required (SKILLSHARE_OIDC_PROVIDERS names google)"),
    ({"SKILLSHARE_OIDC_PROVIDERS": "demo", "SKILLSHARE_OIDC_DEMO_CLIENT_ID": "a",
      "SKILLSHARE_OIDC_DEMO_CLIENT_SECRET": "b"},
     "SKILLSHARE_OIDC_DEMO_ISSUER is required (SKILLSHARE_OIDC_PROVIDERS names demo)"),
    ({"SKILLSHARE_OIDC_PROVIDERS": "demo", "SKILLSHARE_OIDC_DEMO_CLIENT_ID": "a",
      "SKILLSHARE_OIDC_DEMO_CLIENT_SECRET": "b", "SKILLSHARE_OIDC_DEMO_ISSUER": "http://idp.example"},
     "SKILLSHARE_OIDC_DEMO_ISSUER: must be an https:// URL "
     "(http:// only for loopback in development)"),
    ({"SKILLSHARE_OIDC_PROVIDERS": "demo", "SKILLSHARE_OIDC_DEMO_CLIENT_ID": "a",
      "SKILLSHARE_OIDC_DEMO_CLIENT_SECRET": "b", "SKILLSHARE_OIDC_DEMO_ISSUER": "https://i.example",
      "SKILLSHARE_OIDC_DEMO_SCOPES": "email"},
     "SKILLSHARE_OIDC_DEMO_SCOPES: must include openid"),
    ({"SKILLSHARE_OIDC_PROVIDERS": "my-idp"},
     "SKILLSHARE_OIDC_PROVIDERS: 'my-idp' is not a provider name "
     "(a letter, then letters or digits, at most 32)"),
])
def test_a_bad_provider_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], line: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _load(monkeypatch, env)
    assert str(raised.value) == line


def test_serve_refuses_to_start_with_one_line(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "SKILLSHARE_DATA_DIR": str(tmp_path),
           "SKILLSHARE_OIDC_PROVIDERS": "google", "SKILLSHARE_OIDC_GOOGLE_CLIENT_ID": "x"}
    result = subprocess.run([sys.executable, "-m", "server", "serve"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert ("SKILLSHARE_OIDC_GOOGLE_CLIENT_SECRET is required "
            "(SKILLSHARE_OIDC_PROVIDERS names google)") in result.stderr
    assert "Traceback" not in result.stderr
