-- Failed logins per (account, client address) (hub/auth/throttle.py): the progressive delay that
-- replaces the account-wide lock. Only the address that failed is slowed down, so nobody can lock
-- an operator out by naming their account from elsewhere. `users.failed_logins` and
-- `users.locked_until` are no longer written.
CREATE TABLE auth_account_failures (
    user_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    ip             text NOT NULL,
    failures       integer NOT NULL,               -- consecutive; a success from the address resets
    last_failed_at timestamptz NOT NULL,
    delayed_until  timestamptz,                    -- no attempt from `ip` counts or succeeds before
    PRIMARY KEY (user_id, ip)
);
CREATE INDEX auth_account_failures_last ON auth_account_failures (last_failed_at);
