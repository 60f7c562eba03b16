"""Who may connect to the hub's NATS server (docs/architecture.md §4.1): the
users include file (`users`), and applying it to the running server, dropping the leaf nodes that
lost their right (`access`)."""
from hub.nats_access.access import NatsAccess, NatsAccessError, NatsRefused, hub_nats_login
from hub.nats_access.users import EdgeLeafUser, edge_leaf_users, leaf_user_name, render_users, write_users_file

__all__ = ["EdgeLeafUser", "NatsAccess", "NatsAccessError", "NatsRefused", "edge_leaf_users", "hub_nats_login",
           "leaf_user_name", "render_users", "write_users_file"]
