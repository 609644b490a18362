-- Several devices per user: each session (a login, accounts.sessions) has its own delivered
-- mark per conversation, so what the phone confirmed is still caught up on the laptop. The
-- member's own delivered_seq and read_seq stay (ticks and unread counts are per user).
-- A session's mark is made when the session first catches up (at the member's delivered
-- mark then) or when its user joins a conversation (at the start of its view), and only
-- moves forward with that session's receipts. A mark belongs to a membership: it goes with
-- it (a member removed, an account deleted by conversations.leave_for_good), and with its
-- session (scheduled_jobs, which prunes sessions).

CREATE TABLE conversations.session_marks (
    session_id      uuid   NOT NULL,
    conversation_id uuid   NOT NULL,
    user_id         uuid   NOT NULL,
    delivered_seq   bigint NOT NULL DEFAULT 0 CHECK (delivered_seq >= 0),
    PRIMARY KEY (session_id, conversation_id),
    FOREIGN KEY (conversation_id, user_id)
        REFERENCES conversations.members (conversation_id, user_id) ON DELETE CASCADE
);
CREATE INDEX session_marks_member_idx ON conversations.session_marks (conversation_id, user_id);
