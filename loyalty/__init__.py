"""loyalty: a ledger-based loyalty and rewards points platform."""
