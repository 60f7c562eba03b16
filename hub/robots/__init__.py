"""Robots at the hub (docs/architecture.md §4.4 and §5 "Robots"): `domain` (pure rules: command
statuses, leases, desired settings, what the API may edit), `views` (what the API and the live
stream show), `ingest` (robot events inside the ingest batch's transaction), `repository` (the
API's and housekeeping's SQL), `plan` (an object's site plan the console draws robots on)."""
