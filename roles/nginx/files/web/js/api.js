// REST through nginx (same origin) and the session: the access token is refreshed a minute
// before it expires and once on a 401; every refresh rotates the refresh token (the
// contract: re-using a spent one revokes the whole family), so refreshes never overlap,
// not even across tabs (Web Locks where the browser has them).

const API = "/api/v1";
const STORAGE_KEY = "whatsapp.session";
const REFRESH_AHEAD_S = 60;

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code || "error";
  }
}

/** Seconds since the epoch at which a JWT expires (0 if it cannot be read). */
export function tokenExpiry(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return Number(JSON.parse(atob(part)).exp) || 0;
  } catch {
    return 0;
  }
}

/** The name this browser's session gets in the device list: the browser and its system,
 * from the user agent (at most 64 characters, as the API takes). */
export function deviceName(agent = globalThis.navigator?.userAgent || "") {
  const browser =
    [
      ["Edg/", "Edge"],
      ["Firefox/", "Firefox"],
      ["Chrome/", "Chrome"],
      ["Safari/", "Safari"],
    ].find(([token]) => agent.includes(token))?.[1] || "Browser";
  const system =
    [
      ["Android", "Android"],
      ["iPhone", "iPhone"],
      ["iPad", "iPad"],
      ["Windows", "Windows"],
      ["Mac OS", "macOS"],
      ["CrOS", "ChromeOS"],
      ["Linux", "Linux"],
    ].find(([token]) => agent.includes(token))?.[1] || "";
  return `${browser}${system ? ` on ${system}` : ""} (web)`.slice(0, 64);
}

async function errorOf(response) {
  let code = "error";
  let message = `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch {
    // not JSON: keep the status line
  }
  if (response.status === 429) {
    const wait = response.headers.get("Retry-After");
    if (wait) message += ` (try again in ${wait} s)`;
  }
  return new ApiError(response.status, code, message);
}

export class Session {
  constructor(storage = globalThis.localStorage) {
    this.storage = storage;
    this.data = this._read();
    this.skewMs = 0; // server clock minus ours, from the Date header
    this.refreshing = null;
    this.timer = null;
    this.onEnded = () => {};
    // A new access token (refreshed here or in another tab): the open socket renews with it.
    this.onAccessToken = () => {};
    // Another tab refreshed or logged out: follow it.
    globalThis.addEventListener?.("storage", (event) => {
      if (event.key !== STORAGE_KEY) return;
      const before = this.data;
      this.data = this._read();
      if (before && !this.data) this.onEnded("logged out in another tab");
      else {
        this._schedule();
        this._announce(before);
      }
    });
    this._schedule();
  }

  get user() {
    return this.data && this.data.user;
  }

  get loggedIn() {
    return Boolean(this.data && this.data.refresh_token);
  }

  now() {
    return Date.now() + this.skewMs;
  }

  _read() {
    try {
      return JSON.parse(this.storage.getItem(STORAGE_KEY) || "null");
    } catch {
      return null;
    }
  }

  _announce(before) {
    const token = this.data && this.data.access_token;
    if (token && token !== (before && before.access_token)) this.onAccessToken(token);
  }

  _save(data) {
    const before = this.data;
    this.data = data;
    if (data) this.storage.setItem(STORAGE_KEY, JSON.stringify(data));
    else this.storage.removeItem(STORAGE_KEY);
    this._schedule();
    this._announce(before);
  }

  _schedule() {
    clearTimeout(this.timer);
    if (!this.loggedIn) return;
    const exp = tokenExpiry(this.data.access_token) * 1000;
    const delay = Math.max(5_000, exp - this.now() - REFRESH_AHEAD_S * 1000);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), delay);
  }

  _adopt(pair, user) {
    this._save({
      access_token: pair.access_token,
      refresh_token: pair.refresh_token,
      user: user || pair.user || (this.data && this.data.user),
    });
  }

  async _fetch(method, path, body, token) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(API + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: "omit",
        cache: "no-store",
      });
    } catch {
      throw new ApiError(0, "network", "The server cannot be reached (offline?)");
    }
    const date = Date.parse(response.headers.get("Date") || "");
    if (!Number.isNaN(date)) this.skewMs = date - Date.now();
    return response;
  }

  // ---- accounts ----------------------------------------------------------------------------

  async register(phone, password, displayName) {
    const r = await this._fetch("POST", "/auth/register", {
      phone,
      password,
      display_name: displayName,
      device_name: deviceName(),
    });
    if (r.status !== 201) throw await errorOf(r);
    const body = await r.json();
    this._adopt(body, body.user);
    return body.user;
  }

  async login(phone, password) {
    const r = await this._fetch("POST", "/auth/login", { phone, password, device_name: deviceName() });
    if (!r.ok) throw await errorOf(r);
    const body = await r.json();
    this._adopt(body, body.user);
    if (!this.data.user) this._save({ ...this.data, user: await this.request("GET", "/users/me") });
    return this.data.user;
  }

  async logout() {
    const data = this.data;
    if (!data) return;
    try {
      const token = await this.accessToken().catch(() => data.access_token);
      await this._fetch("POST", "/auth/logout", { refresh_token: this.data?.refresh_token }, token);
    } finally {
      this._save(null);
    }
  }

  /** Every session of this user ends (this one too); the tokens here are forgotten. */
  async logoutAll() {
    if (!this.data) return;
    try {
      await this.request("POST", "/auth/logout-all");
    } finally {
      this._save(null);
    }
  }

  /** Delete the account (the password asked again); the tokens here are forgotten once it
   * is gone. A wrong password throws ApiError 401 without refreshing anything. */
  async deleteAccount(password) {
    const r = await this._fetch("DELETE", "/users/me", { password }, await this.accessToken());
    if (!r.ok) throw await errorOf(r);
    this._save(null);
  }

  // ---- tokens ------------------------------------------------------------------------------

  /** An access token valid for at least `minValidS` more seconds (refreshing if needed). */
  async accessToken(minValidS = 30) {
    if (!this.loggedIn) throw new ApiError(401, "unauthorized", "Not logged in");
    const exp = tokenExpiry(this.data.access_token) * 1000;
    if (exp - this.now() > minValidS * 1000) return this.data.access_token;
    await this.refresh();
    return this.data.access_token;
  }

  /** One refresh at a time (in this tab, and across tabs where Web Locks exist). */
  refresh() {
    if (!this.refreshing) {
      const spent = this.data && this.data.refresh_token;
      const run = () => this._refresh(spent);
      const locked = globalThis.navigator?.locks
        ? globalThis.navigator.locks.request("whatsapp-refresh", run)
        : run();
      this.refreshing = locked.finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  async _refresh(spent) {
    const stored = this._read();
    if (stored && stored.refresh_token && stored.refresh_token !== spent) {
      this.data = stored; // another tab rotated it already
      this._schedule();
      return;
    }
    if (!spent) throw new ApiError(401, "unauthorized", "Not logged in");
    const r = await this._fetch("POST", "/auth/refresh", { refresh_token: spent });
    if (r.status === 401) {
      this._save(null);
      this.onEnded("Your session has ended; please log in again.");
      throw await errorOf(r);
    }
    if (!r.ok) throw await errorOf(r);
    this._adopt(await r.json());
  }

  // ---- API calls ---------------------------------------------------------------------------

  /** Upload a file as the raw body (POST /media); `onProgress(fraction)` as it goes out.
   * XMLHttpRequest, since fetch reports no upload progress. Resolves with the stored file. */
  async upload(file, onProgress = () => {}) {
    const token = await this.accessToken();
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `${API}/media`);
      xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.setRequestHeader("Content-Type", file.type);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onerror = () => reject(new ApiError(0, "network", "The server cannot be reached (offline?)"));
      xhr.onload = () => {
        let body = null;
        try {
          body = JSON.parse(xhr.responseText);
        } catch {
          // not JSON: the status says it
        }
        if (xhr.status === 201) return resolve(body);
        const error = (body && body.error) || {};
        reject(new ApiError(xhr.status, error.code, error.message));
      };
      xhr.send(file);
    });
  }

  /** A file (or its thumbnail) as a Blob: images and audio are shown from object URLs,
   * since an <img> cannot send the access token. */
  async mediaBlob(id, thumbnail = false) {
    const path = `/media/${encodeURIComponent(id)}${thumbnail ? "/thumbnail" : ""}`;
    const get = async (token) =>
      fetch(API + path, { headers: { Authorization: `Bearer ${token}` }, credentials: "omit" });
    let r = await get(await this.accessToken());
    if (r.status === 401) {
      await this.refresh();
      r = await get(this.data.access_token);
    }
    if (!r.ok) throw await errorOf(r);
    return r.blob();
  }

  /** An authenticated call; a 401 refreshes the token once and tries again. */
  async request(method, path, body) {
    let r = await this._fetch(method, path, body, await this.accessToken());
    if (r.status === 401) {
      await this.refresh();
      r = await this._fetch(method, path, body, this.data.access_token);
    }
    if (!r.ok) throw await errorOf(r);
    if (r.status === 204) return null;
    return r.json();
  }
}
