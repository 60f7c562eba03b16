"""The alarm side of the hub: what an event means (`classify`), how alarms group (`bundling`),
the lifecycle's states and transitions (`lifecycle`), applying an ingest batch's meaning to
bundles, panel state and link status (`apply`), and operator transitions on PostgreSQL
(`repository`). `classify`, `bundling` and `lifecycle` are pure; the rest take a connection."""
