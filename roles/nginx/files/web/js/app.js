// The web client's screens and their wiring: log in / register, the conversation list,
// a conversation. State lives in store.js, REST and tokens in api.js, the socket in
// socket.js. Text from users only ever reaches the page through textContent.

import { ApiError, Session } from "./api.js";
import { LiveSocket } from "./socket.js";
import { Store } from "./store.js";

const PAGE = 50;
const TYPING_SEND_EVERY_MS = 3_000;
const TYPING_IDLE_MS = 4_000;
const TYPING_SHOWN_MS = 6_000;
const PRESENCE_POLL_MS = 30_000;
const RETRY_SEND_MS = 2_000;
// The reactions offered by a message's "React" button (any 1..16 characters are allowed).
const REACTIONS = ["\u{1F44D}", "\u2764\uFE0F", "\u{1F602}", "\u{1F62E}", "\u{1F622}", "\u{1F64F}"];

const $ = (id) => document.getElementById(id);

// The contract's default media_max_bytes (the server answers 413 above its own).
const MEDIA_MAX_BYTES = 16 * 1024 * 1024;

function formatSize(bytes) {
  if (!bytes) return "file";
  if (bytes < 1024 * 1024) return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

function validPhone(value) {
  return /^\+[0-9]{8,15}$/.test(value);
}

function timeOf(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const hm = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return sameDay ? hm : `${d.toLocaleDateString([], { day: "numeric", month: "short" })} ${hm}`;
}

/** A small clock drawn by CSS (pending, disappearing): no emoji font needed. */
function icon(kind) {
  return el("span", { class: `icon icon-${kind}`, "aria-hidden": "true" });
}

const TICKS = {
  pending: [null, "Sending"],
  failed: ["!", "Not sent"],
  sent: ["\u2713", "Sent"],
  delivered: ["\u2713\u2713", "Delivered"],
  read: ["\u2713\u2713", "Read"],
};

class App {
  constructor() {
    this.session = new Session();
    this.session.onEnded = (why) => this.showAuth(why);
    this.store = null;
    this.live = null;
    this.users = new Map(); // user_id -> user (display names)
    this.presence = new Map(); // user_id -> {online, last_seen}
    this.typing = new Map(); // conversation_id -> Map(user_id -> timer)
    this.openId = null;
    this.outbox = new Map(); // client_msg_id -> frame, until acknowledged
    this.receiptTimers = new Map();
    this.typingSentAt = 0;
    this.typingStopTimer = null;
    this.expiryTimer = null;
    this.presenceTimer = null;
    this.messageNodes = new Map(); // key -> <li>
    this.generation = 0; // a new one per log in: late answers of an ended session are dropped
    this.bind();
    if (this.session.loggedIn) this.startApp();
    else this.showAuth();
  }

  // ---- screens -----------------------------------------------------------------------------

  setView(view) {
    document.body.dataset.view = view;
  }

  showAuth(message = "") {
    this.stopApp();
    $("app-view").hidden = true;
    $("auth-view").hidden = false;
    for (const id of ["connection-status", "me-name", "sessions-button", "logout-button"]) $(id).hidden = true;
    $("auth-error").textContent = message;
    this.setView("auth");
    $("login-form").hidden = false;
    $("register-form").hidden = true;
    $("auth-title").textContent = "Log in";
  }

  async startApp() {
    const generation = ++this.generation;
    const me = this.session.user;
    this.store = new Store(me.id);
    this.users.set(me.id, me);
    $("auth-view").hidden = true;
    $("app-view").hidden = false;
    $("me-name").textContent = me.display_name;
    for (const id of ["connection-status", "me-name", "sessions-button", "logout-button"]) $(id).hidden = false;
    this.setView("list");
    this.restoreOutbox();
    try {
      await this.loadConversations();
    } catch (error) {
      if (generation === this.generation) this.toast(`Conversations not loaded: ${error.message}`);
    }
    // The session may have ended meanwhile (a refused refresh): then the login form stays.
    if (generation !== this.generation || !this.session.loggedIn) return;
    this.live = new LiveSocket({
      tokenFor: (force) => (force ? this.session.refresh() : Promise.resolve()).then(() => this.session.accessToken()),
      onFrame: (frame) => this.onFrame(frame),
      onState: (state) => this.onSocketState(state),
      onOpen: () => this.onSocketOpen(),
    });
    this.session.onAccessToken = (token) => this.live && this.live.renew(token);
    this.live.start();
    this.scheduleExpiry();
  }

  stopApp() {
    this.generation += 1;
    if (this.live) this.live.stop();
    this.live = null;
    this.store = null;
    this.openId = null;
    this.outbox.clear();
    this.messageNodes.clear();
    $("conversation-list").replaceChildren();
    $("messages").replaceChildren();
    $("chat-body").hidden = true;
    $("chat-placeholder").hidden = false;
    clearInterval(this.presenceTimer);
    clearTimeout(this.expiryTimer);
  }

  toast(text) {
    const node = $("toast");
    node.textContent = text;
    node.hidden = false;
    clearTimeout(this.toastTimer);
    this.toastTimer = setTimeout(() => {
      node.hidden = true;
    }, 5_000);
  }

  // ---- event wiring ------------------------------------------------------------------------

  bind() {
    $("show-register").addEventListener("click", () => {
      $("login-form").hidden = true;
      $("register-form").hidden = false;
      $("auth-title").textContent = "Create an account";
      $("auth-error").textContent = "";
      $("register-name").focus();
    });
    $("show-login").addEventListener("click", () => {
      $("register-form").hidden = true;
      $("login-form").hidden = false;
      $("auth-title").textContent = "Log in";
      $("auth-error").textContent = "";
      $("login-phone").focus();
    });
    $("login-form").addEventListener("submit", (e) => this.onLogin(e));
    $("register-form").addEventListener("submit", (e) => this.onRegister(e));
    $("logout-button").addEventListener("click", () => this.onLogout());
    $("sessions-button").addEventListener("click", () => this.openSessions());
    $("logout-all-button").addEventListener("click", () => this.onLogoutAll());
    $("export-button").addEventListener("click", () => this.onExport());
    $("delete-account-button").addEventListener("click", () => {
      $("delete-account-password").value = "";
      $("delete-account-error").textContent = "";
      $("delete-account-dialog").showModal();
    });
    $("delete-account-form").addEventListener("submit", (e) => {
      e.preventDefault();
      this.onDeleteAccount();
    });
    $("new-chat-button").addEventListener("click", () => this.openDialog("new-chat-dialog", "new-chat-phone"));
    $("new-group-button").addEventListener("click", () => this.openDialog("new-group-dialog", "new-group-name"));
    $("new-chat-form").addEventListener("submit", (e) => this.onNewChat(e));
    $("new-group-form").addEventListener("submit", (e) => this.onNewGroup(e));
    for (const button of document.querySelectorAll("dialog .cancel")) {
      button.addEventListener("click", () => button.closest("dialog").close());
    }
    $("back-button").addEventListener("click", () => this.closeConversation());
    $("load-older").addEventListener("click", () => this.loadOlder());
    $("message-scroller").addEventListener("scroll", () => {
      if ($("message-scroller").scrollTop < 40 && !$("load-older").hidden) this.loadOlder();
    });
    $("composer").addEventListener("submit", (e) => {
      e.preventDefault();
      this.sendTyped();
    });
    $("reply-cancel").addEventListener("click", () => this.setReplyTo(null));
    $("attach-button").addEventListener("click", () => $("attach-input").click());
    $("attach-input").addEventListener("change", () => this.setAttachment($("attach-input").files[0] || null));
    $("attach-cancel").addEventListener("click", () => this.setAttachment(null));
    const input = $("message-input");
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        this.sendTyped();
      }
    });
    input.addEventListener("input", () => this.onTypingInput());
    input.addEventListener("blur", () => this.stopTyping());
    $("ttl-select").addEventListener("change", () => {
      if (this.openId) localStorage.setItem(this.ttlKey(this.openId), $("ttl-select").value);
    });
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.sendReadMark();
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && document.body.dataset.view === "chat" && !document.querySelector("dialog[open]")) {
        this.closeConversation();
      }
    });
  }

  openDialog(id, focusId) {
    const dialog = $(id);
    dialog.querySelector("form").reset();
    for (const node of dialog.querySelectorAll(".error")) node.textContent = "";
    dialog.showModal();
    $(focusId).focus();
  }

  // ---- accounts ----------------------------------------------------------------------------

  async onLogin(event) {
    event.preventDefault();
    const phone = $("login-phone").value.trim();
    const password = $("login-password").value;
    if (!validPhone(phone)) return this.authError("Enter the phone number as + and 8 to 15 digits.");
    if (password.length < 8) return this.authError("The password has at least 8 characters.");
    await this.authCall("login-button", () => this.session.login(phone, password));
  }

  async onRegister(event) {
    event.preventDefault();
    const name = $("register-name").value.trim();
    const phone = $("register-phone").value.trim();
    const password = $("register-password").value;
    if (!name || name.length > 64) return this.authError("Enter your name (1 to 64 characters).");
    if (!validPhone(phone)) return this.authError("Enter the phone number as + and 8 to 15 digits.");
    if (password.length < 8) return this.authError("Choose a password of at least 8 characters.");
    await this.authCall("register-button", () => this.session.register(phone, password, name));
  }

  authError(text) {
    $("auth-error").textContent = text;
  }

  async authCall(buttonId, call) {
    const button = $(buttonId);
    button.disabled = true;
    this.authError("");
    try {
      await call();
      for (const form of ["login-form", "register-form"]) $(form).reset();
      await this.startApp();
    } catch (error) {
      this.authError(
        error.status === 409 ? "This phone number is already registered: log in instead." : error.message,
      );
    } finally {
      button.disabled = false;
    }
  }

  async onLogout() {
    try {
      await this.session.logout();
    } catch (error) {
      // The tokens are forgotten here whatever the server said.
      console.warn("logout:", error.message);
    }
    this.clearOutbox();
    this.showAuth("You are logged out.");
  }

  // ---- sessions (this user's devices) ------------------------------------------------------

  async openSessions() {
    $("sessions-error").textContent = "";
    $("sessions-list").replaceChildren();
    $("sessions-dialog").showModal();
    await this.loadSessions();
  }

  async loadSessions() {
    let answer;
    try {
      answer = await this.session.request("GET", "/sessions");
    } catch (error) {
      $("sessions-error").textContent = error.message;
      return;
    }
    const items = answer.sessions.map((s) =>
      el(
        "li",
        { class: "session", "data-session-id": s.id, "data-current": s.current },
        el("span", { class: "session-name", text: s.device_name || "Unnamed device" }),
        el("span", { class: "session-when", text: s.current ? "this device" : `last used ${timeOf(s.last_used_at)}` }),
        s.current
          ? null
          : el("button", {
              type: "button",
              class: "link-button session-logout",
              text: "Log out",
              "aria-label": `Log out ${s.device_name || "this unnamed device"}`,
              onclick: () => this.onLogoutSession(s.id),
            }),
      ),
    );
    $("sessions-list").replaceChildren(...items);
  }

  async onLogoutSession(id) {
    try {
      await this.session.request("DELETE", `/sessions/${encodeURIComponent(id)}`);
    } catch (error) {
      // 404: it had ended already; the list below shows what is left either way.
      if (error.status !== 404) $("sessions-error").textContent = error.message;
    }
    await this.loadSessions();
  }

  async onLogoutAll() {
    try {
      await this.session.logoutAll();
    } catch (error) {
      console.warn("logout-all:", error.message);
    }
    $("sessions-dialog").close();
    this.clearOutbox();
    this.showAuth("You are logged out on every device.");
  }

  // ---- my data: export and deletion -------------------------------------------------------

  async onExport() {
    try {
      const data = await this.session.request("GET", "/users/me/export");
      const url = URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], { type: "application/json" }));
      const link = el("a", { href: url, download: "whatsapp-export.json", hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      $("sessions-error").textContent = `Not exported: ${error.message}`;
    }
  }

  async onDeleteAccount() {
    const password = $("delete-account-password").value;
    if (!password) return ($("delete-account-error").textContent = "Enter your password.");
    try {
      await this.session.deleteAccount(password);
    } catch (error) {
      $("delete-account-error").textContent = error.status === 401 ? "Wrong password." : error.message;
      return;
    }
    $("delete-account-dialog").close();
    $("sessions-dialog").close();
    this.clearOutbox();
    this.showAuth("Your account is deleted.");
  }

  // ---- conversations -----------------------------------------------------------------------

  async loadConversations() {
    // Every page of the list (200 a page, newest activity first).
    const conversations = [];
    let before = null;
    do {
      const query = before ? `?limit=200&before=${encodeURIComponent(before)}` : "?limit=200";
      const page = await this.session.request("GET", `/conversations${query}`);
      conversations.push(...page.conversations);
      before = page.next_before;
    } while (before);
    const seen = new Set();
    for (const c of conversations) {
      this.store.upsertConversation(c);
      this.store.importMarks(c.id, this.readMarks(c.id));
      seen.add(c.id);
    }
    for (const id of [...this.store.conversations.keys()]) if (!seen.has(id)) this.store.removeConversation(id);
    await this.loadNames(conversations.flatMap((c) => c.members.map((m) => m.user_id)));
    this.renderList();
    if (this.openId && !this.store.conversation(this.openId)) this.closeConversation();
  }

  async loadNames(ids) {
    const missing = [...new Set(ids)].filter((id) => !this.users.has(id));
    await Promise.all(
      missing.map(async (id) => {
        try {
          this.users.set(id, await this.session.request("GET", `/users/${id}`));
        } catch {
          this.users.set(id, { id, display_name: "Unknown user" });
        }
      }),
    );
  }

  nameOf(userId) {
    const user = this.users.get(userId);
    return user ? user.display_name : "\u2026";
  }

  titleOf(conv) {
    if (conv.type === "group") return conv.title || "Group";
    const other = this.store.otherMembers(conv)[0];
    return other ? this.nameOf(other) : "Only you";
  }

  async ensureConversation(id) {
    if (this.store.conversation(id)) return this.store.conversation(id);
    const c = await this.session.request("GET", `/conversations/${id}`);
    const conv = this.store.upsertConversation(c);
    await this.loadNames(c.members.map((m) => m.user_id));
    return conv;
  }

  renderList() {
    if (!this.store) return;
    const list = $("conversation-list");
    const items = this.store.sortedConversations().map((conv) => {
      const last = conv.last;
      let preview = "";
      if (last) {
        const who = last.sender_id === this.store.me ? "You: " : conv.type === "group" ? `${this.nameOf(last.sender_id)}: ` : "";
        preview = last.status === "deleted" ? `${who}message deleted` : who + last.body;
      }
      const unread = conv.id === this.openId && document.visibilityState === "visible" ? 0 : conv.unread;
      const title = this.titleOf(conv);
      const label = `${title}${unread ? `, ${unread} unread` : ""}${preview ? `, last message: ${preview}` : ""}`;
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            class: "conv",
            "data-id": conv.id,
            "aria-current": conv.id === this.openId ? "true" : "false",
            "aria-label": label,
            onclick: () => this.openConversation(conv.id),
          },
          el("span", { class: "name", text: title }),
          el("span", { class: "when", text: last ? timeOf(last.created_at) : "" }),
          el("span", { class: "last", text: preview || (conv.type === "group" ? "New group" : "No messages yet") }),
          unread ? el("span", { class: "unread", text: String(unread) }) : el("span", {}),
        ),
      );
    });
    const focused = document.activeElement && document.activeElement.closest?.("#conversation-list .conv");
    list.replaceChildren(...items);
    if (focused) list.querySelector(`.conv[data-id="${focused.dataset.id}"]`)?.focus();
    $("no-conversations").hidden = items.length > 0;
  }

  async onNewChat(event) {
    event.preventDefault();
    const phone = $("new-chat-phone").value.trim();
    const error = $("new-chat-error");
    if (!validPhone(phone)) {
      error.textContent = "Enter the phone number as + and 8 to 15 digits.";
      return;
    }
    try {
      const { users } = await this.session.request("GET", `/users?phone=${encodeURIComponent(phone)}`);
      if (!users.length) {
        error.textContent = "Nobody has registered this number.";
        return;
      }
      const other = users[0];
      if (other.id === this.store.me) {
        error.textContent = "That is your own number.";
        return;
      }
      this.users.set(other.id, other);
      // A number typed here is a contact: its presence then reaches this client live.
      await this.session.request("POST", "/contacts", { user_id: other.id }).catch(() => null);
      const c = await this.session.request("POST", "/conversations", { type: "direct", member_id: other.id });
      this.store.upsertConversation(c);
      $("new-chat-dialog").close();
      this.renderList();
      await this.openConversation(c.id);
    } catch (e) {
      error.textContent = e.message;
    }
  }

  async onNewGroup(event) {
    event.preventDefault();
    const title = $("new-group-name").value.trim();
    const phones = $("new-group-phones").value.split(/[\s,;]+/).filter(Boolean);
    const error = $("new-group-error");
    if (!title) return void (error.textContent = "Give the group a name.");
    const bad = phones.filter((p) => !validPhone(p));
    if (!phones.length || bad.length) {
      error.textContent = bad.length ? `Not a phone number: ${bad.join(", ")}` : "Add at least one member.";
      return;
    }
    try {
      const found = await Promise.all(
        phones.map((p) => this.session.request("GET", `/users?phone=${encodeURIComponent(p)}`)),
      );
      const unknown = phones.filter((_, i) => !found[i].users.length);
      if (unknown.length) {
        error.textContent = `Nobody has registered: ${unknown.join(", ")}`;
        return;
      }
      const members = found.map((f) => f.users[0]);
      for (const u of members) this.users.set(u.id, u);
      const c = await this.session.request("POST", "/conversations", {
        type: "group",
        title,
        member_ids: members.map((u) => u.id),
      });
      this.store.upsertConversation(c);
      $("new-group-dialog").close();
      this.renderList();
      await this.openConversation(c.id);
    } catch (e) {
      error.textContent = e.message;
    }
  }

  // ---- one conversation --------------------------------------------------------------------

  async openConversation(id) {
    const conv = this.store.conversation(id);
    if (!conv) return;
    if (this.openId !== id) {
      this.stopTyping();
      this.openId = id;
      this.messageNodes.clear();
      $("messages").replaceChildren();
      $("message-input").value = "";
      this.setReplyTo(null);
    }
    $("chat-placeholder").hidden = true;
    $("chat-body").hidden = false;
    $("chat-title").textContent = this.titleOf(conv);
    $("ttl-select").value = localStorage.getItem(this.ttlKey(id)) || "";
    this.setView("chat");
    this.renderList();
    this.renderTyping();
    this.renderMessages({ toBottom: true });
    $("message-input").focus();
    this.watchPresence(conv);
    try {
      await this.loadLatest(id);
    } catch (error) {
      this.toast(`History not loaded: ${error.message}`);
    }
  }

  closeConversation() {
    this.stopTyping();
    this.openId = null;
    clearInterval(this.presenceTimer);
    $("chat-body").hidden = true;
    $("chat-placeholder").hidden = false;
    this.setView("list");
    this.renderList();
    const first = document.querySelector("#conversation-list .conv");
    if (first) first.focus();
  }

  async loadLatest(id) {
    const page = await this.session.request("GET", `/conversations/${id}/messages?limit=${PAGE}`);
    if (!this.store) return;
    this.store.addPage(id, page, { latest: true });
    if (this.openId === id) {
      this.renderMessages({ toBottom: true });
      this.sendReadMark();
    }
    this.renderList();
    this.scheduleExpiry();
  }

  async loadOlder() {
    const id = this.openId;
    const conv = id && this.store.conversation(id);
    if (!conv || this.loadingOlder || conv.hasOlder === false) return;
    const before = this.store.minSeq(conv);
    if (before === null || before <= 1) return;
    this.loadingOlder = true;
    try {
      const page = await this.session.request(
        "GET",
        `/conversations/${id}/messages?before_seq=${before}&limit=${PAGE}`,
      );
      const scroller = $("message-scroller");
      const fromBottom = scroller.scrollHeight - scroller.scrollTop;
      this.store.addPage(id, page);
      this.renderMessages();
      scroller.scrollTop = scroller.scrollHeight - fromBottom; // keep the reader's place
    } catch (error) {
      this.toast(`Older messages not loaded: ${error.message}`);
    } finally {
      this.loadingOlder = false;
    }
  }

  async fillGap(conversationId, [from, to]) {
    // The messages between the last one held and this one: history before `to + 1`.
    const limit = Math.min(100, to - from + 1);
    try {
      const page = await this.session.request(
        "GET",
        `/conversations/${conversationId}/messages?before_seq=${to + 1}&limit=${limit}`,
      );
      this.store.gapFilled(conversationId, page);
      if (this.openId === conversationId) this.renderMessages();
    } catch (error) {
      console.warn("gap not filled:", error.message);
    }
  }

  renderMessages({ toBottom = false } = {}) {
    if (!this.openId || !this.store) return;
    const conv = this.store.conversation(this.openId);
    const scroller = $("message-scroller");
    const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 80;
    const timeline = this.store.timeline(this.openId);
    const keep = new Set();
    const nodes = timeline.map((m) => {
      const key = m.id || `pending:${m.client_msg_id}`;
      keep.add(key);
      let node = this.messageNodes.get(key);
      if (!node && m.id && m.client_msg_id && this.messageNodes.has(`pending:${m.client_msg_id}`)) {
        node = this.messageNodes.get(`pending:${m.client_msg_id}`); // acked: same bubble
        this.messageNodes.delete(`pending:${m.client_msg_id}`);
        this.messageNodes.set(key, node);
      }
      if (!node) {
        node = this.messageNode(conv, m);
        this.messageNodes.set(key, node);
      }
      this.updateMessageNode(node, m);
      return node;
    });
    for (const key of [...this.messageNodes.keys()]) if (!keep.has(key)) this.messageNodes.delete(key);
    const list = $("messages");
    // Reorder only when needed (keeps focus and the screen reader's place).
    const current = [...list.children];
    if (current.length !== nodes.length || current.some((n, i) => n !== nodes[i])) list.replaceChildren(...nodes);
    $("load-older").hidden = !(conv && conv.hasOlder);
    if (toBottom || nearBottom) scroller.scrollTop = scroller.scrollHeight;
  }

  messageNode(conv, m) {
    const mine = m.sender_id === this.store.me;
    const node = el("li", { class: mine ? "msg mine" : "msg" });
    if (!mine && conv && conv.type === "group") node.append(el("p", { class: "sender", text: this.nameOf(m.sender_id) }));
    node.append(el("blockquote", { class: "quote", hidden: true }));
    node.append(el("div", { class: "media", hidden: true }));
    node.append(el("p", { class: "body" }));
    node.append(el("div", { class: "reactions", hidden: true }));
    const actions = el("div", { class: "actions" });
    actions.append(
      el("button", { type: "button", class: "reply", text: "Reply", onclick: () => this.setReplyTo(node.dataset.id) }),
      el("button", { type: "button", class: "react", text: "React", "aria-expanded": "false", onclick: () => this.togglePicker(node) }),
    );
    if (mine) actions.append(el("button", { type: "button", class: "edit", text: "Edit", hidden: true, onclick: () => this.editMessage(node.dataset.id) }));
    const picker = el("div", { class: "picker", role: "group", "aria-label": "Reactions", hidden: true });
    for (const emoji of REACTIONS) {
      picker.append(el("button", { type: "button", class: "pick", text: emoji, "data-emoji": emoji, onclick: () => this.react(node.dataset.id, emoji) }));
    }
    node.append(actions, picker);
    const meta = el("div", { class: "meta" });
    meta.append(el("span", { class: "timer", hidden: true }), el("span", { class: "edited", text: "edited", hidden: true }), el("time", {}));
    if (mine) {
      meta.append(el("span", { class: "tick", role: "img" }));
      meta.append(
        el("button", {
          type: "button",
          class: "delete",
          text: "Delete",
          hidden: true,
          onclick: () => this.confirmDelete(node.dataset.id),
        }),
      );
    }
    node.append(meta);
    return node;
  }

  /** A message's file: an image by its thumbnail (the whole photo opens on a click), audio
   * with a player, anything else as a download. Fetched once per file (object URLs). */
  updateMedia(box, media) {
    const id = media && media.id;
    box.hidden = !id;
    if ((box.dataset.mediaId || "") === (id || "")) return;
    box.dataset.mediaId = id || "";
    box.replaceChildren();
    if (!id) return;
    const type = media.content_type || "";
    const show = (blob, make) => box.dataset.mediaId === id && box.replaceChildren(make(URL.createObjectURL(blob)));
    const failed = () => box.dataset.mediaId === id && box.replaceChildren(el("p", { class: "media-error", text: "The file is not available." }));
    if (type.startsWith("image/")) {
      box.append(el("p", { class: "media-loading", text: "Loading the photo\u2026" }));
      this.session
        .mediaBlob(id, true)
        .then((blob) =>
          show(blob, (url) =>
            el("img", {
              class: "thumb",
              src: url,
              alt: "Photo",
              onclick: () => this.session.mediaBlob(id).then((full) => window.open(URL.createObjectURL(full), "_blank")),
            }),
          ),
        )
        .catch(failed);
    } else if (type.startsWith("audio/")) {
      this.session
        .mediaBlob(id)
        .then((blob) => show(blob, (url) => el("audio", { class: "voice", controls: true, src: url })))
        .catch(failed);
    } else {
      const label = type === "application/pdf" ? "Document" : type.startsWith("video/") ? "Video" : "File";
      box.append(
        el("button", {
          type: "button",
          class: "file link-button",
          text: `${label} (${formatSize(media.size)}): open`,
          onclick: () => this.session.mediaBlob(id).then((blob) => window.open(URL.createObjectURL(blob), "_blank")).catch(failed),
        }),
      );
    }
  }

  updateMessageNode(node, m) {
    const mine = m.sender_id === this.store.me;
    const deleted = m.status === "deleted";
    if (m.id) node.dataset.id = m.id;
    if (m.seq) node.dataset.seq = String(m.seq);
    if (m.client_msg_id) node.dataset.clientMsgId = m.client_msg_id;
    node.classList.toggle("deleted", deleted);
    node.querySelector(".body").textContent = deleted ? "This message was deleted" : m.body;
    this.updateMedia(node.querySelector(".media"), deleted ? null : m.media);
    node.querySelector(".edited").hidden = deleted || !m.edited_at;
    const quote = node.querySelector(".quote");
    const quoted = !deleted && this.store.quoted(m);
    quote.hidden = !m.reply_to || deleted;
    if (m.reply_to) {
      quote.dataset.replyTo = m.reply_to;
      quote.textContent = quoted
        ? `${this.nameOf(quoted.sender_id)}: ${quoted.status === "deleted" ? "This message was deleted" : quoted.body}`
        : "A reply to an earlier message";
    }
    const reactions = node.querySelector(".reactions");
    const summary = deleted ? [] : this.store.reactionSummary(m);
    reactions.hidden = summary.length === 0;
    reactions.replaceChildren(
      ...summary.map((r) =>
        el("span", { class: r.mine ? "reaction mine" : "reaction", "data-emoji": r.emoji, "data-count": r.count, text: `${r.emoji} ${r.count}` }),
      ),
    );
    node.querySelector(".actions").hidden = deleted || !m.id;
    if (deleted || !m.id) node.querySelector(".picker").hidden = true;
    const edit = node.querySelector(".edit");
    if (edit) edit.hidden = !this.store.editable(m);
    const time = node.querySelector("time");
    time.textContent = timeOf(m.created_at);
    time.dateTime = m.created_at;
    const timer = node.querySelector(".timer");
    timer.hidden = !m.expires_at;
    if (m.expires_at) {
      if (!timer.firstChild) timer.append(icon("timer"));
      timer.title = `Disappears at ${new Date(m.expires_at).toLocaleString()}`;
      timer.setAttribute("aria-label", timer.title);
    }
    if (mine) {
      const status = this.store.tickOf(m);
      node.dataset.status = status;
      const tick = node.querySelector(".tick");
      const [glyph, label] = TICKS[status];
      if (deleted) tick.replaceChildren();
      else if (glyph) tick.textContent = glyph;
      else tick.replaceChildren(icon("clock"));
      tick.setAttribute("aria-label", label);
      tick.title = m.failed ? `${label}: ${m.failed}` : label;
      node.querySelector(".delete").hidden = deleted || !m.id;
      node.querySelector(".delete").setAttribute("aria-label", `Delete for everyone: ${m.body.slice(0, 40)}`);
    } else {
      node.dataset.status = deleted ? "deleted" : "received";
    }
  }

  confirmDelete(messageId) {
    const conv = this.store.conversation(this.openId);
    const m = conv && conv.messages.get(messageId);
    if (!m) return;
    const dialog = $("delete-dialog");
    $("delete-preview").textContent = m.body;
    dialog.returnValue = "";
    dialog.onclose = async () => {
      if (dialog.returnValue !== "delete") return;
      try {
        await this.session.request("DELETE", `/messages/${encodeURIComponent(messageId)}`);
        this.store.markDeleted(m.conversation_id, messageId);
        this.renderMessages();
        this.renderList();
      } catch (error) {
        this.toast(`Not deleted: ${error.message}`);
      }
    };
    dialog.showModal();
    $("delete-confirm").focus();
  }

  /** The message the next one answers (null: none); shown above the message box. */
  setReplyTo(messageId) {
    const conv = this.openId && this.store ? this.store.conversation(this.openId) : null;
    const m = messageId && conv ? conv.messages.get(messageId) : null;
    this.replyTo = m ? m.id : null;
    $("reply-banner").hidden = !m;
    $("reply-preview").textContent = m ? `${this.nameOf(m.sender_id)}: ${m.body}` : "";
    if (m) $("message-input").focus();
  }

  togglePicker(node) {
    const picker = node.querySelector(".picker");
    picker.hidden = !picker.hidden;
    node.querySelector(".react").setAttribute("aria-expanded", String(!picker.hidden));
    if (!picker.hidden) picker.querySelector(".pick").focus();
  }

  /** React with `emoji`; the same emoji again takes my reaction back. */
  async react(messageId, emoji) {
    const conv = this.store.conversation(this.openId);
    const m = conv && conv.messages.get(messageId);
    if (!m) return;
    const node = this.messageNodes.get(messageId);
    if (node) node.querySelector(".picker").hidden = true;
    const takingBack = this.store.myReaction(m) === emoji;
    const path = `/messages/${encodeURIComponent(messageId)}/reaction`;
    try {
      if (takingBack) await this.session.request("DELETE", path);
      else await this.session.request("PUT", path, { emoji });
      this.store.applyReaction({ conversation_id: m.conversation_id, message_id: m.id, user_id: this.store.me, emoji: takingBack ? null : emoji });
      this.renderMessages();
    } catch (error) {
      this.toast(`Reaction not saved: ${error.message}`);
    }
  }

  editMessage(messageId) {
    const conv = this.store.conversation(this.openId);
    const m = conv && conv.messages.get(messageId);
    if (!m || !this.store.editable(m)) return;
    const dialog = $("edit-dialog");
    const input = $("edit-input");
    input.value = m.body;
    $("edit-error").textContent = "";
    dialog.returnValue = "";
    dialog.onclose = async () => {
      const body = input.value.trim();
      if (dialog.returnValue !== "save" || !body || body === m.body) return;
      try {
        const edited = await this.session.request("PATCH", `/messages/${encodeURIComponent(messageId)}`, { body });
        this.store.applyEdit(edited);
        this.renderMessages();
        this.renderList();
      } catch (error) {
        this.toast(`Not edited: ${error.message}`);
      }
    };
    dialog.showModal();
    input.focus();
  }

  ttlKey(conversationId) {
    return `whatsapp.ttl.${this.store.me}.${conversationId}`;
  }

  // ---- presence and typing -------------------------------------------------------------

  watchPresence(conv) {
    clearInterval(this.presenceTimer);
    const other = conv.type === "direct" ? this.store.otherMembers(conv)[0] : null;
    this.renderStatus();
    if (!other) return;
    const poll = async () => {
      try {
        const p = await this.session.request("GET", `/users/${other}/presence`);
        this.presence.set(other, p);
        this.renderStatus();
      } catch {
        // shown as unknown
      }
    };
    poll();
    // Presence frames reach only a user's contacts: poll as well, slowly.
    this.presenceTimer = setInterval(poll, PRESENCE_POLL_MS);
  }

  renderStatus() {
    const conv = this.openId && this.store.conversation(this.openId);
    if (!conv) return;
    const status = $("chat-status");
    if (conv.type === "group") {
      const names = (conv.members || []).map((m) => (m.user_id === this.store.me ? "You" : this.nameOf(m.user_id)));
      status.textContent = names.join(", ");
      return;
    }
    const p = this.presence.get(this.store.otherMembers(conv)[0]);
    if (!p) status.textContent = "";
    else if (p.online) status.textContent = "online";
    else if (p.last_seen) status.textContent = `last seen ${timeOf(p.last_seen)}`;
    else status.textContent = "";
  }

  onTypingInput() {
    if (!this.openId) return;
    const now = Date.now();
    if (now - this.typingSentAt > TYPING_SEND_EVERY_MS) {
      this.typingSentAt = now;
      this.live?.send({ type: "typing", conversation_id: this.openId, state: "start" });
    }
    clearTimeout(this.typingStopTimer);
    this.typingStopTimer = setTimeout(() => this.stopTyping(), TYPING_IDLE_MS);
  }

  stopTyping() {
    clearTimeout(this.typingStopTimer);
    if (this.typingSentAt && this.openId) {
      this.live?.send({ type: "typing", conversation_id: this.openId, state: "stop" });
    }
    this.typingSentAt = 0;
  }

  onTypingFrame({ conversation_id, user_id, state }) {
    const who = this.typing.get(conversation_id) || new Map();
    clearTimeout(who.get(user_id));
    if (state === "start") {
      // A lost "stop" must not leave the indicator on for ever.
      who.set(user_id, setTimeout(() => this.onTypingFrame({ conversation_id, user_id, state: "stop" }), TYPING_SHOWN_MS));
    } else {
      who.delete(user_id);
    }
    this.typing.set(conversation_id, who);
    if (conversation_id === this.openId) this.renderTyping();
  }

  renderTyping() {
    const node = $("typing-indicator");
    const who = this.openId ? [...(this.typing.get(this.openId)?.keys() || [])] : [];
    node.hidden = who.length === 0;
    const conv = this.openId && this.store.conversation(this.openId);
    if (!who.length) node.textContent = "";
    else if (conv && conv.type === "direct") node.textContent = "typing\u2026";
    else node.textContent = `${who.map((id) => this.nameOf(id)).join(", ")} ${who.length > 1 ? "are" : "is"} typing\u2026`;
  }

  // ---- sending -----------------------------------------------------------------------------

  /** The file chosen to go with the next message: a preview (images) and its name. */
  setAttachment(file) {
    if (file && file.size > MEDIA_MAX_BYTES) {
      this.toast("A file has at most 16 MiB.");
      file = null;
    }
    if (this.attachmentUrl) URL.revokeObjectURL(this.attachmentUrl);
    this.attachment = file;
    this.attachmentUrl = file && file.type.startsWith("image/") ? URL.createObjectURL(file) : null;
    $("attach-banner").hidden = !file;
    $("attach-preview").hidden = !this.attachmentUrl;
    if (this.attachmentUrl) $("attach-preview").src = this.attachmentUrl;
    $("attach-name").textContent = file ? `${file.name} (${formatSize(file.size)})` : "";
    $("attach-progress").hidden = true;
    if (!file) $("attach-input").value = "";
  }

  /** Upload the chosen file, the banner's bar following it; its `message.media`, or null. */
  async uploadAttachment() {
    const progress = $("attach-progress");
    progress.hidden = false;
    progress.value = 0;
    $("attach-button").disabled = true;
    try {
      const stored = await this.session.upload(this.attachment, (f) => {
        progress.value = Math.round(f * 100);
      });
      return { id: stored.id, content_type: stored.content_type, size: stored.size };
    } catch (error) {
      this.toast(`The file was not sent: ${error.message}`);
      progress.hidden = true;
      return null;
    } finally {
      $("attach-button").disabled = false;
    }
  }

  async sendTyped() {
    const input = $("message-input");
    const body = input.value.trim();
    if ((!body && !this.attachment) || !this.openId || this.uploading) return;
    if (body.length > 4096) return this.toast("A message has at most 4096 characters.");
    this.stopTyping();
    const conversationId = this.openId;
    let media;
    if (this.attachment) {
      this.uploading = true; // Enter again while the file goes out sends nothing twice
      try {
        media = await this.uploadAttachment();
      } finally {
        this.uploading = false;
      }
      if (!media) return;
      this.setAttachment(null);
    }
    const ttl = Number($("ttl-select").value) || undefined;
    const replyTo = this.replyTo || undefined;
    const pending = this.store.addPending({ conversationId, body, ttlSeconds: ttl, replyTo, media });
    const frame = {
      type: "message.send",
      client_msg_id: pending.client_msg_id,
      conversation_id: conversationId,
      body,
    };
    if (ttl) frame.ttl_seconds = ttl;
    if (replyTo) frame.reply_to = replyTo;
    if (media) frame.media_id = media.id;
    this.setReplyTo(null);
    this.outbox.set(pending.client_msg_id, frame);
    this.saveOutbox();
    input.value = "";
    this.renderMessages({ toBottom: true });
    this.live?.send(frame); // if the socket is down, it goes out when it is back
  }

  flushOutbox() {
    for (const frame of this.outbox.values()) if (!this.live?.send(frame)) break;
  }

  outboxKey() {
    return `whatsapp.outbox.${this.store.me}`;
  }

  saveOutbox() {
    if (this.store) localStorage.setItem(this.outboxKey(), JSON.stringify([...this.outbox.values()]));
  }

  clearOutbox() {
    if (this.store) localStorage.removeItem(this.outboxKey());
  }

  restoreOutbox() {
    // Messages typed before a reload that were never acknowledged: same client_msg_id, so
    // sending them again can never make a second message.
    let frames = [];
    try {
      frames = JSON.parse(localStorage.getItem(this.outboxKey()) || "[]");
    } catch {
      frames = [];
    }
    for (const f of frames) {
      this.outbox.set(f.client_msg_id, f);
      this.store.addPending({
        conversationId: f.conversation_id,
        body: f.body,
        ttlSeconds: f.ttl_seconds,
        replyTo: f.reply_to,
        media: f.media_id ? { id: f.media_id, content_type: "", size: 0 } : undefined,
        clientMsgId: f.client_msg_id,
      });
    }
  }

  // ---- receipts ----------------------------------------------------------------------------

  readMarksKey(conversationId) {
    return `whatsapp.marks.${this.store.me}.${conversationId}`;
  }

  readMarks(conversationId) {
    try {
      return JSON.parse(localStorage.getItem(this.readMarksKey(conversationId)) || "null");
    } catch {
      return null;
    }
  }

  /** Delivered marks, a little later, one per conversation for a burst of frames. */
  scheduleDelivered(conversationId) {
    if (this.receiptTimers.has(conversationId)) return;
    this.receiptTimers.set(
      conversationId,
      setTimeout(() => {
        this.receiptTimers.delete(conversationId);
        if (!this.store) return;
        if (conversationId === this.openId && document.visibilityState === "visible") {
          this.sendReadMark();
          return;
        }
        const seq = this.store.takeDeliveredMark(conversationId);
        if (seq !== null) {
          const sent = this.live?.send({ type: "receipt", conversation_id: conversationId, up_to_seq: seq, status: "delivered" });
          if (!sent) this.store.conversation(conversationId).deliveredSent = 0;
        }
      }, 150),
    );
  }

  sendReadMark() {
    if (!this.openId || !this.store || document.visibilityState !== "visible") return;
    const id = this.openId;
    const conv = this.store.conversation(id);
    const seq = this.store.takeReadMark(id);
    this.renderList();
    if (seq === null) return;
    const frame = { type: "receipt", conversation_id: id, up_to_seq: seq, status: "read" };
    if (!this.live?.send(frame)) {
      this.session.request("POST", `/conversations/${id}/read`, { up_to_seq: seq }).catch(() => {
        conv.readSent = 0; // try again next time
      });
    }
  }

  // ---- the socket --------------------------------------------------------------------------

  onSocketState(state) {
    const node = $("connection-status");
    node.dataset.state = state;
    node.textContent = { online: "Online", connecting: "Connecting\u2026", offline: "Offline" }[state];
  }

  async onSocketOpen() {
    // Catch-up frames arrive by themselves; the list and the open history are read again
    // so counts are right and any gap is filled. Unacknowledged sends go out again.
    this.flushOutbox();
    try {
      await this.loadConversations();
      if (this.openId) await this.loadLatest(this.openId);
    } catch (error) {
      console.warn("resync:", error.message);
    }
  }

  async onFrame(frame) {
    if (!this.store) return;
    switch (frame.type) {
      case "message.ack":
        return this.onAck(frame);
      case "message.new":
        return this.onMessage(frame.message);
      case "receipt":
        if (this.store.applyReceipt(frame)) {
          localStorage.setItem(this.readMarksKey(frame.conversation_id), JSON.stringify(this.store.exportMarks(frame.conversation_id)));
          if (frame.user_id === this.store.me) this.renderList(); // read on another device
          else if (frame.conversation_id === this.openId) this.renderMessages();
        }
        return;
      case "typing":
        return this.onTypingFrame(frame);
      case "presence":
        this.presence.set(frame.user_id, frame);
        return this.renderStatus();
      case "message.edited":
        if (this.store.applyEdit(frame.message)) {
          if (frame.message.conversation_id === this.openId) this.renderMessages();
          this.renderList();
        }
        return;
      case "reaction":
        if (this.store.applyReaction(frame) && frame.conversation_id === this.openId) this.renderMessages();
        return;
      case "message.deleted":
        this.store.markDeleted(frame.conversation_id, frame.message_id);
        if (frame.conversation_id === this.openId) this.renderMessages();
        return this.renderList();
      case "conversation.new":
      case "conversation.updated":
        this.store.upsertConversation(frame.conversation);
        await this.loadNames(frame.conversation.members.map((m) => m.user_id));
        this.renderList();
        if (frame.conversation.id === this.openId) this.renderStatus();
        return;
      case "member.removed":
        if (frame.user_id === this.store.me) {
          this.store.removeConversation(frame.conversation_id);
          if (this.openId === frame.conversation_id) this.closeConversation();
          this.renderList();
        } else {
          try {
            this.store.upsertConversation(await this.session.request("GET", `/conversations/${frame.conversation_id}`));
          } catch {
            // gone for us too: the next list refresh drops it
          }
          this.renderStatus();
        }
        return;
      case "error":
        return this.onErrorFrame(frame);
      default:
        return; // types this client does not know are ignored (the contract says so)
    }
  }

  onAck({ client_msg_id, message }) {
    this.outbox.delete(client_msg_id);
    this.saveOutbox();
    const { gap } = this.store.ack(client_msg_id, message);
    if (gap) this.fillGap(message.conversation_id, gap);
    if (message.conversation_id === this.openId) this.renderMessages({ toBottom: true });
    this.renderList();
    this.scheduleExpiry();
  }

  async onMessage(message) {
    if (!this.store.conversation(message.conversation_id)) {
      try {
        await this.ensureConversation(message.conversation_id);
      } catch {
        return;
      }
    }
    if (message.sender_id === this.store.me && this.outbox.delete(message.client_msg_id)) this.saveOutbox();
    const reading = message.conversation_id === this.openId && document.visibilityState === "visible";
    const { isNew, gap } = this.store.addMessage(message, { reading });
    if (gap) this.fillGap(message.conversation_id, gap);
    this.scheduleDelivered(message.conversation_id);
    if (!isNew) return;
    if (message.sender_id !== this.store.me) this.onTypingFrame({ ...message, user_id: message.sender_id, state: "stop" });
    if (message.conversation_id === this.openId) this.renderMessages();
    this.renderList();
    if (message.expires_at) this.scheduleExpiry();
  }

  onErrorFrame(frame) {
    const pending = frame.ref && this.store.pending.get(frame.ref);
    if (!pending) {
      if (frame.code !== "rate_limited") this.toast(frame.message);
      return;
    }
    if (frame.code === "unavailable" || frame.code === "rate_limited") {
      // Accepted by nobody yet: the same client_msg_id again a little later.
      setTimeout(() => {
        const again = this.outbox.get(frame.ref);
        if (again) this.live?.send(again);
      }, RETRY_SEND_MS);
      return;
    }
    this.outbox.delete(frame.ref);
    this.saveOutbox();
    this.store.failPending(frame.ref, frame.message);
    if (pending.conversation_id === this.openId) this.renderMessages();
    this.toast(`Not sent: ${frame.message}`);
  }

  // ---- disappearing messages ---------------------------------------------------------------

  scheduleExpiry() {
    clearTimeout(this.expiryTimer);
    if (!this.store || !this.store.hasDisappearing()) return;
    this.expiryTimer = setTimeout(() => {
      if (!this.store) return;
      const changed = this.store.expire(this.session.now());
      if (changed.has(this.openId)) this.renderMessages();
      if (changed.size) this.renderList();
      this.scheduleExpiry();
    }, 1_000);
  }
}

function start() {
  try {
    window.whatsappClient = new App();
  } catch (error) {
    const node = document.getElementById("auth-error");
    if (node) node.textContent = error instanceof ApiError ? error.message : `The client failed to start: ${error}`;
    throw error;
  }
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
else start();
