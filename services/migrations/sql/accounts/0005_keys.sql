-- End-to-end encryption: key distribution. The server keeps public keys only, per session
-- (one device): an identity key and a signed prekey, replaced by each upload, and a stock
-- of one-time prekeys, each handed out once (claimed rows are deleted). Rows go with their
-- session (revoked sessions' keys are not handed out: the user service reads live sessions
-- only; scheduled_jobs' prune of dead sessions removes them).

CREATE TABLE accounts.session_keys (
    session_id              uuid        PRIMARY KEY REFERENCES accounts.sessions (id) ON DELETE CASCADE,
    user_id                 uuid        NOT NULL REFERENCES accounts.users (id) ON DELETE CASCADE,
    identity_key            text,
    signed_prekey_id        bigint,
    signed_prekey           text,
    signed_prekey_signature text,
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_keys_user_id_idx ON accounts.session_keys (user_id);

CREATE TABLE accounts.one_time_prekeys (
    session_id  uuid    NOT NULL REFERENCES accounts.session_keys (session_id) ON DELETE CASCADE,
    key_id      bigint  NOT NULL CHECK (key_id >= 0),
    public_key  text    NOT NULL,
    PRIMARY KEY (session_id, key_id)
);
