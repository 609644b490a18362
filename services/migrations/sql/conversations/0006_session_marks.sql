-- Several devices per user: each session (a login, accounts.sessions) has its own delivered
-- mark per conversation, so what the phone confirmed is still caught up on the laptop. The
-- member's own delivered_seq and read_seq stay (ticks and unread counts are per user).
-- A session's mark is made when the session first catches up (at the member's delivered
-- mark then) or when its user joins a conversation (at the start of its view), and only
-- moves forward with that session's receipts. Removed with the membership, the account and
-- (scheduled_jobs) the session.

CREATE TABLE conversations.session_marks (
    session_id      uuid   NOT NULL,
    conversation_id uuid   NOT NULL REFERENCES conversations.conversations (id) ON DELETE CASCADE,
    user_id         uuid   NOT NULL,
    delivered_seq   bigint NOT NULL DEFAULT 0 CHECK (delivered_seq >= 0),
    PRIMARY KEY (session_id, conversation_id)
);
CREATE INDEX session_marks_member_idx ON conversations.session_marks (conversation_id, user_id);

-- Leaving for good takes the account's session marks too (the function of 0005, again).
CREATE OR REPLACE FUNCTION conversations.leave_for_good(p_user_id uuid)
RETURNS TABLE (event text, conv_id uuid, msg_id text, msg_seq bigint)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = pg_catalog, conversations
AS $$
DECLARE
    left_ids uuid[];
BEGIN
    RETURN QUERY
    WITH erased AS (
        UPDATE conversations.messages m
        SET body = NULL, deleted_at = COALESCE(m.deleted_at, now())
        WHERE m.sender_id = p_user_id AND m.body IS NOT NULL
        RETURNING m.id, m.conversation_id, m.seq
    )
    SELECT 'erased'::text, e.conversation_id, e.id, e.seq FROM erased e;

    DELETE FROM conversations.reactions r
    WHERE r.user_id = p_user_id
       OR r.message_id IN (SELECT m.id FROM conversations.messages m WHERE m.sender_id = p_user_id);
    DELETE FROM conversations.session_marks sm WHERE sm.user_id = p_user_id;

    WITH gone AS (
        DELETE FROM conversations.members me WHERE me.user_id = p_user_id RETURNING me.conversation_id
    )
    SELECT coalesce(array_agg(g.conversation_id), '{}') INTO left_ids FROM gone g;

    UPDATE conversations.members me SET role = 'admin'
    FROM (
        SELECT DISTINCT ON (o.conversation_id) o.conversation_id, o.user_id
        FROM conversations.members o
        JOIN conversations.conversations c ON c.id = o.conversation_id AND c.type = 'group'
        WHERE o.conversation_id = ANY(left_ids)
          AND NOT EXISTS (SELECT 1 FROM conversations.members a
                          WHERE a.conversation_id = o.conversation_id AND a.role = 'admin')
        ORDER BY o.conversation_id, o.joined_at, o.user_id
    ) oldest
    WHERE me.conversation_id = oldest.conversation_id AND me.user_id = oldest.user_id;

    RETURN QUERY SELECT 'left'::text, l, NULL::text, NULL::bigint FROM unnest(left_ids) AS l;
END;
$$;
