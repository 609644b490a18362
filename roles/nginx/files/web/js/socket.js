// The WebSocket to /ws: reconnects by itself with exponential backoff and jitter, at once
// when the browser comes back online; a ping every 15 s finds a socket that died without
// a close (the answer must come within 10 s). Frames go to onFrame; the app catches up.
// A fresh access token is handed to the open socket (`auth` frame) before the one it
// opened with expires; a socket the server ends (4401: session ended or token expired)
// reconnects with a refreshed token.

const PING_EVERY_MS = 15_000;
const PONG_WITHIN_MS = 10_000;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 15_000;
const CLOSE_UNAUTHORIZED = 4401;

export class LiveSocket {
  /**
   * @param {{tokenFor: (forceRefresh: boolean) => Promise<string>, onFrame: Function,
   *          onState: Function, onOpen: Function}} options
   */
  constructor({ tokenFor, onFrame, onState, onOpen }) {
    this.tokenFor = tokenFor;
    this.onFrame = onFrame;
    this.onState = onState;
    this.onOpen = onOpen;
    this.ws = null;
    this.state = "offline";
    this.attempt = 0;
    this.failedBeforeOpen = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.running = false;
    this.gettingToken = false;
    this._online = () => this._reconnectNow();
    this._offline = () => this._drop("the browser is offline");
  }

  start() {
    if (this.running) return;
    this.running = true;
    globalThis.addEventListener("online", this._online);
    globalThis.addEventListener("offline", this._offline);
    this._connect();
  }

  stop() {
    this.running = false;
    this.gettingToken = false;
    globalThis.removeEventListener("online", this._online);
    globalThis.removeEventListener("offline", this._offline);
    clearTimeout(this.retryTimer);
    this._drop("stopped");
    this._setState("offline");
  }

  /** Send a frame now; false when the socket is not open (the caller keeps it for later). */
  send(frame) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || this.state !== "online") return false;
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Keep the open socket past its token's expiry: the server answers auth.ok. */
  renew(accessToken) {
    return this.send({ type: "auth", access_token: accessToken });
  }

  _setState(state) {
    if (state === this.state) return;
    this.state = state;
    this.onState(state);
  }

  async _connect() {
    clearTimeout(this.retryTimer);
    if (!this.running || this.ws || this.gettingToken) return;
    if (globalThis.navigator && globalThis.navigator.onLine === false) {
      this._setState("offline"); // the "online" event brings us back
      return;
    }
    this._setState("connecting");
    let token;
    this.gettingToken = true;
    try {
      // After two refused upgrades the token may be revoked or stale: refresh it.
      token = await this.tokenFor(this.failedBeforeOpen >= 2);
    } catch {
      this._retryLater();
      return;
    } finally {
      this.gettingToken = false;
    }
    if (!this.running || this.ws) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws?access_token=${encodeURIComponent(token)}`);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.failedBeforeOpen = 0;
      this._setState("online");
      this._heartbeat();
      this.onOpen();
    };
    ws.onmessage = (event) => {
      clearTimeout(this.pongTimer);
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (frame && frame.type !== "pong") this.onFrame(frame);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      // Refused before opening, or ended for its authority: the next try refreshes first.
      if (!opened) this.failedBeforeOpen += 1;
      if (event && event.code === CLOSE_UNAUTHORIZED) this.failedBeforeOpen = 2;
      this._forget();
      this._retryLater();
    };
    ws.onerror = () => {}; // onclose follows
  }

  _heartbeat() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => {
      if (!this.send({ type: "ping" })) return;
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => this._drop("no answer to ping"), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  _forget() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    if (this.ws) {
      this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
    }
    this.ws = null;
  }

  /** Give up this socket now (its close handshake may never finish) and reconnect later. */
  _drop(_reason) {
    const ws = this.ws;
    this._forget();
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    if (this.running) this._retryLater();
  }

  _retryLater() {
    if (!this.running) return;
    const offline = globalThis.navigator && globalThis.navigator.onLine === false;
    this._setState(offline ? "offline" : "connecting");
    if (offline) return;
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** this.attempt);
    this.attempt += 1;
    const delay = base / 2 + Math.random() * (base / 2);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this._connect(), delay);
  }

  _reconnectNow() {
    if (!this.running) return;
    this.attempt = 0;
    if (this.ws && this.state === "online") return;
    const ws = this.ws;
    this._forget();
    if (ws) {
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    this._connect();
  }
}
