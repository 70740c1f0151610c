"""One error model for REST and Socket.IO.

Raise an ``ApiError`` subclass anywhere below the handlers; the HTTP middleware
renders it as the contract's error envelope and the Socket.IO layer turns it
into an ``{"ok": false, "error": {...}}`` ack.
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


class ValidationFailed(ApiError):
    """400 with ``details`` a list of ``{"field": "a.b", "message": "..."}``."""

    status, code, message = 400, "validation_error", "The request is invalid."

    @classmethod
    def field(cls, field: str, message: str) -> "ValidationFailed":
        return cls(details=[{"field": field, "message": message}])


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "Authentication is required."


class InvalidCredentials(Unauthorized):
    code, message = "invalid_credentials", "The email or password is incorrect."


class TokenExpired(Unauthorized):
    code, message = "token_expired", "The token has expired."


class TokenRevoked(Unauthorized):
    code, message = "token_revoked", "The token has been revoked."


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
