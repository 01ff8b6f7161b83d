"""Tables and their public shapes, one module per entity family."""

from server.models.alerts import Alert, AlertComment, RoutingRule, WebhookDelivery
from server.models.auth import LoginFailure, LoginSession, Token
from server.models.devices import BootRecord, BootSampling, Device, Presence
from server.models.events import DeadLetter, Feedback, Telemetry
from server.models.fleet import (
    FleetCommand,
    FleetDevice,
    GatewaySite,
    Release,
    ReleaseFile,
    Rollout,
    RolloutDevice,
    SiteConfig,
)
from server.models.markers import Marker
from server.models.people import Person, PersonLink
from server.models.programme import ProgrammeChoice, Target, UnpromptedDay
from server.models.registry import RegisteredDevice
from server.models.voice import VoiceComment

__all__ = [
    "Alert",
    "AlertComment",
    "BootRecord",
    "BootSampling",
    "DeadLetter",
    "Device",
    "Feedback",
    "FleetCommand",
    "FleetDevice",
    "GatewaySite",
    "LoginFailure",
    "LoginSession",
    "Marker",
    "Person",
    "PersonLink",
    "Presence",
    "ProgrammeChoice",
    "RegisteredDevice",
    "Release",
    "ReleaseFile",
    "Rollout",
    "RolloutDevice",
    "SiteConfig",
    "Target",
    "RoutingRule",
    "Telemetry",
    "Token",
    "UnpromptedDay",
    "VoiceComment",
    "WebhookDelivery",
]
