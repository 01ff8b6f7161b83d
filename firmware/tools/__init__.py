"""Host tools for field engineers: build and bundle, flash, provision, verify over serial."""
