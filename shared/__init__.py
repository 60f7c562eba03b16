"""What the edge and the hub must agree on: envelopes, signing, subjects, config, backoff, logs."""
