"""The robot-side bridge: the program a robot runs beside its controller to speak the robot wire
(shared/robots.py, docs/architecture.md §4.4) on its edge box's nats-server.

* :mod:`.core` — the bridge's state, sans-IO: decoding, fencing, the command queue and acks,
  desired settings, status heartbeats and telemetry.
* :mod:`.adapter` — the hooks a real robot implements (`--mode ADAPTER`).
* :mod:`.sim`, :mod:`.mock` — MOCK mode: a simulated patrol robot; :mod:`.control` its HTTP
  control endpoint for injecting faults.
* :mod:`.link` — the NATS connection that drives the core; :mod:`.diagnostics` a redacted dump.

Run it with ``python -m firmware_bridges.robot --nats URL --creds FILE --robot-id RB-001 --mode MOCK``.
"""

#: Reported in the robot's identity (`bridgeVersion`).
BRIDGE_VERSION = "0.1.0"
