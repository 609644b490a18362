-- Media (the contract's v1.1 "Media"): what an uploaded file is; its bytes are in MongoDB
-- GridFS (bucket `media`, same id; services/common/media.py). A message may carry one
-- (media_id, the sender's own upload); its body may then be empty (no caption).
CREATE TABLE conversations.media (
    id           uuid        PRIMARY KEY,
    uploader_id  uuid        NOT NULL,
    content_type text        NOT NULL CHECK (char_length(content_type) BETWEEN 1 AND 64),
    size         bigint      NOT NULL CHECK (size > 0),
    sha256       text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_uploader_idx ON conversations.media (uploader_id);
CREATE INDEX media_created_at_idx ON conversations.media (created_at);

-- A file goes when no live message refers to it any more (deleted, expired, its sender's
-- account gone): the row first, the bytes after the commit. SET NULL only ever meets rows
-- whose body is erased already (forget_media keeps files a live message refers to).
ALTER TABLE conversations.messages
    ADD COLUMN media_id uuid REFERENCES conversations.media (id) ON DELETE SET NULL;
CREATE INDEX messages_media_id_idx ON conversations.messages (media_id) WHERE media_id IS NOT NULL;

ALTER TABLE conversations.messages DROP CONSTRAINT messages_body_check;
ALTER TABLE conversations.messages ADD CONSTRAINT messages_body_check
    CHECK (body IS NULL OR char_length(body) BETWEEN CASE WHEN media_id IS NULL THEN 1 ELSE 0 END
                                                 AND CASE WHEN encrypted THEN 65536 ELSE 4096 END);

-- The rows of the given files, or of every upload of p_uploader, that no message with a
-- body refers to: deleted, their ids returned. An expired message whose body is not erased
-- yet still holds its file (hidden from every reader already): expire_messages erases the
-- body, then forgets the file. SECURITY DEFINER like leave_for_good, so the user service
-- (deleting an account) needs no rights on the table.
CREATE FUNCTION conversations.forget_media(p_ids uuid[], p_uploader uuid)
RETURNS SETOF uuid
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, conversations
AS $$
    DELETE FROM conversations.media x
    WHERE (x.id = ANY(p_ids) OR x.uploader_id = p_uploader)
      AND NOT EXISTS (
          SELECT 1 FROM conversations.messages m
          WHERE m.media_id = x.id AND m.body IS NOT NULL
      )
    RETURNING x.id
$$;
