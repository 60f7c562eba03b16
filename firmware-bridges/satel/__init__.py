"""Satel INTEGRA / ETHM-1 Plus integration protocol: a sans-IO codec and a device emulator."""
