-- The account-wide lock's counters: nothing has read or written them since 0011 replaced the lock
-- with a delay per (account, client address) in auth_account_failures. The API's `locked_until`
-- is computed from that table.
ALTER TABLE users DROP COLUMN failed_logins, DROP COLUMN locked_until;
