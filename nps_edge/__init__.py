"""nps-edge, the top layer: the `nps-edge` command, the demo and its story, and
the helpers that run brokers, the server and gateways as child processes.

It imports every part (contract, firmware, gateway, server, broker); no part
imports it (tests/common/test_layers.py).
"""

__version__ = "0.1.0"
