-- Schema conversations (owned by chat's login): conversations, their members, and every
-- accepted message. chat allocates each message's seq and writes its row in one
-- transaction before publishing it (the row is the idempotency record and the outbox);
-- message_processor stores it in MongoDB and marks it stored. History is read from MongoDB.

CREATE TABLE conversations.conversations (
    id              uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    type            text        NOT NULL CHECK (type IN ('direct', 'group')),
    title           text        CHECK (title IS NULL OR char_length(title) BETWEEN 1 AND 128),
    -- Direct conversations only: '<lower uuid>:<higher uuid>', so one exists per pair.
    direct_key      text        UNIQUE,
    created_by      uuid        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- The last seq handed out; the row lock on it serialises senders of one conversation.
    last_seq        bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
    -- Written by message_processor once a message is stored.
    last_message_at timestamptz,
    CHECK ((type = 'direct') = (direct_key IS NOT NULL))
);

CREATE TABLE conversations.members (
    conversation_id uuid        NOT NULL REFERENCES conversations.conversations (id) ON DELETE CASCADE,
    user_id         uuid        NOT NULL,
    role            text        NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    joined_at       timestamptz NOT NULL DEFAULT now(),
    -- Receipts: highest seq this member's clients reported delivered / read.
    delivered_seq   bigint      NOT NULL DEFAULT 0,
    read_seq        bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX members_user_id_idx ON conversations.members (user_id);

CREATE TABLE conversations.messages (
    id              text        PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 64),
    conversation_id uuid        NOT NULL REFERENCES conversations.conversations (id) ON DELETE CASCADE,
    seq             bigint      NOT NULL CHECK (seq > 0),
    sender_id       uuid        NOT NULL,
    client_msg_id   text        NOT NULL CHECK (char_length(client_msg_id) BETWEEN 1 AND 128),
    -- NULL once deleted for everyone or expired: the text is erased, the seq stays taken.
    body            text        CHECK (body IS NULL OR char_length(body) BETWEEN 1 AND 4096),
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz,
    deleted_at      timestamptz,
    -- Set by message_processor when the message is in MongoDB; NULL rows are re-published.
    stored_at       timestamptz,
    UNIQUE (conversation_id, seq),
    UNIQUE (conversation_id, sender_id, client_msg_id)
);
CREATE INDEX messages_unstored_idx ON conversations.messages (created_at) WHERE stored_at IS NULL;
CREATE INDEX messages_expires_at_idx ON conversations.messages (expires_at)
    WHERE expires_at IS NOT NULL AND body IS NOT NULL;
