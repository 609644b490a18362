"""Layer 2, unit: the web client's state (roles/nginx/files/web/js/store.js) under node.

The rules the browser test can only see from outside: one copy per message.id whatever
path brought it (ack, message.new, catch-up, history), seq order, gaps noticed, unread
counts that a catch-up does not count twice, and the ticks from the members' receipts.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import ROOT

STORE = ROOT / "roles" / "nginx" / "files" / "web" / "js" / "store.js"

# Each scenario prints one JSON object; the Python side checks it.
SCENARIOS = r"""
import { Store } from "STORE_URL";
const out = {};
const me = "u-me", bob = "u-bob", carol = "u-carol";
const direct = { id: "c1", type: "direct", created_at: "2026-01-01T00:00:00Z",
                 members: [{ user_id: me, role: "member" }, { user_id: bob, role: "member" }] };
const at = (seq) => `2026-01-01T00:00:${String(seq).padStart(2, "0")}Z`;
const msg = (seq, sender = bob, extra = {}) => ({ id: `m${seq}`, conversation_id: "c1", seq,
  sender_id: sender, client_msg_id: `k${seq}`, body: `body ${seq}`, created_at: at(seq),
  status: "sent", ...extra });

{ // duplicates and order
  const s = new Store(me); s.upsertConversation(direct);
  for (const seq of [3, 1, 2, 3, 1]) s.addMessage(msg(seq));
  out.order = s.timeline("c1").map((m) => m.seq);
  out.unreadAfterDuplicates = s.conversation("c1").unread;
}
{ // pending, then ack, then the same message as message.new: one bubble
  const s = new Store(me); s.upsertConversation(direct);
  const p = s.addPending({ conversationId: "c1", body: "hi", clientMsgId: "mine-1" });
  out.pendingTick = s.tickOf(s.timeline("c1")[0]);
  s.ack("mine-1", msg(1, me, { client_msg_id: "mine-1", body: "hi" }));
  s.addMessage(msg(1, me, { client_msg_id: "mine-1", body: "hi" }));
  out.afterAck = s.timeline("c1").map((m) => [m.seq, m.body, Boolean(m.pending)]);
  out.ownUnread = s.conversation("c1").unread;
  out.pendingLeft = s.pending.size + (p ? 0 : 1);
}
{ // message.new of my own message before its ack: still one
  const s = new Store(me); s.upsertConversation(direct);
  s.addPending({ conversationId: "c1", body: "hi", clientMsgId: "mine-2" });
  s.addMessage(msg(1, me, { client_msg_id: "mine-2" }));
  s.ack("mine-2", msg(1, me, { client_msg_id: "mine-2" }));
  out.newBeforeAck = s.timeline("c1").length;
}
{ // a gap after the loaded history
  const s = new Store(me); s.upsertConversation(direct);
  s.addPage("c1", { messages: [msg(3), msg(2), msg(1)], next_before_seq: null }, { latest: true });
  out.noGap = s.addMessage(msg(4)).gap;
  out.gap = s.addMessage(msg(7)).gap;
  s.gapFilled("c1", { messages: [msg(6), msg(5)] });
  out.afterFill = s.timeline("c1").map((m) => m.seq);
}
{ // unread: the list's count, catch-up of messages it already counted, new ones
  const s = new Store(me);
  s.upsertConversation({ ...direct, unread_count: 2, last_message: msg(5) });
  s.addMessage(msg(4)); s.addMessage(msg(5));
  out.unreadAfterCatchUp = s.conversation("c1").unread;
  s.addMessage(msg(6));
  out.unreadAfterNew = s.conversation("c1").unread;
  out.readMark = s.takeReadMark("c1");
  out.readMarkAgain = s.takeReadMark("c1");
  out.unreadAfterRead = s.conversation("c1").unread;
  s.upsertConversation({ ...direct, unread_count: 3, last_message: msg(6) }); // stale list answer
  out.unreadAfterStaleList = s.conversation("c1").unread;
}
{ // read on another device of mine: the unread count follows, no tick changes
  const s = new Store(me);
  s.upsertConversation({ ...direct, unread_count: 3, last_message: msg(3) });
  s.addMessage(msg(1)); s.addMessage(msg(2)); s.addMessage(msg(3));
  out.echoedOlder = s.applyReceipt({ conversation_id: "c1", user_id: me, up_to_seq: 2, status: "read" });
  out.unreadAfterOlderEcho = s.conversation("c1").unread;
  out.echoedAll = s.applyReceipt({ conversation_id: "c1", user_id: me, up_to_seq: 3, status: "read" });
  out.unreadAfterEcho = s.conversation("c1").unread;
  out.readMarkAfterEcho = s.takeReadMark("c1");
  out.echoedDelivered = s.applyReceipt(
    { conversation_id: "c1", user_id: me, up_to_seq: 3, status: "delivered" });
  out.marksAfterEcho = s.exportMarks("c1");
}
{ // ticks in a direct chat and in a group (every other member counts)
  const s = new Store(me); s.upsertConversation(direct);
  s.ack("k2", msg(2, me));
  const mine = () => s.timeline("c1")[0];
  out.ticks = [s.tickOf(mine())];
  s.applyReceipt({ conversation_id: "c1", user_id: bob, up_to_seq: 2, status: "delivered" });
  out.ticks.push(s.tickOf(mine()));
  s.applyReceipt({ conversation_id: "c1", user_id: bob, up_to_seq: 1, status: "read" });
  out.ticks.push(s.tickOf(mine()));
  s.applyReceipt({ conversation_id: "c1", user_id: bob, up_to_seq: 2, status: "read" });
  out.ticks.push(s.tickOf(mine()));
  s.applyReceipt({ conversation_id: "c1", user_id: bob, up_to_seq: 1, status: "delivered" }); // late, lower
  out.ticks.push(s.tickOf(mine()));
  const g = new Store(me);
  g.upsertConversation({ ...direct, id: "g1", type: "group", title: "G",
    members: [...direct.members, { user_id: carol, role: "member" }] });
  g.ack("k1", { ...msg(1, me), conversation_id: "g1" });
  g.applyReceipt({ conversation_id: "g1", user_id: bob, up_to_seq: 1, status: "read" });
  out.groupTicks = [g.tickOf(g.timeline("g1")[0])];
  g.applyReceipt({ conversation_id: "g1", user_id: carol, up_to_seq: 1, status: "delivered" });
  out.groupTicks.push(g.tickOf(g.timeline("g1")[0]));
  g.applyReceipt({ conversation_id: "g1", user_id: carol, up_to_seq: 1, status: "read" });
  out.groupTicks.push(g.tickOf(g.timeline("g1")[0]));
}
{ // delete for everyone survives a repeat; disappearing messages go
  const s = new Store(me); s.upsertConversation(direct);
  s.addMessage(msg(1)); s.markDeleted("c1", "m1"); s.addMessage(msg(1));
  out.deleted = [s.timeline("c1")[0].status, s.timeline("c1")[0].body];
  s.addMessage(msg(2, bob, { expires_at: "2026-01-01T00:01:00Z" }));
  out.expiredBefore = [...s.expire(Date.parse("2026-01-01T00:00:59Z"))];
  out.expiredAt = [...s.expire(Date.parse("2026-01-01T00:01:00Z"))];
  out.afterExpiry = s.timeline("c1").map((m) => m.seq);
}
{ // edits: the latest edited_at wins in any order; reactions: one per member; replies quote
  const s = new Store(me); s.upsertConversation(direct);
  s.addMessage(msg(1)); s.addMessage(msg(2, me, { reply_to: "m1" }));
  const edit = (body, at_) => ({ ...msg(1), body, edited_at: at_ });
  out.edits = [s.applyEdit(edit("second", "2026-01-01T00:02:00Z")),
               s.applyEdit(edit("first", "2026-01-01T00:01:00Z"))];
  s.addMessage(msg(1)); // a repeat without the edit (catch-up of the stored copy) keeps it
  s.addPage("c1", { messages: [edit("second", "2026-01-01T00:02:00Z")], next_before_seq: null });
  out.editedBody = s.timeline("c1")[0].body;
  s.applyReaction({ conversation_id: "c1", message_id: "m1", user_id: bob, emoji: "A" });
  s.applyReaction({ conversation_id: "c1", message_id: "m1", user_id: me, emoji: "A" });
  s.applyReaction({ conversation_id: "c1", message_id: "m1", user_id: carol, emoji: "B" });
  s.applyReaction({ conversation_id: "c1", message_id: "m1", user_id: carol, emoji: "A" }); // replaces B
  const m1 = s.timeline("c1")[0];
  out.summary = s.reactionSummary(m1);
  s.applyReaction({ conversation_id: "c1", message_id: "m1", user_id: me, emoji: null });
  out.afterRemove = [s.reactionSummary(m1), s.myReaction(m1)];
  const withReactions = { ...msg(1), reactions: [{ user_id: bob, emoji: "C" }] };
  s.addPage("c1", { messages: [withReactions], next_before_seq: null });
  out.fromHistory = s.reactionSummary(s.timeline("c1")[0]);
  out.quoted = s.quoted(s.timeline("c1")[1]).id;
  const fresh = msg(3, me, { created_at: "2026-01-01T00:00:00Z" });
  s.addMessage(fresh);
  out.editable = [s.editable(fresh, Date.parse("2026-01-01T00:14:59Z")),
                  s.editable(fresh, Date.parse("2026-01-01T00:15:00Z")),
                  s.editable(s.timeline("c1")[0], Date.parse("2026-01-01T00:01:00Z"))];
  s.markDeleted("c1", "m1");
  out.deletedEdit = s.applyEdit(edit("third", "2026-01-01T00:03:00Z"));
  out.deletedReactions = s.reactionSummary(s.timeline("c1")[0]);
}
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def result() -> dict:
    node = shutil.which("node")
    assert node, "node is needed for this test (scripts/test.sh installs nodejs)"
    script = SCENARIOS.replace("STORE_URL", STORE.as_uri())
    done = subprocess.run(
        [node, "--input-type=module", "-e", script], capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_one_copy_per_message_in_seq_order(result):
    assert result["order"] == [1, 2, 3]
    assert result["unreadAfterDuplicates"] == 3


def test_a_pending_message_becomes_the_acked_one(result):
    assert result["pendingTick"] == "pending"
    assert result["afterAck"] == [[1, "hi", False]]
    assert result["ownUnread"] == 0
    assert result["pendingLeft"] == 0
    assert result["newBeforeAck"] == 1


def test_a_gap_after_loaded_history_is_noticed_and_filled(result):
    assert result["noGap"] is None
    assert result["gap"] == [5, 6]
    assert result["afterFill"] == [1, 2, 3, 4, 5, 6, 7]


def test_unread_counts_do_not_count_a_catch_up_twice(result):
    assert result["unreadAfterCatchUp"] == 2
    assert result["unreadAfterNew"] == 3
    assert result["readMark"] == 6
    assert result["readMarkAgain"] is None
    assert result["unreadAfterRead"] == 0
    assert result["unreadAfterStaleList"] == 0


def test_a_read_on_another_device_of_mine_clears_the_unread_count_here(result):
    assert result["echoedOlder"] is True
    assert result["unreadAfterOlderEcho"] == 3  # part read elsewhere: the count stays until all is read
    assert (result["echoedAll"], result["unreadAfterEcho"]) == (True, 0)
    assert result["readMarkAfterEcho"] is None  # nothing left to mark read from here
    assert result["echoedDelivered"] is False
    assert result["marksAfterEcho"] == {}  # ticks count the other members' receipts only


def test_ticks_follow_the_receipts_of_every_other_member(result):
    assert result["ticks"] == ["sent", "delivered", "delivered", "read", "read"]
    assert result["groupTicks"] == ["sent", "delivered", "read"]


def test_deletion_sticks_and_disappearing_messages_go_on_time(result):
    assert result["deleted"] == ["deleted", ""]
    assert result["expiredBefore"] == []
    assert result["expiredAt"] == ["c1"]
    assert result["afterExpiry"] == [1]


def test_edits_reactions_and_replies(result):
    assert result["edits"] == [True, False]  # an older edit arriving late changes nothing
    assert result["editedBody"] == "second"
    assert result["summary"] == [{"emoji": "A", "count": 3, "mine": True}]
    assert result["afterRemove"] == [[{"emoji": "A", "count": 2, "mine": False}], None]
    assert result["fromHistory"] == [{"emoji": "C", "count": 1, "mine": False}]
    assert result["quoted"] == "m1"
    assert result["editable"] == [True, False, False]  # within 15 minutes, and only my own
    assert (result["deletedEdit"], result["deletedReactions"]) == (False, [])
