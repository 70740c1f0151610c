/**
 * One-to-one calls: a {@link Call} wraps an RTCPeerConnection, signals over
 * `call:signal`, falls back to the server's media relay (`call:relay`) when
 * peer-to-peer does not connect, and reports `call:stats` (at set-up, then
 * periodically). A connected call that loses its media (ICE disconnected or
 * failed, the network changed) restarts ICE and renegotiates through
 * `call:signal`, or re-offers to the relay; a socket that reconnects asks
 * `call:resume` whether the call is still on. Browser only (needs
 * RTCPeerConnection).
 * @module call
 */
import { ApiError } from './errors.js';
import { Emitter } from './emitter.js';

/** Call states. */
export const CallState = Object.freeze({
  Ringing: 'ringing', // outgoing, waiting for the callee
  Incoming: 'incoming', // incoming, waiting for accept()/reject()
  Connecting: 'connecting',
  Connected: 'connected',
  Reconnecting: 'reconnecting', // media lost: ICE restart / relay re-offer under way
  Ended: 'ended',
});

/** How long the relay offer waits for ICE gathering (aiortc does not trickle). */
const RELAY_GATHER_TIMEOUT_MS = 3_000;
/** Buffered events for a call id we do not know yet are kept this long. */
const EARLY_EVENT_TTL_MS = 10_000;
/** ICE "disconnected" often heals by itself; restart only if it lasts this long. */
const ICE_DISCONNECTED_GRACE_MS = 2_000;
/** Between relay re-offers while the relay is unreachable. */
const RELAY_RETRY_MS = 1_000;

/**
 * @typedef {object} CallEvents
 * @property {{state: string, previous: string}} state
 * @property {MediaStream} remotestream  the remote media (again after a relay fallback)
 * @property {{path: 'p2p'|'turn'|'relay', setup_ms: number}} connected
 * @property {{reason: string, by: string|null}} ended
 * @property {ApiError} error  the call failed (e.g. `turn_failed`); `ended` follows
 * @property {{why: string}} reconnecting  our media was lost; an ICE restart or relay re-offer is under way
 * @property {{path: 'p2p'|'turn'|'relay', recovery_ms: number}} recovered  media is back
 * @property {{state: 'connected'|'reconnecting'}} peer  the other participant lost or regained their
 *   connection to the server (show "reconnecting…")
 */

/** @extends {Emitter<CallEvents>} */
export class Call extends Emitter {
  /**
   * @param {{manager: Calls, id: string, peerId: string, direction: 'outgoing'|'incoming',
   *   media: {audio: boolean, video: boolean}, iceServers?: RTCIceServer[]}} init
   */
  constructor({ manager, id, peerId, direction, media, iceServers }) {
    super();
    this._m = manager;
    /** @type {string} */ this.id = id;
    /** @type {string} the other participant */ this.peerId = peerId;
    /** @type {string|null} the caller's display name (incoming calls) */ this.fromName = null;
    /** @type {'outgoing'|'incoming'} */ this.direction = direction;
    this.media = media;
    /** @type {RTCIceServer[]|null} */ this.iceServers = iceServers || null;
    /** @type {string} */ this.state = direction === 'outgoing' ? CallState.Ringing : CallState.Incoming;
    /** @type {'p2p'|'turn'|'relay'|null} */ this.path = null;
    /** @type {MediaStream|null} */ this.localStream = null;
    /** @type {MediaStream|null} */ this.remoteStream = null;
    /** @type {RTCPeerConnection|null} */ this.peerConnection = null;
    /** @type {RTCIceCandidateInit[]} */ this._pendingCandidates = [];
    this._forceRelay = false;
    /** @type {'all'|'relay'} */ this.iceTransportPolicy = manager.options.iceTransportPolicy || 'all';
    this._startedAt = 0;
    /** @type {ReturnType<typeof setTimeout>|null} */ this._p2pTimer = null;
    this._statsReported = false;
    /** @type {Promise<void>} */ this._signalChain = Promise.resolve();
    /** @type {'connected'|'reconnecting'} the other participant's connection to the server */
    this.peerState = 'connected';
    /** The callee yields when both sides offer at once (perfect negotiation). */
    this._polite = direction === 'incoming';
    this._makingOffer = false;
    this._recoveringSince = 0;
    this._relayRetrying = false;
    /** @type {ReturnType<typeof setTimeout>|null} */ this._recoverTimer = null;
    /** @type {ReturnType<typeof setTimeout>|null} */ this._disconnectTimer = null;
    /** @type {ReturnType<typeof setInterval>|null} */ this._statsTimer = null;
  }

  /** @param {string} state */
  _setState(state) {
    if (state === this.state) return;
    const previous = this.state;
    this.state = state;
    this.emit('state', { state, previous });
  }

  /** Sets the local media for an outgoing call before it is accepted. @param {MediaStream|null} stream */
  setLocalStream(stream) {
    this.localStream = stream;
  }

  /**
   * Accepts an incoming call.
   * @param {{localStream?: MediaStream|null, forceRelay?: boolean, iceTransportPolicy?: 'all'|'relay'}} [opts]
   */
  async accept(opts = {}) {
    if (this.state !== CallState.Incoming) throw new ApiError('conflict', `Cannot accept a call in state ${this.state}.`);
    this.localStream = opts.localStream ?? null;
    this._forceRelay = Boolean(opts.forceRelay);
    if (opts.iceTransportPolicy) this.iceTransportPolicy = opts.iceTransportPolicy;
    if (!this.iceServers) {
      try {
        this.iceServers = (await this._m.api.iceServers()).ice_servers;
      } catch {
        this.iceServers = [];
      }
    }
    if (this._forceRelay) {
      // The server's relay serves accepted calls only: accept, then offer to it.
      await this._acceptOnServer();
      try {
        await this._startMedia();
      } catch (err) {
        this._reportStats('relay', false);
        await this.end('connection_failed').catch(() => {});
        throw err;
      }
      return;
    }
    // The peer connection exists before the caller can learn of the accept,
    // so its offer never finds us unprepared.
    await this._startMedia();
    await this._acceptOnServer();
  }

  async _acceptOnServer() {
    try {
      await this._m.rt.request('call:accept', { call_id: this.id });
    } catch (err) {
      this._cleanup('accept_failed', null);
      throw err;
    }
  }

  /** Rejects an incoming call. @param {string} [reason] */
  async reject(reason = 'declined') {
    await this._m.rt.request('call:reject', { call_id: this.id, reason });
    this._cleanup('rejected', null);
  }

  /** Hangs up (or cancels an outgoing call still ringing). @param {string} [reason] */
  async end(reason = 'hangup') {
    if (this.state === CallState.Ended) return;
    try {
      await this._m.rt.request('call:end', { call_id: this.id, reason });
    } finally {
      this._cleanup(reason, null);
    }
  }

  /**
   * Restarts ICE (peer-to-peer or TURN: a new offer with `iceRestart` through
   * `call:signal`; relay: a new offer to the relay). Called by the SDK when
   * the media is lost, the network changes or our socket is back; callable by
   * apps too.
   */
  async restartIce() {
    if (this.state !== CallState.Connected && this.state !== CallState.Reconnecting) return;
    if (this.path === 'relay') {
      await this._reofferRelay();
      return;
    }
    const pc = this.peerConnection;
    if (!pc || this._makingOffer) return;
    // an earlier restart offer that never reached the other side (our socket was down)
    if (pc.signalingState === 'have-local-offer') await pc.setLocalDescription({ type: 'rollback' });
    if (pc.signalingState !== 'stable') return;
    this._makingOffer = true;
    try {
      const offer = await pc.createOffer({ iceRestart: true });
      if (pc !== this.peerConnection || pc.signalingState !== 'stable') return;
      await pc.setLocalDescription(offer);
      await this._signal({ type: 'offer', sdp: offer.sdp });
    } finally {
      this._makingOffer = false;
    }
  }

  /** RTCStatsReport of the current peer connection. */
  async getStats() {
    return this.peerConnection ? this.peerConnection.getStats() : new Map();
  }

  // --- server events (dispatched by Calls) ---------------------------------

  /** @param {{by: string}} ev */
  async _onAccepted(ev) {
    if (this.direction !== 'outgoing' || this.state !== CallState.Ringing) return;
    void ev;
    await this._startMedia();
  }

  /** Signals are applied one at a time, in arrival order. @param {{data: any}} ev */
  _onSignal(ev) {
    const run = this._signalChain.then(() => this._applySignal(ev));
    this._signalChain = run.catch(() => {});
    return run;
  }

  /** @param {{data: any}} ev */
  async _applySignal(ev) {
    const data = ev.data || {};
    const pc = this.peerConnection;
    if (!pc || this.path === 'relay') return;
    if (data.type === 'offer') {
      // Both sides may restart ICE at once: the caller ignores the callee's
      // offer then, the callee rolls its own back (perfect negotiation).
      const collision = this._makingOffer || pc.signalingState !== 'stable';
      if (collision && !this._polite) return;
      await pc.setRemoteDescription({ type: 'offer', sdp: data.sdp });
      await this._flushCandidates();
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      await this._signal({ type: 'answer', sdp: answer.sdp });
    } else if (data.type === 'answer') {
      if (pc.signalingState !== 'have-local-offer') return; // a stale answer
      await pc.setRemoteDescription({ type: 'answer', sdp: data.sdp });
      await this._flushCandidates();
    } else if (data.type === 'candidate' && data.candidate) {
      if (pc.remoteDescription) await pc.addIceCandidate(data.candidate).catch(() => {});
      else this._pendingCandidates.push(data.candidate);
    }
  }

  /** @param {{by?: string, reason?: string}} ev @param {string} fallback */
  _onEnded(ev, fallback) {
    this._cleanup(ev.reason || fallback, ev.by ?? null);
  }

  /** `call:peer_reconnecting` / `call:peer_reconnected`. @param {{user_id: string}} ev @param {'connected'|'reconnecting'} state */
  _onPeerState(ev, state) {
    if (ev.user_id !== this.peerId || this.state === CallState.Ended) return;
    this._setPeerState(state);
    // the other side is reachable again: bring our media back if it is lost
    if (state === 'connected' && this.state === CallState.Reconnecting) this.restartIce().catch(() => {});
  }

  /** @param {'connected'|'reconnecting'} state */
  _setPeerState(state) {
    if (state === this.peerState) return;
    this.peerState = state;
    this.emit('peer', { state });
  }

  /** Our socket is back after a drop: is the call still on? */
  async _onSocketBack() {
    if (this.state === CallState.Ended) return;
    let ack;
    try {
      ack = await this._m.rt.request('call:resume', { call_id: this.id });
    } catch (err) {
      if (err instanceof ApiError && (err.code === 'not_found' || err.code === 'forbidden')) this._cleanup('disconnected', null);
      return;
    }
    if (ack.state !== 'active') {
      this._cleanup(ack.reason || 'disconnected', ack.by ?? null);
      return;
    }
    this._setPeerState(ack.peer_away ? 'reconnecting' : 'connected');
    if (this.state === CallState.Reconnecting) this.restartIce().catch(() => {});
  }

  /** The network changed (the browser went online, another interface): check the media path. */
  _onNetworkChange() {
    if (this.state === CallState.Connected || this.state === CallState.Reconnecting) {
      this._mediaLost('network_change');
    }
  }

  // --- media ---------------------------------------------------------------

  async _startMedia() {
    this._setState(CallState.Connecting);
    this._startedAt = performance.now();
    if (this._forceRelay) {
      await this._useRelay();
      return;
    }
    const pc = this._newPeerConnection(this.direction === 'incoming', this.iceTransportPolicy);
    /** @type {{url: string, error_code: number, error_text: string}[]} */
    const turnErrors = [];
    let relayCandidates = 0;
    pc.onicecandidate = (e) => {
      if (!e.candidate) return;
      if (e.candidate.type === 'relay') relayCandidates += 1;
      this._signal({ type: 'candidate', candidate: e.candidate.toJSON() }).catch(() => {});
    };
    pc.onicecandidateerror = (e) => {
      const ev = /** @type {RTCPeerConnectionIceErrorEvent} */ (e);
      if (/^turns?:/.test(ev.url || '')) {
        turnErrors.push({ url: ev.url, error_code: ev.errorCode, error_text: ev.errorText });
      }
    };
    pc.onicegatheringstatechange = () => {
      // TURN-only calls cannot connect without a relay candidate: say so
      // instead of waiting for ICE that has nothing to check.
      if (pc !== this.peerConnection || pc.iceGatheringState !== 'complete') return;
      if (this.iceTransportPolicy === 'relay' && relayCandidates === 0) this._turnFailed(turnErrors);
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.peerConnection) return;
      if (pc.connectionState === 'connected') this._onPcConnected();
      else if (pc.connectionState === 'failed') {
        if (this.state === CallState.Connecting) this._fallBack();
        else this._mediaLost('ice_failed');
      }
    };
    pc.oniceconnectionstatechange = () => {
      if (pc === this.peerConnection) this._onIceState(pc);
    };
    if (this._m.options.p2pTimeoutMs > 0) {
      this._p2pTimer = setTimeout(() => {
        if (this.state === CallState.Connecting && pc === this.peerConnection) this._fallBack();
      }, this._m.options.p2pTimeoutMs);
    }
    if (this.direction === 'outgoing') {
      const offer = await pc.createOffer();
      await pc.setLocalDescription(offer);
      await this._signal({ type: 'offer', sdp: offer.sdp });
    }
  }

  /**
   * A peer connection with local tracks (or receive-only transceivers) and remote-track wiring.
   * @param {boolean} [answering] true for the callee's peer-to-peer connection (it answers an offer)
   * @param {'all'|'relay'} [iceTransportPolicy] "relay": TURN candidates only
   */
  _newPeerConnection(answering = false, iceTransportPolicy = 'all') {
    const PC = this._m.RTCPeerConnection;
    if (!PC) throw new ApiError('call_failed', 'RTCPeerConnection is not available here.');
    const pc = new PC({ iceServers: this.iceServers || [], iceTransportPolicy });
    this.peerConnection = pc;
    this.remoteStream = new MediaStream();
    const stream = this.remoteStream;
    pc.ontrack = (e) => {
      if (pc !== this.peerConnection) return;
      stream.addTrack(e.track);
      this.emit('remotestream', stream);
    };
    const tracks = this.localStream ? this.localStream.getTracks() : [];
    if (answering) {
      // addTrack (not addTransceiver): the offer's m-lines then reuse these
      // senders instead of leaving them unnegotiated.
      for (const track of tracks) pc.addTrack(track, /** @type {MediaStream} */ (this.localStream));
      return pc;
    }
    for (const kind of /** @type {const} */ (['audio', 'video'])) {
      const track = tracks.find((t) => t.kind === kind);
      if (track) pc.addTransceiver(track, { direction: 'sendrecv', streams: [/** @type {MediaStream} */ (this.localStream)] });
      else if (this.media[kind]) pc.addTransceiver(kind, { direction: 'recvonly' });
    }
    return pc;
  }

  /**
   * A TURN-only call got no relay candidate (wrong or expired credentials,
   * TURN server unreachable): fail it with `turn_failed`.
   * @param {{url: string, error_code: number, error_text: string}[]} errors
   */
  _turnFailed(errors) {
    if (this.state !== CallState.Connecting || this.path === 'relay') return;
    const turnUrls = (this.iceServers || []).filter((s) => [s.urls].flat().some((u) => /^turns?:/.test(String(u))));
    const why = errors.length
      ? errors.map((e) => `${e.url}: ${e.error_code} ${e.error_text}`.trim()).join('; ')
      : (turnUrls.length ? 'no answer from the TURN server' : 'no TURN server configured');
    const err = new ApiError('turn_failed', `No TURN relay candidate (${why}).`, { details: { errors } });
    this._reportStats('turn', false);
    this.emit('error', err);
    this._m.rt.emit('error', err);
    this.end('turn_failed').catch(() => {});
  }

  _fallBack() {
    if (this.state !== CallState.Connecting || this.path === 'relay') return;
    if (!this._m.options.relayFallback) {
      this._reportStats('p2p', false);
      this.end('connection_failed').catch(() => {});
      return;
    }
    this._useRelay().catch((err) => {
      this._reportStats('relay', false);
      this._m.rt.emit('error', err instanceof ApiError ? err : new ApiError('call_failed', String(err)));
      this.end('connection_failed').catch(() => {});
    });
  }

  /** Sends our media to the server's relay and receives the peer's from it. */
  async _useRelay() {
    if (this._p2pTimer) clearTimeout(this._p2pTimer);
    this.peerConnection?.close();
    this.path = 'relay';
    const pc = this._newPeerConnection();
    for (const t of pc.getTransceivers()) {
      if (t.receiver.track.kind === 'video' && typeof t.setCodecPreferences === 'function'
          && typeof RTCRtpReceiver !== 'undefined' && RTCRtpReceiver.getCapabilities) {
        const caps = RTCRtpReceiver.getCapabilities('video');
        const vp8 = caps ? caps.codecs.filter((c) => /vp8|rtx/i.test(c.mimeType)) : [];
        if (vp8.length) t.setCodecPreferences(vp8);
      }
    }
    pc.onconnectionstatechange = () => {
      if (pc !== this.peerConnection) return;
      if (pc.connectionState === 'connected') this._onPcConnected();
      else if (pc.connectionState === 'failed') {
        if (this.state === CallState.Connecting) {
          this._reportStats('relay', false);
          this.end('connection_failed').catch(() => {});
        } else {
          this._mediaLost('relay_failed'); // e.g. the relay's node went away: re-offer
        }
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc, RELAY_GATHER_TIMEOUT_MS);
    const ack = await this._m.rt.request('call:relay', {
      call_id: this.id, sdp: /** @type {RTCSessionDescription} */ (pc.localDescription).sdp,
    });
    await pc.setRemoteDescription({ type: 'answer', sdp: ack.sdp });
  }

  _onPcConnected() {
    if (this.state === CallState.Reconnecting) this._onRecovered();
    else this._onConnected();
  }

  /** @param {RTCPeerConnection} pc */
  _onIceState(pc) {
    if (this.state !== CallState.Connected && this.state !== CallState.Reconnecting) return;
    const ice = pc.iceConnectionState;
    if (ice === 'connected' || ice === 'completed') {
      if (this._disconnectTimer) clearTimeout(this._disconnectTimer);
      this._disconnectTimer = null;
      if (this.state === CallState.Reconnecting) this._onRecovered();
    } else if (ice === 'failed') {
      this._mediaLost('ice_failed');
    } else if (ice === 'disconnected' && !this._disconnectTimer) {
      this._disconnectTimer = setTimeout(() => {
        this._disconnectTimer = null;
        const now = pc.iceConnectionState;
        if (pc === this.peerConnection && (now === 'disconnected' || now === 'failed')) this._mediaLost('ice_disconnected');
      }, ICE_DISCONNECTED_GRACE_MS);
    }
  }

  /**
   * Media of a connected call was lost: go "reconnecting", restart ICE (or
   * re-offer to the relay); give up after `iceRestartTimeoutMs` — falling
   * back to the relay first when the call was peer-to-peer.
   * @param {string} why
   */
  _mediaLost(why) {
    if (this.state !== CallState.Connected && this.state !== CallState.Reconnecting) return;
    if (this.state === CallState.Connected) {
      this._recoveringSince = performance.now();
      this._setState(CallState.Reconnecting);
      this.emit('reconnecting', { why });
      this._recoverTimer = setTimeout(() => this._recoveryTimedOut(), this._m.options.iceRestartTimeoutMs);
    }
    this.restartIce().catch(() => {});
  }

  _recoveryTimedOut() {
    this._recoverTimer = null;
    if (this.state !== CallState.Reconnecting) return;
    if (this.path !== 'relay' && this._m.options.relayFallback) {
      this._recoverTimer = setTimeout(() => this._recoveryTimedOut(), this._m.options.iceRestartTimeoutMs);
      this._reofferRelay().catch(() => {});
      return;
    }
    this._report({ kind: 'lost', path: this.path || 'p2p', connected: false });
    this.end('media_lost').catch(() => {});
  }

  /** Offers to the relay again (a new peer connection) until it answers or the call gives up. */
  async _reofferRelay() {
    if (this._relayRetrying) return;
    this._relayRetrying = true;
    try {
      while (this.state === CallState.Reconnecting) {
        try {
          await this._useRelay();
          return;
        } catch (err) {
          if (err instanceof ApiError && ['not_found', 'forbidden', 'conflict'].includes(err.code)) {
            this._cleanup('disconnected', null); // the call is over
            return;
          }
          await new Promise((r) => setTimeout(r, RELAY_RETRY_MS));
        }
      }
    } finally {
      this._relayRetrying = false;
    }
  }

  async _onRecovered() {
    if (this.state !== CallState.Reconnecting) return;
    if (this._recoverTimer) clearTimeout(this._recoverTimer);
    this._recoverTimer = null;
    const recoveryMs = Math.round(performance.now() - this._recoveringSince);
    if (this.path !== 'relay') this.path = await selectedPath(/** @type {RTCPeerConnection} */ (this.peerConnection));
    if (this.state !== CallState.Reconnecting) return;
    this._setState(CallState.Connected);
    const path = /** @type {'p2p'|'turn'|'relay'} */ (this.path);
    this.emit('recovered', { path, recovery_ms: recoveryMs });
    this._report({ kind: 'recovered', path, connected: true, recovery_ms: recoveryMs });
  }

  async _onConnected() {
    if (this.state !== CallState.Connecting) return;
    if (this._p2pTimer) clearTimeout(this._p2pTimer);
    const setupMs = Math.round(performance.now() - this._startedAt);
    if (this.path !== 'relay') this.path = await selectedPath(/** @type {RTCPeerConnection} */ (this.peerConnection));
    if (this.state !== CallState.Connecting) return;
    this._setState(CallState.Connected);
    this.emit('connected', { path: /** @type {any} */ (this.path), setup_ms: setupMs });
    this._reportStats(/** @type {any} */ (this.path), true, setupMs);
    const every = this._m.options.callStatsIntervalMs;
    if (every > 0 && !this._statsTimer) this._statsTimer = setInterval(() => { this._reportInterval().catch(() => {}); }, every);
  }

  /** @param {'p2p'|'turn'|'relay'} path @param {boolean} connected @param {number} [setupMs] */
  _reportStats(path, connected, setupMs) {
    if (this._statsReported && !connected) return;
    this._statsReported = true;
    const setup_ms = setupMs ?? Math.round(performance.now() - this._startedAt);
    this._report({ path, connected, setup_ms });
  }

  /** @param {Record<string, any>} fields a `call:stats` payload without call_id */
  _report(fields) {
    this._m.rt.request('call:stats', { call_id: this.id, ...fields }).catch(() => {});
  }

  /** The periodic report: path, whether media is connected, round-trip time, packets. */
  async _reportInterval() {
    const pc = this.peerConnection;
    if (!pc || (this.state !== CallState.Connected && this.state !== CallState.Reconnecting)) return;
    /** @type {Record<string, any>} */
    const fields = { kind: 'interval', path: this.path || 'p2p', connected: this.state === CallState.Connected };
    let lost = 0;
    let received = 0;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') {
        fields.rtt_ms = Math.min(60_000, Math.round(s.currentRoundTripTime * 1000));
      } else if (s.type === 'inbound-rtp') {
        lost += Math.max(0, s.packetsLost || 0);
        received += s.packetsReceived || 0;
      }
    });
    fields.packets_lost = lost;
    fields.packets_received = received;
    this._report(fields);
  }

  async _flushCandidates() {
    const pc = /** @type {RTCPeerConnection} */ (this.peerConnection);
    const pending = this._pendingCandidates.splice(0);
    for (const c of pending) await pc.addIceCandidate(c).catch(() => {});
  }

  /** @param {any} data */
  _signal(data) {
    return this._m.rt.request('call:signal', { call_id: this.id, to: this.peerId, data });
  }

  /** @param {string} reason @param {string|null} by */
  _cleanup(reason, by) {
    if (this.state === CallState.Ended) return;
    for (const timer of [this._p2pTimer, this._recoverTimer, this._disconnectTimer]) if (timer) clearTimeout(timer);
    if (this._statsTimer) clearInterval(this._statsTimer);
    this.peerConnection?.close();
    this._setState(CallState.Ended);
    this._m._forget(this.id);
    this.emit('ended', { reason, by });
  }
}

/** @param {RTCPeerConnection} pc @param {number} timeoutMs */
function waitForGathering(pc, timeoutMs) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutMs);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve(undefined);
    }
    function check() { if (pc.iceGatheringState === 'complete') done(); }
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** "turn" when the selected candidate pair uses a TURN relay, else "p2p". @param {RTCPeerConnection} pc */
async function selectedPath(pc) {
  try {
    const stats = await pc.getStats();
    let pair = null;
    stats.forEach((s) => {
      if (s.type === 'transport' && s.selectedCandidatePairId) pair = stats.get(s.selectedCandidatePairId);
    });
    if (!pair) stats.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
    if (!pair) return 'p2p';
    const local = stats.get(/** @type {any} */ (pair).localCandidateId);
    const remote = stats.get(/** @type {any} */ (pair).remoteCandidateId);
    return local?.candidateType === 'relay' || remote?.candidateType === 'relay' ? 'turn' : 'p2p';
  } catch {
    return 'p2p';
  }
}

/**
 * @typedef {object} CallsEvents
 * @property {Call} incoming a call:incoming, as a Call to accept() or reject()
 */

/** Owns the active calls and routes the `call:*` events to them. @extends {Emitter<CallsEvents>} */
export class Calls extends Emitter {
  /**
   * @param {{options: import('./options.js').ClientOptions, realtime: import('./realtime.js').Realtime, api: import('./api.js').CallsApi}} deps
   */
  constructor({ options, realtime, api }) {
    super();
    this.options = options;
    this.rt = realtime;
    this.api = api;
    /** @type {typeof RTCPeerConnection|undefined} */
    this.RTCPeerConnection = globalThis.RTCPeerConnection;
    /** @type {Map<string, Call>} */
    this.active = new Map();
    /** @type {Map<string, Array<(call: Call) => any>>} events that arrived before their Call */
    this._early = new Map();
    realtime.handle('call:incoming', (ev) => {
      const call = new Call({
        manager: this, id: ev.call_id, peerId: ev.from, direction: 'incoming',
        media: ev.media || { audio: true, video: true }, iceServers: ev.ice_servers,
      });
      call.fromName = ev.from_name ?? null;
      this._add(call);
      this.emit('incoming', call);
    });
    for (const [event, method] of /** @type {const} */ ([
      ['call:accepted', '_onAccepted'], ['call:signal', '_onSignal'],
    ])) {
      realtime.handle(event, (ev) => this._route(event, ev, (call) => call[method](ev)));
    }
    realtime.handle('call:rejected', (ev) => this._route('call:rejected', ev, (c) => c._onEnded(ev, 'rejected')));
    realtime.handle('call:ended', (ev) => this._route('call:ended', ev, (c) => c._onEnded(ev, 'ended')));
    realtime.handle('call:peer_reconnecting', (ev) => this._route('call:peer_reconnecting', ev, (c) => c._onPeerState(ev, 'reconnecting')));
    realtime.handle('call:peer_reconnected', (ev) => this._route('call:peer_reconnected', ev, (c) => c._onPeerState(ev, 'connected')));
    realtime.on('connected', (ev) => {
      if (ev?.resumed) for (const call of this.active.values()) this._run(call, (c) => c._onSocketBack());
    });
    const onNetworkChange = () => { for (const call of this.active.values()) call._onNetworkChange(); };
    globalThis.addEventListener?.('online', onNetworkChange);
    /** @type {any} */ (globalThis.navigator)?.connection?.addEventListener?.('change', onNetworkChange);
  }

  /**
   * Calls a user. Resolves a Call in state "ringing" once the server has
   * accepted the invite; media starts when the callee accepts.
   * @param {string} userId
   * @param {{localStream?: MediaStream|null, media?: {audio: boolean, video: boolean}, forceRelay?: boolean,
   *   iceTransportPolicy?: 'all'|'relay'}} [opts]
   * @returns {Promise<Call>}
   */
  async invite(userId, opts = {}) {
    const stream = opts.localStream ?? null;
    const media = opts.media || {
      audio: stream ? stream.getAudioTracks().length > 0 : true,
      video: stream ? stream.getVideoTracks().length > 0 : true,
    };
    const ack = await this.rt.request('call:invite', { user_id: userId, media });
    const call = new Call({ manager: this, id: ack.call_id, peerId: userId, direction: 'outgoing', media, iceServers: ack.ice_servers });
    call.localStream = stream;
    call._forceRelay = Boolean(opts.forceRelay);
    if (opts.iceTransportPolicy) call.iceTransportPolicy = opts.iceTransportPolicy;
    this._add(call);
    return call;
  }

  /** @param {Call} call */
  _add(call) {
    this.active.set(call.id, call);
    const early = this._early.get(call.id);
    this._early.delete(call.id);
    if (early) queueMicrotask(() => { for (const fn of early) this._run(call, fn); });
  }

  /** @param {string} id */
  _forget(id) {
    this.active.delete(id);
  }

  /** @param {string} event @param {any} ev @param {(call: Call) => any} fn */
  _route(event, ev, fn) {
    const call = this.active.get(ev?.call_id);
    if (!call) {
      void event;
      const list = this._early.get(ev?.call_id) || [];
      list.push(fn);
      this._early.set(ev?.call_id, list);
      setTimeout(() => this._early.delete(ev?.call_id), EARLY_EVENT_TTL_MS);
      return;
    }
    this._run(call, fn);
  }

  /** @param {Call} call @param {(call: Call) => any} fn */
  _run(call, fn) {
    Promise.resolve().then(() => fn(call)).catch((err) => this.rt.emit('error', err instanceof ApiError ? err : new ApiError('call_failed', String(err))));
  }
}
