"""The edge gateway: MQTT adapter -> durable queue -> forwarder (docs/gateway.md).

Public surface: `Gateway` (one process), `GatewaySettings`, `Store`, `Forwarder`, `Intake`.
"""

from gateway.config import GatewaySettings, load_settings
from gateway.database import StoreError
from gateway.forwarder import Forwarder, Step
from gateway.intake import Intake
from gateway.store import Store

__all__ = ["Forwarder", "GatewaySettings", "Intake", "Step", "Store", "StoreError", "load_settings"]
