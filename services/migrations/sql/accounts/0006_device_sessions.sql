-- Push targets belong to the session that registered them: message_processor pushes a
-- message to a device whose session has no open socket (a laptop in use does not silence
-- the phone). Revoking a session removes its push targets (the user service, in the same
-- transaction); the prune of dead sessions removes the rest (ON DELETE CASCADE). Devices
-- registered before this migration have no session: they are pushed, as before, while the
-- user has no open socket at all.

ALTER TABLE accounts.devices
    ADD COLUMN session_id uuid REFERENCES accounts.sessions (id) ON DELETE CASCADE;
CREATE INDEX devices_session_id_idx ON accounts.devices (session_id);
