// The client's state, without the DOM: conversations, their messages (de-duplicated by
// message.id, ordered by seq), messages still waiting for their ack, receipt marks and
// unread counts. Pure logic, so tests/unit/test_web_client.py runs it under node.

/** A client_msg_id: crypto.randomUUID needs a secure context, getRandomValues does not. */
export function newClientMsgId() {
  if (globalThis.crypto && typeof globalThis.crypto.randomUUID === "function") {
    return globalThis.crypto.randomUUID();
  }
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** How long after sending a message its sender may edit it (the API's rule). */
export const EDIT_WINDOW_MS = 15 * 60 * 1000;

/** Take `incoming`'s body if it is a later edit than what `known` shows; whether it was. */
function mergeEdit(known, incoming) {
  if (!incoming.edited_at || (known.edited_at && known.edited_at >= incoming.edited_at)) return false;
  known.body = incoming.body;
  known.edited_at = incoming.edited_at;
  return true;
}

export class Store {
  constructor(meId) {
    this.me = meId;
    /** @type {Map<string, object>} */
    this.conversations = new Map();
    /** client_msg_id -> pending message (not acknowledged yet) */
    this.pending = new Map();
  }

  // ---- conversations ---------------------------------------------------------------------

  conversation(id) {
    return this.conversations.get(id);
  }

  /** Add or update a conversation from the API (list summary or plain conversation). */
  upsertConversation(c) {
    let conv = this.conversations.get(c.id);
    if (!conv) {
      conv = {
        id: c.id,
        messages: new Map(),
        marks: new Map(), // user_id -> {delivered, read}: the other members' receipts
        lastSeq: 0, // highest seq known
        countedSeq: 0, // the server's unread_count covers messages up to this seq
        readSent: 0, // highest read mark this client sent
        deliveredSent: 0,
        unread: 0,
        contiguousTop: null, // history loaded and complete up to this seq (null: not loaded)
        hasOlder: null, // null: unknown until the first page
        last: null, // newest message (for the list)
        activity: c.created_at || "",
      };
      this.conversations.set(c.id, conv);
    }
    conv.type = c.type;
    conv.title = c.title;
    conv.members = c.members || conv.members || [];
    conv.created_at = c.created_at;
    if ("unread_count" in c) {
      const seq = c.last_message ? c.last_message.seq : 0;
      // The server's count is authoritative for what it has seen; messages this client
      // counted beyond the server's newest stay counted.
      if (seq >= conv.lastSeq) {
        conv.unread = seq <= conv.readSent ? 0 : c.unread_count;
        conv.countedSeq = seq;
      }
      conv.lastSeq = Math.max(conv.lastSeq, seq);
      if (c.last_message && (!conv.last || c.last_message.seq >= (conv.last.seq || 0))) {
        conv.last = c.last_message;
        conv.activity = c.last_message.created_at;
      }
    }
    return conv;
  }

  removeConversation(id) {
    this.conversations.delete(id);
    for (const [key, p] of this.pending) if (p.conversation_id === id) this.pending.delete(key);
  }

  /** Newest activity first. */
  sortedConversations() {
    return [...this.conversations.values()].sort((a, b) =>
      a.activity < b.activity ? 1 : a.activity > b.activity ? -1 : 0,
    );
  }

  otherMembers(conv) {
    return (conv.members || []).map((m) => m.user_id).filter((id) => id !== this.me);
  }

  // ---- messages --------------------------------------------------------------------------

  /**
   * Merge one message (message.new, ack, history page). Returns
   * {isNew, gap: [fromSeq, toSeq] | null}: a gap when the conversation's history is loaded
   * and this message skips seqs after it.
   */
  addMessage(msg, { reading = false } = {}) {
    const conv = this.conversations.get(msg.conversation_id);
    if (!conv) return { isNew: false, gap: null, unknownConversation: true };
    if (msg.sender_id === this.me && msg.client_msg_id) this.pending.delete(msg.client_msg_id);
    const known = conv.messages.get(msg.id);
    let gap = null;
    if (known) {
      // A repeat (at-least-once delivery): keep one copy; a deletion wins, a later edit too.
      if (msg.status === "deleted" && known.status !== "deleted") Object.assign(known, msg);
      else mergeEdit(known, msg);
      return { isNew: false, gap };
    }
    if (conv.contiguousTop !== null && msg.seq > conv.contiguousTop + 1) {
      gap = [conv.contiguousTop + 1, msg.seq - 1];
    }
    if (conv.contiguousTop !== null && msg.seq > conv.contiguousTop) conv.contiguousTop = msg.seq;
    conv.messages.set(msg.id, { ...msg });
    // New to this client (the id was unknown) and not covered by the server's count.
    const counted = msg.seq <= conv.countedSeq || msg.seq <= conv.readSent;
    if (msg.sender_id !== this.me && !reading && !counted) conv.unread += 1;
    if (msg.seq > conv.lastSeq) conv.lastSeq = msg.seq;
    if (!conv.last || msg.seq >= (conv.last.seq || 0)) {
      conv.last = msg;
      conv.activity = msg.created_at;
    }
    return { isNew: true, gap };
  }

  /** A history page (newest first, as the API answers). */
  addPage(conversationId, page, { latest = false } = {}) {
    const conv = this.conversations.get(conversationId);
    if (!conv) return;
    const msgs = [...page.messages].sort((a, b) => a.seq - b.seq);
    // History is not news: it never raises the unread count.
    for (const m of msgs) {
      const known = conv.messages.get(m.id);
      if (known) {
        if (m.status === "deleted") Object.assign(known, m);
        else mergeEdit(known, m);
        if (m.reactions) known.reactions = m.reactions; // history is the reactions' truth
        continue;
      }
      conv.messages.set(m.id, { ...m });
      if (m.seq > conv.lastSeq) conv.lastSeq = m.seq;
      if (!conv.last || m.seq >= (conv.last.seq || 0)) {
        conv.last = m;
        conv.activity = m.created_at;
      }
    }
    if (latest) {
      const top = msgs.length ? msgs[msgs.length - 1].seq : 0;
      conv.contiguousTop = Math.max(conv.contiguousTop ?? 0, top, this.maxSeq(conv));
      if (conv.hasOlder === null || conv.hasOlder) conv.hasOlder = page.next_before_seq !== null;
    } else {
      conv.hasOlder = page.next_before_seq !== null;
    }
  }

  /** The gap's messages came (or were gone: expired): history is complete again. */
  gapFilled(conversationId, page) {
    this.addPage(conversationId, { messages: page.messages, next_before_seq: null });
  }

  maxSeq(conv) {
    let max = 0;
    for (const m of conv.messages.values()) if (m.seq > max) max = m.seq;
    return max;
  }

  minSeq(conv) {
    let min = null;
    for (const m of conv.messages.values()) if (min === null || m.seq < min) min = m.seq;
    return min;
  }

  /** A message typed here, shown at once with the pending tick. */
  addPending({ conversationId, body, ttlSeconds, replyTo, media, clientMsgId = newClientMsgId(), createdAt }) {
    const p = {
      client_msg_id: clientMsgId,
      conversation_id: conversationId,
      body,
      ttl_seconds: ttlSeconds || undefined,
      reply_to: replyTo || undefined,
      media: media || undefined,
      sender_id: this.me,
      created_at: createdAt || new Date().toISOString(),
      pending: true,
      failed: null,
    };
    this.pending.set(clientMsgId, p);
    return p;
  }

  /** message.ack: the pending message becomes the stored one (once, whatever came first). */
  ack(clientMsgId, message) {
    this.pending.delete(clientMsgId);
    return this.addMessage(message, { reading: true });
  }

  failPending(clientMsgId, reason) {
    const p = this.pending.get(clientMsgId);
    if (p) p.failed = reason;
    return p;
  }

  markDeleted(conversationId, messageId) {
    const conv = this.conversations.get(conversationId);
    const m = conv && conv.messages.get(messageId);
    if (!m) return false;
    m.status = "deleted";
    m.body = "";
    m.reactions = [];
    return true;
  }

  /** message.edited (or a PATCH answer): the last body wins, whatever order edits come in. */
  applyEdit(message) {
    const conv = this.conversations.get(message.conversation_id);
    const m = conv && conv.messages.get(message.id);
    if (!m || m.status === "deleted") return false;
    const changed = mergeEdit(m, message);
    if (changed && conv.last && conv.last.id === m.id) conv.last = m;
    return changed;
  }

  /** A `reaction` frame: one per member per message, `emoji` null when removed. */
  applyReaction({ conversation_id, message_id, user_id, emoji }) {
    const conv = this.conversations.get(conversation_id);
    const m = conv && conv.messages.get(message_id);
    if (!m || m.status === "deleted") return false;
    const others = (m.reactions || []).filter((r) => r.user_id !== user_id);
    m.reactions = emoji ? [...others, { user_id, emoji }] : others;
    return true;
  }

  /** [{emoji, count, mine}] in the order each emoji first appeared. */
  reactionSummary(m) {
    const byEmoji = new Map();
    for (const r of m.reactions || []) {
      const entry = byEmoji.get(r.emoji) || { emoji: r.emoji, count: 0, mine: false };
      entry.count += 1;
      entry.mine = entry.mine || r.user_id === this.me;
      byEmoji.set(r.emoji, entry);
    }
    return [...byEmoji.values()];
  }

  /** My own reaction on the message, or null. */
  myReaction(m) {
    const mine = (m.reactions || []).find((r) => r.user_id === this.me);
    return mine ? mine.emoji : null;
  }

  /** The message a reply quotes, if this client has it. */
  quoted(m) {
    if (!m.reply_to) return null;
    const conv = this.conversations.get(m.conversation_id);
    return (conv && conv.messages.get(m.reply_to)) || null;
  }

  /** Whether I may still edit the message (mine, stored, not deleted, within 15 minutes). */
  editable(m, nowMs = Date.now()) {
    return Boolean(
      m.id && m.sender_id === this.me && m.status !== "deleted" && nowMs - Date.parse(m.created_at) < EDIT_WINDOW_MS,
    );
  }

  /** Remove disappearing messages whose time is up; returns the ids of conversations changed. */
  expire(nowMs) {
    const changed = new Set();
    for (const conv of this.conversations.values()) {
      for (const [id, m] of conv.messages) {
        if (m.expires_at && Date.parse(m.expires_at) <= nowMs) {
          conv.messages.delete(id);
          changed.add(conv.id);
          if (conv.last && conv.last.id === id) conv.last = null;
        }
      }
    }
    return changed;
  }

  hasDisappearing() {
    for (const conv of this.conversations.values()) {
      for (const m of conv.messages.values()) if (m.expires_at) return true;
    }
    return false;
  }

  /** Messages in seq order, then the pending ones in the order they were typed. */
  timeline(conversationId) {
    const conv = this.conversations.get(conversationId);
    if (!conv) return [];
    const stored = [...conv.messages.values()].sort((a, b) => a.seq - b.seq);
    const waiting = [...this.pending.values()].filter((p) => p.conversation_id === conversationId);
    return [...stored, ...waiting];
  }

  // ---- receipts and ticks ----------------------------------------------------------------

  applyReceipt({ conversation_id, user_id, up_to_seq, status }) {
    const conv = this.conversations.get(conversation_id);
    if (!conv) return false;
    if (user_id === this.me) {
      // Read on another device of mine: what it read is no longer unread here.
      if (status !== "read" || up_to_seq <= conv.readSent) return false;
      conv.readSent = up_to_seq;
      conv.deliveredSent = Math.max(conv.deliveredSent, up_to_seq);
      if (up_to_seq >= conv.lastSeq) conv.unread = 0;
      return true;
    }
    const mark = conv.marks.get(user_id) || { delivered: 0, read: 0 };
    mark.delivered = Math.max(mark.delivered, up_to_seq);
    if (status === "read") mark.read = Math.max(mark.read, up_to_seq);
    conv.marks.set(user_id, mark);
    return true;
  }

  /** pending | failed | sent | delivered | read: every other member counts (groups too). */
  tickOf(msg) {
    if (msg.pending) return msg.failed ? "failed" : "pending";
    const conv = this.conversations.get(msg.conversation_id);
    const others = conv ? this.otherMembers(conv) : [];
    if (!others.length) return "sent";
    const marks = others.map((id) => conv.marks.get(id) || { delivered: 0, read: 0 });
    if (marks.every((m) => m.read >= msg.seq)) return "read";
    if (marks.every((m) => Math.max(m.delivered, m.read) >= msg.seq)) return "delivered";
    return "sent";
  }

  /** The read mark to send for an open conversation, or null when nothing is new. */
  takeReadMark(conversationId) {
    const conv = this.conversations.get(conversationId);
    if (!conv) return null;
    conv.unread = 0;
    if (conv.lastSeq <= conv.readSent) return null;
    conv.readSent = conv.lastSeq;
    conv.deliveredSent = Math.max(conv.deliveredSent, conv.lastSeq);
    return conv.lastSeq;
  }

  /** The delivered mark to send after message.new frames, or null when already sent. */
  takeDeliveredMark(conversationId) {
    const conv = this.conversations.get(conversationId);
    if (!conv || conv.lastSeq <= conv.deliveredSent) return null;
    conv.deliveredSent = conv.lastSeq;
    return conv.lastSeq;
  }

  exportMarks(conversationId) {
    const conv = this.conversations.get(conversationId);
    return conv ? Object.fromEntries(conv.marks) : {};
  }

  importMarks(conversationId, marks) {
    const conv = this.conversations.get(conversationId);
    if (!conv || !marks) return;
    for (const [user, m] of Object.entries(marks)) {
      const cur = conv.marks.get(user) || { delivered: 0, read: 0 };
      conv.marks.set(user, {
        delivered: Math.max(cur.delivered, Number(m.delivered) || 0),
        read: Math.max(cur.read, Number(m.read) || 0),
      });
    }
  }
}
