"""`nps-edge sim`: the unchanged device firmware under the MicroPython unix port."""
