"""Tables and their public shapes, one module per entity family."""

from server.models.alerts import Alert, AlertComment, WebhookDelivery
from server.models.auth import LoginSession, Token
from server.models.devices import BootRecord, Device, Presence
from server.models.events import DeadLetter, Feedback, Telemetry

__all__ = [
    "Alert",
    "AlertComment",
    "BootRecord",
    "DeadLetter",
    "Device",
    "Feedback",
    "LoginSession",
    "Presence",
    "Telemetry",
    "Token",
    "WebhookDelivery",
]
