-- Joining a group is not reading its past: a member sees only messages with a seq above
-- the conversation's last_seq at the moment it was added (0 for the founding members and
-- for every membership made before this column existed: they saw everything already).
-- Added members start with their delivered and read marks there too, so catch-up and the
-- unread count begin where their view of the conversation does.

ALTER TABLE conversations.members
    ADD COLUMN visible_after_seq bigint NOT NULL DEFAULT 0 CHECK (visible_after_seq >= 0);
