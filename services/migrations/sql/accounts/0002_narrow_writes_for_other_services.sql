-- Other services read the accounts schema but must not write its tables. The two writes
-- they need go through functions that run with the schema owner's rights and can do
-- nothing else: chat records when a user was last seen, notification removes a device
-- token that its push provider called invalid.

CREATE FUNCTION accounts.record_last_seen(p_user_id uuid, p_seen_at timestamptz)
RETURNS void
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, accounts
AS $$
    UPDATE accounts.users
    SET last_seen = GREATEST(COALESCE(last_seen, p_seen_at), p_seen_at)
    WHERE id = p_user_id;
$$;

CREATE FUNCTION accounts.remove_device(p_device_id uuid)
RETURNS boolean
LANGUAGE sql
SECURITY DEFINER
SET search_path = pg_catalog, accounts
AS $$
    WITH removed AS (DELETE FROM accounts.devices WHERE id = p_device_id RETURNING 1)
    SELECT EXISTS (SELECT 1 FROM removed);
$$;
