-- End-to-end encrypted messages: `encrypted: true` on send makes the body opaque to the
-- server (the contract: 1..65536 characters, no other rule); plain bodies keep their 4096.
-- The server never parses such a body nor puts it in a push notification.
ALTER TABLE conversations.messages ADD COLUMN encrypted boolean NOT NULL DEFAULT false;
ALTER TABLE conversations.messages DROP CONSTRAINT messages_body_check;
ALTER TABLE conversations.messages ADD CONSTRAINT messages_body_check
    CHECK (body IS NULL OR char_length(body) BETWEEN 1 AND CASE WHEN encrypted THEN 65536 ELSE 4096 END);
