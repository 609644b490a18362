-- Sessions: one per login or registration on one device. A session is a refresh-token
-- family (its id is the family_id, and the access tokens' `sid` claim); this table adds what
-- the family alone does not hold: the device's name and when the session began. Whether a
-- session is live, and when it was last used, come from its tokens (a live token: not
-- used, not revoked, not expired; each refresh issues one, so the newest issued_at is the
-- last use). scheduled_jobs removes sessions whose tokens are all gone.

CREATE TABLE accounts.sessions (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES accounts.users (id) ON DELETE CASCADE,
    device_name  text        CHECK (device_name IS NULL OR char_length(device_name) BETWEEN 1 AND 64),
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_user_id_idx ON accounts.sessions (user_id);

-- The families of logins made before this table: sessions without a device name.
INSERT INTO accounts.sessions (id, user_id, created_at)
SELECT family_id, user_id, min(issued_at) FROM accounts.refresh_tokens GROUP BY family_id, user_id
ON CONFLICT (id) DO NOTHING;
