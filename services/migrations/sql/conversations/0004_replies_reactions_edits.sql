-- Replies, reactions and edits (the contract's v1.1 "Replies, reactions, edits").
-- reply_to: the id of an earlier message of the same conversation (checked on send; it
-- stays after that message is deleted, whose body is then gone anyway).
-- edited_at: the last edit's time; the body column holds the last body.
ALTER TABLE conversations.messages
    ADD COLUMN reply_to  text CHECK (reply_to IS NULL OR char_length(reply_to) BETWEEN 1 AND 64),
    ADD COLUMN edited_at timestamptz;

-- One reaction per member per message: a new one replaces the old. Removed with the
-- message's body (deleted for everyone, expired) and with the member's account.
CREATE TABLE conversations.reactions (
    message_id text        NOT NULL REFERENCES conversations.messages (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL,
    emoji      text        NOT NULL CHECK (char_length(emoji) BETWEEN 1 AND 16),
    reacted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX reactions_user_id_idx ON conversations.reactions (user_id);
