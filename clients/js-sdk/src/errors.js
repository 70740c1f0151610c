/**
 * One error model for REST and Socket.IO, mirroring the server's contract
 * (CONTRACT §2 error table, §4 ack errors) plus a few client-side codes.
 * @module errors
 */

/**
 * Every error code a caller may see, with the HTTP status the server uses
 * for it (0 for codes the SDK raises itself, without a server answer).
 * @type {Readonly<Record<string, number>>}
 */
export const ErrorCodes = Object.freeze({
  // server codes (CONTRACT §2): the same table as server/errors.py (a server test compares them)
  validation_error: 400,
  bad_request: 400,
  sign_in_failed: 400,
  invalid_token: 400, // a mailed link's token (verify email, reset password, unsubscribe) is unknown, used or expired
  http_error: 400, // an HTTP error without a code of its own (408, 416, ...): status is the one received
  unauthorized: 401,
  invalid_credentials: 401,
  token_expired: 401,
  token_revoked: 401,
  csrf_failed: 401,
  forbidden: 403,
  email_not_verified: 403,
  blocked: 403, // one of the two people blocked the other
  not_a_contact: 403, // adding to a group someone without a relation (details.user_ids)
  not_found: 404,
  unknown_event: 404, // a Socket.IO event the server does not know
  method_not_allowed: 405,
  conflict: 409,
  email_taken: 409,
  identity_taken: 409,
  last_sign_in_method: 409,
  block_limit_reached: 409, // POST /users/{id}/block past SKILLSHARE_MAX_BLOCKS_PER_USER
  invalid_transition: 409, // a skill request (or its review) is not in the state the action needs
  not_started: 409, // completing a request before a message was exchanged since it was accepted
  already_reviewed: 409,
  request_exists: 409, // an open request for this listing exists already
  busy: 409, // call:invite: the callee is in another call
  offline: 409, // call:invite: the callee has no connected socket
  payload_too_large: 413,
  unsupported_media_type: 415,
  rate_limited: 429,
  internal_error: 500,
  unavailable: 503,
  node_draining: 503, // connect refused by a node shutting down: reconnect (any node)
  // client-side codes: no server answer was obtained
  network_error: 0,
  timeout: 0,
  not_connected: 0,
  not_signed_in: 0,
  aborted: 0,
  call_failed: 0,
  turn_failed: 0, // a call restricted to TURN (iceTransportPolicy "relay") got no TURN allocation
});

/** Codes a client may retry (same request, later). */
export const RETRYABLE_CODES = Object.freeze(new Set([
  'rate_limited', 'unavailable', 'node_draining', 'internal_error', 'network_error', 'timeout', 'not_connected',
]));

/** Codes meaning "this session is over: sign in again". */
export const SESSION_ENDED_CODES = Object.freeze(new Set(['token_revoked', 'unauthorized']));

/**
 * An error from the server (REST envelope or a Socket.IO `{ok: false}` ack)
 * or raised by the SDK itself (`network_error`, `timeout`, ...).
 */
export class ApiError extends Error {
  /**
   * @param {string} code snake_case code, see {@link ErrorCodes}
   * @param {string} [message]
   * @param {{status?: number, details?: any, requestId?: string|null, retryAfter?: number|null, cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message || code, extra.cause !== undefined ? { cause: extra.cause } : undefined);
    this.name = 'ApiError';
    /** @type {string} */
    this.code = code;
    /** @type {number} HTTP status; 0 when no server answer was obtained */
    this.status = extra.status ?? ErrorCodes[code] ?? 0;
    /** @type {any} validation details: list of {field, message}, or an object */
    this.details = extra.details ?? null;
    /** @type {string|null} */
    this.requestId = extra.requestId ?? null;
    /** @type {number|null} seconds to wait before retrying (429) */
    this.retryAfter = extra.retryAfter ?? null;
  }

  /** True when repeating the same request later may succeed. */
  get retryable() {
    return RETRYABLE_CODES.has(this.code);
  }

  /**
   * Builds an error from a failed fetch Response (the contract's envelope,
   * or a sensible code from the status when the body is not one).
   * @param {Response} response
   * @returns {Promise<ApiError>}
   */
  static async fromResponse(response) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    const err = body && typeof body === 'object' ? body.error : null;
    const retryHeader = response.headers.get('Retry-After');
    const retryAfter = retryHeader ? Number(retryHeader) : (err?.details?.retry_after ?? null);
    const code = err?.code || codeForStatus(response.status);
    return new ApiError(code, err?.message || `HTTP ${response.status}`, {
      status: response.status,
      details: err?.details ?? null,
      requestId: err?.request_id ?? response.headers.get('X-Request-ID'),
      retryAfter: Number.isFinite(retryAfter) ? retryAfter : null,
    });
  }

  /**
   * Builds an error from a Socket.IO ack `{ok: false, error: {code, message, details?}}`.
   * @param {any} ack
   * @returns {ApiError}
   */
  static fromAck(ack) {
    const err = ack && typeof ack === 'object' ? ack.error : null;
    const code = err?.code || 'internal_error';
    const retryAfter = err?.details?.retry_after ?? err?.retry_after ?? null;
    return new ApiError(code, err?.message || code, {
      details: err?.details ?? null,
      retryAfter,
    });
  }
}

/** @param {number} status */
function codeForStatus(status) {
  for (const [code, s] of Object.entries(ErrorCodes)) {
    if (s === status) return code;
  }
  return status >= 500 ? 'internal_error' : 'bad_request';
}
