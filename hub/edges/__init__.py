"""Edges as the hub manages them: enrolment, credentials, reported status."""
