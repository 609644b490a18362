-- Schema accounts (owned by the user service's login): users, their contacts and blocks,
-- push devices, and rotating refresh tokens. Applied by services.migrations.runner inside
-- one transaction; never edit this file once applied, add 0002_... instead.

CREATE TABLE accounts.users (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    -- E.164: '+' then 8 to 15 digits, as the API validates; unique, so one account per phone.
    phone         text        NOT NULL UNIQUE CHECK (phone ~ '^\+[0-9]{8,15}$'),
    display_name  text        NOT NULL CHECK (char_length(display_name) BETWEEN 1 AND 64),
    about         text        NOT NULL DEFAULT '' CHECK (char_length(about) <= 140),
    avatar_url    text        CHECK (avatar_url IS NULL OR char_length(avatar_url) <= 2048),
    -- bcrypt, over a SHA-256 digest of the password (see services/user/passwords.py).
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Written by chat when a user's last connection closes; null until the first one.
    last_seen     timestamptz
);

-- owner_id keeps contact_id in their address book (one direction; not a friendship).
CREATE TABLE accounts.contacts (
    owner_id    uuid        NOT NULL REFERENCES accounts.users (id) ON DELETE CASCADE,
    contact_id  uuid        NOT NULL REFERENCES accounts.users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, contact_id),
    CHECK (owner_id <> contact_id)
);
-- "Who has this user as a contact?": presence fan-out and phone visibility.
CREATE INDEX contacts_contact_id_idx ON accounts.contacts (contact_id);

-- blocker_id does not accept messages from blocked_id (chat answers 403 blocked).
CREATE TABLE accounts.blocks (
    blocker_id  uuid        NOT NULL REFERENCES accounts.users (id) ON DELETE CASCADE,
    blocked_id  uuid        NOT NULL REFERENCES accounts.users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
CREATE INDEX blocks_blocked_id_idx ON accounts.blocks (blocked_id);

-- Push targets; notification reads them. For webhook devices the token is the URL.
CREATE TABLE accounts.devices (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     uuid        NOT NULL REFERENCES accounts.users (id) ON DELETE CASCADE,
    platform    text        NOT NULL CHECK (platform IN ('fcm', 'apns', 'webhook')),
    token       text        NOT NULL CHECK (char_length(token) BETWEEN 1 AND 4096),
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (user_id, platform, token)
);

-- Opaque refresh tokens, stored only as SHA-256 hex digests. Every rotation of one login
-- stays in one family_id, so re-use of a spent token can revoke the whole family.
CREATE TABLE accounts.refresh_tokens (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    family_id   uuid        NOT NULL,
    user_id     uuid        NOT NULL REFERENCES accounts.users (id) ON DELETE CASCADE,
    token_hash  text        NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    issued_at   timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz,
    revoked_at  timestamptz,
    CHECK (expires_at > issued_at)
);
CREATE INDEX refresh_tokens_family_id_idx ON accounts.refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_id_idx ON accounts.refresh_tokens (user_id);
-- scheduled_jobs prunes expired tokens by this.
CREATE INDEX refresh_tokens_expires_at_idx ON accounts.refresh_tokens (expires_at);
