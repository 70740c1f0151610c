"""One error model for REST and Socket.IO, and the one table of error codes.

Raise an ``ApiError`` subclass anywhere below the handlers; the HTTP middleware
renders it as the contract's error envelope and the Socket.IO layer turns it
into an ``{"ok": false, "error": {...}}`` ack.

Every code the server sends is the ``code`` of one class below (never a bare
string at a raise site); the JS SDK's ``ErrorCodes`` (clients/js-sdk/src/errors.js)
lists the same codes with the same statuses, which tests/test_sdk_error_codes.py
checks in both directions. A new code: a class here, a line there, a row in
docs/sdk.md.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error a client is meant to see: HTTP status, snake_case code, message."""

    status: int = 500
    code: str = "internal_error"
    message: str = "Internal server error."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.code = code or self.code
        self.details = details
        self.headers = headers or {}
        super().__init__(self.message)

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "details": self.details,
        }
        if request_id is not None:
            body["request_id"] = request_id
        return body


class BadRequest(ApiError):
    status, code, message = 400, "bad_request", "The request is malformed."


class InvalidToken(BadRequest):
    """A link's one-time token (email verification, password reset, digest
    unsubscribe) is unknown, used or expired."""

    code, message = "invalid_token", "This link is invalid or has expired."


class ValidationFailed(ApiError):
    """400 with ``details`` a list of ``{"field": "a.b", "message": "..."}``."""

    status, code, message = 400, "validation_error", "The request is invalid."

    @classmethod
    def field(cls, field: str, message: str) -> ValidationFailed:
        return cls(details=[{"field": field, "message": message}])


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "Authentication is required."


class InvalidCredentials(Unauthorized):
    code, message = "invalid_credentials", "The email or password is incorrect."


class TokenExpired(Unauthorized):
    code, message = "token_expired", "The token has expired."


class TokenRevoked(Unauthorized):
    code, message = "token_revoked", "The token has been revoked."


class CsrfFailed(Unauthorized):
    """A cookie-carried refresh without the matching ``X-CSRF-Token`` header."""

    code, message = "csrf_failed", "The X-CSRF-Token header must match the CSRF cookie."


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "You may not do this."


class EmailNotVerified(Forbidden):
    code, message = "email_not_verified", "Verify your email address first."


class Blocked(Forbidden):
    """One of the two people blocked the other: no messages in their direct
    room, calls, skill requests, new rooms or group additions between them."""

    code, message = "blocked", "You cannot contact this user."


class NotAContact(Forbidden):
    """Adding people to a group needs a relation with each of them;
    ``details`` is ``{"user_ids": [...]}``."""

    code, message = "not_a_contact", "You can only add people you are in contact with."


class NotFound(ApiError):
    status, code, message = 404, "not_found", "Not found."


class UnknownEvent(NotFound):
    """A Socket.IO event no handler is registered for."""

    code, message = "unknown_event", "Unknown event."


class MethodNotAllowed(ApiError):
    status, code, message = 405, "method_not_allowed", "Method not allowed."


class Conflict(ApiError):
    status, code, message = 409, "conflict", "The request conflicts with the current state."


class EmailTaken(Conflict):
    code, message = "email_taken", "That email address is already registered."


class SignInFailed(BadRequest):
    """Signing in (or linking) with a sign-in provider did not succeed."""

    code, message = "sign_in_failed", "Signing in with this provider did not succeed."


class IdentityTaken(Conflict):
    """This provider account is linked already (to this or another account),
    or the account has another account of that provider linked."""

    code, message = "identity_taken", "This sign-in provider account is already linked."


class LastSignInMethod(Conflict):
    """Unlinking would leave the account without a password and without
    another provider: no way to sign in."""

    code, message = ("last_sign_in_method",
                     "Set a password or link another provider before unlinking this one.")


class InvalidTransition(Conflict):
    """A skill request (or its review) is not in the state the action needs;
    ``details`` has ``status`` (and ``action``)."""

    code, message = "invalid_transition", "The request is not in a state that allows this."


class NotStarted(Conflict):
    """Completing a request before the two people exchanged a message since it
    was accepted; ``details`` is ``{"room_id": ...}``."""

    code, message = "not_started", "Talk first: exchange a message before completing."


class AlreadyReviewed(Conflict):
    code, message = "already_reviewed", "This request has already been reviewed."


class RequestExists(Conflict):
    code, message = "request_exists", "You already have an open request for this listing."


class Busy(Conflict):
    """``call:invite``: the callee is in another call."""

    code, message = "busy", "That user is already in a call."


class Offline(Conflict):
    """``call:invite``: the callee has no connected socket."""

    code, message = "offline", "That user is not online."


class BlockLimitReached(Conflict):
    code, message = "block_limit_reached", "You have blocked as many people as allowed."


class PayloadTooLarge(ApiError):
    status, code, message = 413, "payload_too_large", "The payload is too large."


class UnsupportedMediaType(ApiError):
    status, code, message = 415, "unsupported_media_type", "Send application/json."


class RateLimited(ApiError):
    status, code, message = 429, "rate_limited", "Too many requests; slow down."

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(
            message,
            details={"retry_after": self.retry_after},
            headers={"Retry-After": str(self.retry_after)},
        )


class HttpError(ApiError):
    """An HTTP error aiohttp raised itself whose status has no class of its
    own (408, 411, 416, 431…): the instance carries aiohttp's status; 400
    is only the class's nominal one."""

    status, code, message = 400, "http_error", "The request could not be served."

    def __init__(self, status: int, message: str | None = None) -> None:
        super().__init__(message)
        self.status = status


class InternalError(ApiError):
    status, code, message = 500, "internal_error", "Internal server error."


class Unavailable(ApiError):
    status, code, message = 503, "unavailable", "The service is temporarily unavailable."


class NodeDraining(Unavailable):
    """This node is shutting down: reconnect, with backoff, to any node."""

    code, message = "node_draining", "This node is shutting down; reconnect to another."


class HashingBusy(Unavailable):
    """503 when more sign-ins, sign-ups and password changes are waiting for
    the password-hashing pool than its queue holds."""

    message = "Too many sign-ins at once; try again in a moment."

    def __init__(self, retry_after: int) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(
            details={"retry_after": self.retry_after},
            headers={"Retry-After": str(self.retry_after)},
        )
