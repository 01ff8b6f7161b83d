"""The firmware version the build stamps; the simulator may override it from config (fw)."""

FW_VERSION = "1.0.0"
