"""The centre's system mode: NORMAL, DEGRADED (a dependency down, alarms still flowing) or
MAINTENANCE (an admin's read-only switch) (docs/architecture.md §5 "System modes")."""
