"""Test-only helpers: a WAN proxy to cut, topology builders, polling with deadlines."""
