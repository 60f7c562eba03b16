"""What installs an edge box as services: the systemd units `python -m edge enroll` writes."""
