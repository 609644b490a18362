-- Leaving for good (DELETE /users/me): the user service removes the account in the same
-- transaction as this function, which does what belongs to this schema with its owner's
-- rights and nothing else: the bodies of every message the user sent are erased (as in a
-- delete for everyone) with their reactions, the user's own reactions go, the user leaves
-- every conversation, and a group left without an admin gets its longest-standing member
-- as one. It answers what changed, so the caller can tell the members:
--   ('erased', conversation, message id, seq) and ('left', conversation, NULL, NULL).
-- Running it again finds nothing left to do: a retried deletion is safe.

CREATE FUNCTION conversations.leave_for_good(p_user_id uuid)
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
