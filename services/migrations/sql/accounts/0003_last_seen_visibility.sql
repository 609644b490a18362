-- Presence privacy: who may see a user's online state and last seen.
--   everyone: whoever keeps the user as a contact (REST: any user) sees it;
--   contacts: only users the user keeps in their own contact list (the default);
--   nobody:   no one but the user.
-- The user service applies it to GET /users/{id}/presence; chat and scheduled_jobs to the
-- watchers of presence frames (services/common/watchers.py). Those logins read the column
-- through their SELECT on the accounts tables (roles/postgres grants table rights, which
-- cover columns added later). A constant default: PostgreSQL adds the column without
-- rewriting the table.

ALTER TABLE accounts.users
    ADD COLUMN last_seen_visibility text NOT NULL DEFAULT 'contacts'
        CONSTRAINT users_last_seen_visibility_check
        CHECK (last_seen_visibility IN ('everyone', 'contacts', 'nobody'));
