"""Tables and their public shapes, one module per entity family."""

from server.models.alerts import Alert, AlertComment, RoutingRule, WebhookDelivery
from server.models.auth import LoginFailure, LoginSession, Token
from server.models.devices import BootRecord, Device, Presence
from server.models.events import DeadLetter, Feedback, Telemetry
from server.models.people import Person, PersonLink
from server.models.registry import RegisteredDevice

__all__ = [
    "Alert",
    "AlertComment",
    "BootRecord",
    "DeadLetter",
    "Device",
    "Feedback",
    "LoginFailure",
    "LoginSession",
    "Person",
    "PersonLink",
    "Presence",
    "RegisteredDevice",
    "RoutingRule",
    "Telemetry",
    "Token",
    "WebhookDelivery",
]
