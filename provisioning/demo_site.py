"""The demo site `make run` sets up, through the hub's API as an admin would: an object with its
contacts and a procedure for every alarm type, an edge with its one-time enrolment token, the
emulated panel with its partitions, zones and outputs named, and a second user, an OPERATOR.
Nothing here writes the database.

Re-running is safe: what exists is found (the object by name, contacts by name, procedures by
alarm type, panel elements by number, the operator by email) and kept as it is, so what someone
changed on the console survives; only what is missing is made. A box that is already enrolled
is not enrolled again.
"""
from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hub.alarms import classify

DEMO_OBJECT = {"name": "Demo site", "address": "ul. Przykładowa 1, 31-042 Kraków", "type": "OFFICE"}
TIMEOUT_S = 30.0

#: Whom the operator calls, in order, and when each may be called.
DEMO_CONTACTS: tuple[dict[str, Any], ...] = (
    {"call_order": 1, "name": "Anna Kowalska", "role": "Owner", "availability": "any time, 24/7",
     "phone": "+48 600 100 200", "email": "anna.kowalska@example.com"},
    {"call_order": 2, "name": "Piotr Nowak", "role": "Office manager",
     "availability": "weekdays 7:00-18:00; after hours only if the owner does not answer",
     "phone": "+48 600 300 400", "email": "piotr.nowak@example.com"},
)


def _steps(*steps: str) -> str:
    return "\n".join(f"{n}. {step}" for n, step in enumerate(steps, 1))


#: What the operator does, per alarm type (hub/alarms/classify.py): one procedure for each.
DEMO_PROCEDURES: dict[str, str] = {
    classify.BURGLARY: _steps(
        "Look at the panel: which zones are in alarm, and is the partition armed?",
        "Call the contacts in order. Ask whether anyone is on site and for the site's password word.",
        "Unless a contact on site gives the right password word, dispatch the patrol and log it.",
        "More than one zone, or the patrol finds a break-in: call the police (112) with the address.",
        "Acknowledge with what you found; resolve when the patrol reports the site secured.",
    ),
    classify.TAMPER: _steps(
        "Look at the panel: which detector's tamper loop opened?",
        "Call the first contact: is an installer working on site today?",
        "Work is planned: note the installer's name and ask for the object to be put in service mode.",
        "No work is planned: dispatch the patrol (tampering can come before a break-in) and log it.",
        "Acknowledge with the outcome; resolve when the tamper loop is closed again.",
    ),
    classify.FIRE: _steps(
        "Call the fire brigade (112) at once with the address; do not wait for the contacts.",
        "Call the contacts in order and tell them the brigade is on its way.",
        "Dispatch the patrol to meet the brigade and open the site.",
        "Cancel nothing on a phone call alone: only the brigade or the patrol on site may confirm a false alarm.",
        "Log every call; acknowledge, and resolve when the brigade leaves the site.",
    ),
    classify.PANIC: _steps(
        "Treat it as a threat to someone's life: call the police (112) with the address.",
        "Do not call the site first: a ringing phone can put the person in more danger.",
        "Dispatch the patrol and tell them the police are called.",
        "Once the police or the patrol are on site, call the first contact.",
        "Log every call; resolve only when the police or the patrol report the site safe.",
    ),
    classify.TROUBLE: _steps(
        "Look at the panel: which trouble is it (mains power, battery, communication)?",
        "Mains power: call the first contact; the panel runs on its battery for a few hours.",
        "Battery, or mains still off after an hour: order a technician visit for today.",
        "Acknowledge with who was told; resolve when the trouble clears on the panel.",
    ),
    classify.TEMPERATURE: _steps(
        "Read the temperature and the zone (zone 8 is the server room).",
        "Call the second contact (office manager) in working hours, otherwise the first contact.",
        "Still rising, or above 35 °C: ask for the IT on-call engineer to go to the site.",
        "Acknowledge with the reading and what the contact will do (a note is required).",
    ),
    classify.LINK: _steps(
        "Open the Edges page: is the whole site offline, or only the panel's link?",
        "Call the first contact: is there a power or internet outage on site?",
        "The box keeps every event and sends it when the link is back; nothing is lost meanwhile.",
        "Link down over 30 minutes while the site is armed: dispatch the patrol to check the site.",
        "Resolve when the link is back and the missed events have arrived.",
    ),
    classify.ROBOT: _steps(
        "Open the robot's report: what it saw and where.",
        "A person or an open door: handle it as a burglary (call the contacts, dispatch the patrol).",
        "A fault of the robot itself: call the first contact and order a technician visit.",
        "Acknowledge with what the report showed and what you did.",
    ),
    classify.SYSTEM: _steps(
        "The hub refused data from this site's box; read the reason in the alarm's events.",
        "Call the hub administrator on duty and give them the edge and the reason.",
        "Monitoring of the site may be blind meanwhile: call the first contact and ask whether the site is armed.",
        "Armed and the fix will take over 30 minutes: dispatch the patrol for a round.",
        "Resolve when the administrator confirms the box is fixed and its data stored.",
    ),
    classify.OPEN_CLOSE: _steps(
        "Read which it is: not armed by the closing deadline, not opened in the opening window, or opened early.",
        "Not armed: call the first contact; ask whether someone is still on site or forgot to arm.",
        "Nobody answers, or nobody should be there: arm from the panel view (reason: the contact's answer) or "
        "dispatch the patrol if a zone is still violated.",
        "Opened early: call the first contact and ask for the site's password word; a wrong or no answer is a "
        "break-in: dispatch the patrol.",
        "Acknowledge with what the contact said; resolve when the site is armed or the opening is confirmed.",
    ),
}

#: The emulated panel's partitions, zones and outputs as the operators see them (the numbers and
#: partitions of the emulator's sample site, firmware_bridges.satel.emulator.site).
DEMO_PARTITIONS: tuple[dict[str, Any], ...] = ({"number": 1, "name": "Office"}, {"number": 2, "name": "Storeroom"})
DEMO_ZONES: tuple[dict[str, Any], ...] = (
    {"number": 1, "name": "Main entrance (entry delay)", "partition_number": 1},
    {"number": 2, "name": "Corridor", "partition_number": 1},
    {"number": 3, "name": "Office", "partition_number": 1},
    {"number": 4, "name": "Conference room", "partition_number": 1},
    {"number": 5, "name": "Storeroom", "partition_number": 2},
    {"number": 6, "name": "Garage door (entry delay)", "partition_number": 2},
    {"number": 7, "name": "Back window", "partition_number": 2},
    {"number": 8, "name": "Server room (temperature)", "partition_number": 2},
)
DEMO_OUTPUTS: tuple[dict[str, Any], ...] = ({"number": 1, "name": "Siren"}, {"number": 2, "name": "Lights"})

OPERATOR_EMAIL = "operator@vigil.local"
OPERATOR_NAME = "Demo operator"


class HubApiError(Exception):
    """The hub refused a call; the message has its error code and words."""


@dataclass
class HubApi:
    """A minimal client of the hub's REST API, signed in as one user."""

    base_url: str
    token: str = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base_url.rstrip("/") + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            try:
                error = json.loads(exc.read())["error"]
                reason = f"{error['message']} ({error['code']})"
            except (ValueError, KeyError, TypeError):
                reason = str(exc.reason)
            raise HubApiError(f"{method} {path}: HTTP {exc.code}: {reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise HubApiError(f"{method} {path}: the hub at {self.base_url} is unreachable: {exc}") from None
        return json.loads(raw) if raw else None

    def login(self, email: str, password: str) -> dict[str, Any]:
        """Sign in; keeps the access token for later calls and returns the whole token pair."""
        pair: dict[str, Any] = self.call("POST", "/api/v1/auth/login", {"email": email, "password": password})
        self.token = pair["access_token"]
        return pair


def ensure_object(api: HubApi) -> int:
    """The demo object's id: found by name, else created."""
    page = api.call("GET", "/api/v1/objects?" + urllib.parse.urlencode({"q": DEMO_OBJECT["name"]}))
    for item in page["items"]:
        if item["name"] == DEMO_OBJECT["name"]:
            return int(item["id"])
    return int(api.call("POST", "/api/v1/objects", DEMO_OBJECT)["id"])


def ensure_panel(api: HubApi, object_id: int, edge_id: str, panel_id: str, host: str, port: int) -> int:
    """The emulated panel under the demo object, once; returns its id at the hub."""
    detail = api.call("GET", f"/api/v1/objects/{object_id}")
    for panel in detail["panels"]:
        if panel["edge_id"] == edge_id and panel["source"] == panel_id:
            return int(panel["id"])
    created = api.call("POST", "/api/v1/panels", {"object_id": object_id, "edge_id": edge_id, "source": panel_id,
                                                  "model": "INTEGRA (emulated)", "host": host, "port": port})
    return int(created["id"])


def create_edge(api: HubApi, edge_id: str, object_id: int) -> dict[str, Any]:
    """Create the edge and get its one-time token (what an admin does on the Edges page)."""
    return api.call("POST", "/api/v1/edges", {"edge_id": edge_id, "object_id": object_id})  # type: ignore[no-any-return]


def _missing(wanted: Iterable[dict[str, Any]], existing: Iterable[dict[str, Any]],
             key: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    """The wanted items whose key no existing item has, in their order."""
    have = {key(item) for item in existing}
    return [item for item in wanted if key(item) not in have]


def ensure_object_details(api: HubApi, object_id: int) -> None:
    """The demo object's contacts (by name) and procedures (by alarm type), the missing ones."""
    detail = api.call("GET", f"/api/v1/objects/{object_id}")
    for contact in _missing(DEMO_CONTACTS, detail["contacts"], lambda c: c["name"]):
        api.call("POST", f"/api/v1/objects/{object_id}/contacts", contact)
    procedures = [{"alarm_type": kind, "steps": steps} for kind, steps in DEMO_PROCEDURES.items()]
    for procedure in _missing(procedures, detail["procedures"], lambda p: p["alarm_type"]):
        api.call("POST", f"/api/v1/objects/{object_id}/procedures", procedure)


def ensure_panel_elements(api: HubApi, panel_id: int) -> None:
    """The demo panel's partitions, zones and outputs (by number), the missing ones."""
    panel = api.call("GET", f"/api/v1/panels/{panel_id}")
    for plural, wanted in (("partitions", DEMO_PARTITIONS), ("zones", DEMO_ZONES), ("outputs", DEMO_OUTPUTS)):
        for element in _missing(wanted, panel[plural], lambda e: e["number"]):
            api.call("POST", f"/api/v1/panels/{panel_id}/{plural}", element)


def ensure_operator(api: HubApi, password: str, password_is_new: bool) -> None:
    """The demo OPERATOR, signing in with `password`.

    An admin can only give a new account (or reset one to) an initial password that must be
    changed at the first sign-in, so this signs in once as the operator and changes it to
    `password`, as the operator would. Done when the account is missing, or when `password` was
    just generated (its file was lost, or the hub's database is not the one it was made for);
    otherwise the account is left as it is.
    """
    users = api.call("GET", "/api/v1/users")
    user = next((u for u in users if u["email"] == OPERATOR_EMAIL), None)
    if user is not None and not password_is_new:
        return
    initial = secrets.token_urlsafe(18)  # lives only until the change below
    if user is None:
        api.call("POST", "/api/v1/users", {"email": OPERATOR_EMAIL, "role": "OPERATOR", "password": initial,
                                           "display_name": OPERATOR_NAME})
    else:
        api.call("PATCH", f"/api/v1/users/{user['id']}", {"version": user["version"], "password": initial})
    operator = HubApi(api.base_url)
    operator.login(OPERATOR_EMAIL, initial)
    pair = operator.call("POST", "/api/v1/auth/password", {"current_password": initial, "new_password": password})
    # The change opened a session the launcher has no use for.
    operator.call("POST", "/api/v1/auth/logout", {"refresh_token": pair["refresh_token"]})
