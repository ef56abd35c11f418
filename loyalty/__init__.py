"""loyalty: a ledger-based loyalty and rewards points platform."""

__version__ = "0.1.0"
