"""Tables and their public shapes, one module per entity family."""

from server.models.alerts import Alert, AlertComment, WebhookDelivery
from server.models.auth import LoginFailure, LoginSession, Token
from server.models.devices import BootRecord, Device, Presence
from server.models.events import DeadLetter, Feedback, Telemetry
from server.models.registry import RegisteredDevice
from server.models.voice import VoiceComment

__all__ = [
    "Alert",
    "AlertComment",
    "BootRecord",
    "DeadLetter",
    "Device",
    "Feedback",
    "LoginFailure",
    "LoginSession",
    "Presence",
    "RegisteredDevice",
    "Telemetry",
    "Token",
    "VoiceComment",
    "WebhookDelivery",
]
