"""The voice from a phone: link keys (`keys`), the page and its form (`page`), the
comments in the database (`store`). The route is server/api/voice.py."""
