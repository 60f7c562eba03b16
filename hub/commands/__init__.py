"""Hub→edge panel commands (docs/architecture.md §5 "Panel commands"): the pure rules (`domain`),
their rows (`repository`), stored user codes (`codes`), the outbox publisher into JetStream
(`publisher`), and what the edges' `cmd.result` events settle (`results`)."""
