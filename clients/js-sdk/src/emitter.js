/**
 * A very small typed event emitter.
 * @module emitter
 */

/** @template {Record<string, any>} Events */
export class Emitter {
  constructor() {
    /** @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
  }

  /**
   * @template {keyof Events & string} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} listener
   * @returns {() => void} call to remove the listener
   */
  on(event, listener) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  /**
   * @template {keyof Events & string} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} listener
   * @returns {() => void}
   */
  once(event, listener) {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /**
   * @template {keyof Events & string} K
   * @param {K} event
   * @param {(payload: Events[K]) => void} listener
   */
  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
  }

  /**
   * @template {keyof Events & string} K
   * @param {K} event
   * @param {Events[K]} payload
   */
  emit(event, payload) {
    const set = this._listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        listener(payload);
      } catch (err) {
        // A throwing listener must not break the SDK's own bookkeeping.
        if (typeof globalThis.reportError === 'function') globalThis.reportError(err);
        else console.error(err);
      }
    }
  }

  removeAllListeners() {
    this._listeners.clear();
  }
}
