"""Device links: each owns one device's connection, turns what it reads into journal events, and
carries commands to the device. One sub-package per device family (`satel`, …)."""
