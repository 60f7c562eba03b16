"""SMS received by the edges' GSM links: the raw archive (PII, MASTER only, every read audited)."""
