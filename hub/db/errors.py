"""Which asyncpg failures mean what, named once for every caller that has to tell them apart."""
from __future__ import annotations

import asyncpg

#: Anything a background reader may meet while PostgreSQL is away, restarting or refusing: it logs,
#: keeps what it has and tries again later rather than ending its task.
#: InternalClientError: asyncpg's own, e.g. a connection whose server vanished mid-operation ("cannot
#: switch to state"), or every server a failover URL names answering with none writable yet.
DB_ERRORS: tuple[type[BaseException], ...] = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                                              asyncpg.InternalClientError)

#: PostgreSQL away rather than refusing: the connection lost, refused, or the server shutting down.
#: Narrower than DB_ERRORS on purpose: a constraint violation is the request's fault, not a 503.
DATABASE_AWAY: tuple[type[BaseException], ...] = (
    ConnectionError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError, asyncpg.ConnectionDoesNotExistError,
    asyncpg.TargetServerAttributeNotMatched)
