"""The bundled web app in two headless Chromium profiles (playwright-core
driving /usr/bin/chromium) against a real server: sign-up, listings,
requests, chat, and a video call whose remote video decodes frames.
Screenshots land in test-results/browser/."""

from __future__ import annotations

import os
from pathlib import Path

from ._node import explain, run_node_tests

CHROMIUM = Path(os.environ.get("SKILLSHARE_CHROMIUM", "/usr/bin/chromium"))


def _require_chromium() -> None:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium"


def test_sdk_call_connects_and_decodes_video_in_chromium() -> None:
    """The SDK's Call (offer/answer/candidates, stats) between two peers in
    one page, with an in-page stand-in for the server's call signalling."""
    _require_chromium()
    run = run_node_tests(["test/browser/call-loopback.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 1, explain(run)


def test_web_app_in_two_browsers() -> None:
    _require_chromium()
    run = run_node_tests(["test/browser/app.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 6, explain(run)


def test_relayed_call_carries_video_both_ways() -> None:
    """Two SDK clients force the server's media relay (`call:relay`)."""
    _require_chromium()
    run = run_node_tests(["test/browser/call-relay.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 1, explain(run)


def test_sign_in_with_a_provider_in_chromium() -> None:
    """"Continue with …" against a real OpenID provider (tests/js/oidc_provider.mjs),
    then the profile's linked providers, set-password and unlink."""
    _require_chromium()
    run = run_node_tests(["test/browser/oidc.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 2, explain(run)


def test_web_app_layout_on_a_phone_and_with_long_words() -> None:
    """390×844 phone: every view fits without sideways scrolling (nav, Sign
    out, search, Send, Video call, Decline, Hang up on screen); a long
    unbroken word or URL in chat wraps. Screenshots in test-results/browser/."""
    _require_chromium()
    run = run_node_tests(["test/browser/app-layout.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 11, explain(run)


def test_web_app_account_flows() -> None:
    """Forgot password, verification status and resend, change password,
    sign-out clearing the form, mailed /requests/<id> links opening the app."""
    _require_chromium()
    run = run_node_tests(["test/browser/app-accounts.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 5, explain(run)


def test_web_app_marketplace_flows() -> None:
    """Edit and delete one's listing, the public teacher profile linked from
    cards, "Mark completed" only after the first conversation, 1–5 star
    reviews with a comment and a confirmation."""
    _require_chromium()
    run = run_node_tests(["test/browser/app-marketplace.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 5, explain(run)


def test_web_app_admin_screens() -> None:
    """An admin (made with `server admin grant`) hides/unhides a listing,
    finds a user by email, bans/unbans, changes the role, reads the audit log."""
    _require_chromium()
    run = run_node_tests(["test/browser/app-admin.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 4, explain(run)


def test_api_docs_page_lists_the_operations() -> None:
    """/docs (Swagger UI 5 from swagger-ui-py) renders the OpenAPI 3.1
    document: every operation listed, nothing loaded from elsewhere."""
    _require_chromium()
    run = run_node_tests(["test/browser/docs.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 1, explain(run)


def test_web_app_live_updates() -> None:
    """Requests and conversations appear without a reload, messages sent
    while offline arrive after reconnecting, only what is on screen in a
    visible tab is marked read, truthful connection state, drafts kept."""
    _require_chromium()
    run = run_node_tests(["test/browser/app-live.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 8, explain(run)


def test_web_app_polish() -> None:
    """Favicon everywhere, human validation messages, "No results", a
    contact already online shown online, "No answer" for the caller of a
    missed call."""
    _require_chromium()
    run = run_node_tests(["test/browser/app-polish.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 5, explain(run)


def test_web_app_error_boundary_and_accessibility() -> None:
    """Keyboard-only sign-up, search, request and chat with visible focus;
    axe-core: no serious or critical violation in any view; an uncaught
    error and an unhandled rejection show a recoverable message and reach
    the server's log through /api/v1/client-errors."""
    _require_chromium()
    run = run_node_tests(["test/browser/app-a11y.browser.test.mjs"])
    assert run.returncode == 0 and run.failed == 0, explain(run)
    assert run.passed >= 10, explain(run)
