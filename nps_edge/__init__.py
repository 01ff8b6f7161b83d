"""nps-edge: shared pieces of the CPython side (the wire contract, brokers, the CLI)."""

__version__ = "0.1.0"
