"""Reports rendered by the hub for people to read (PDF exports)."""
