"""`python -m edge diagnostics`: a support bundle an installer can send to whoever helps them.

It holds the edge's config, what the running agent says of itself and of each link (asked with
the agent's local API token), the journal's figures read straight from its file, and the tail of
the log files named, as one `.tar.gz`. No secret leaves the box in it: secret settings are
replaced by `<redacted>`, and as a second guard every file of the bundle is scrubbed of the secret
values themselves (the integration keys, the private key, the local API token, the site
accounts' password hashes), so a secret that slipped into a log line is caught too. The token
file and the accounts file themselves are never put in.
"""
from __future__ import annotations

import io
import json
import re
import sqlite3
import tarfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgspec

from edge.config import EdgeConfig
from edge.local_auth import token_path
from edge.site_accounts import AccountStore, AccountStoreError

REDACTED = "<redacted>"
# Settings whose value is a secret, by name: whatever a later setting of that kind is called.
_SECRET_NAME = re.compile(r"key|password|secret|token|code", re.IGNORECASE)
# Secret values shorter than this are not scrubbed from free text: replacing every "12" in a log
# would destroy it, and such a value is redacted by name where it is a setting.
_MIN_SCRUB = 4
_HTTP_TIMEOUT_S = 5.0
SQL_JOURNAL = {
    "last_seq": "SELECT coalesce(max(seq), 0) FROM journal",
    "rows": "SELECT count(*) FROM journal",
    "bytes": "SELECT coalesce(sum(size), 0) FROM journal",
}
SQL_LANES = ("SELECT lane, count(*), min(ts) FROM journal WHERE forwarded_at IS NULL GROUP BY lane")
SQL_EPOCH = "SELECT id, start_seq, created_at FROM journal_epoch"
SQL_CURSORS = "SELECT name FROM link_cursors"


def redact(value: Any, secret: bool = False) -> Any:
    """A copy of `value` (settings as plain data) with every secret-named setting redacted."""
    if isinstance(value, dict):
        return {k: redact(v, secret or bool(_SECRET_NAME.search(str(k)))) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret) for v in value]
    return REDACTED if secret and value not in (None, "") else value


def secret_values(config: EdgeConfig) -> list[str]:
    """The secret values the bundle must not contain anywhere, longest first."""
    values = [p.integration_key for p in config.satel.panels if p.integration_key]
    for path in (config.key_path, token_path(config.data_dir)):
        try:
            values.append(path.read_text().strip())
        except OSError:
            pass  # not on the box: nothing of it to leak
    accounts = AccountStore(config.data_dir)
    if accounts.path.exists():
        try:
            values += [account.password_hash for account in accounts.all()]
        except AccountStoreError:
            pass  # unreadable here, so not read into the bundle either
    return sorted({v for v in values if len(v) >= _MIN_SCRUB}, key=len, reverse=True)


def scrub(text: str, secrets: list[str]) -> str:
    """`text` with every secret value replaced."""
    for value in secrets:
        text = text.replace(value, REDACTED)
    return text


def journal_figures(path: Path) -> dict[str, Any]:
    """The journal's figures, read from its file without writing to it (works with the agent
    stopped, and while it runs)."""
    if not path.exists():
        return {"error": f"no journal at {path}"}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            out: dict[str, Any] = {name: db.execute(sql).fetchone()[0] for name, sql in SQL_JOURNAL.items()}
            out["unforwarded"] = {lane: {"rows": rows, "oldest_ts": oldest}
                                  for lane, rows, oldest in db.execute(SQL_LANES).fetchall()}
            epoch = db.execute(SQL_EPOCH).fetchone()
            out["epoch"] = {"id": epoch[0], "start_seq": epoch[1], "created_at": epoch[2]} if epoch else None
            out["link_cursors"] = [name for (name,) in db.execute(SQL_CURSORS).fetchall()]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return {"error": f"cannot read the journal {path}: {exc}"}
    return out


def agent_state(base_url: str, token: str | None, panels: list[str]) -> dict[str, Any]:
    """What the running agent reports of itself and each Satel link (its own diagnostics are
    redacted already), asked with its local API `token`, or why it could not be asked."""
    if token is None:
        return {"error": "the agent could not be asked: there is no local API token (the agent writes it when it "
                         "starts); is it running?"}

    def get(path: str) -> Any:
        request = urllib.request.Request(base_url.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            return json.loads(response.read())

    try:
        state: dict[str, Any] = {"status": get("/api/v1/status")}
        state["satel"] = {panel: get(f"/api/v1/links/satel/{panel}/diagnostics") for panel in panels}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"error": f"the agent at {base_url} could not be asked ({getattr(exc, 'reason', exc)}); "
                         "is it running?"}
    return state


def log_tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file, or why it could not be read."""
    try:
        with path.open("rb") as f:
            f.seek(0, io.SEEK_END)
            f.seek(max(0, f.tell() - lines * 400))  # JSON log lines run to a few hundred bytes
            text = f.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}\n"
    return "\n".join(text.splitlines()[-lines:]) + "\n"


def write_bundle(config: EdgeConfig, base_url: str, token: str | None, out_dir: Path, logs: list[Path], *,
                 log_lines: int = 2000, now: datetime | None = None) -> Path:
    """Collect everything, scrub it, and write `vigil-edge-<id>-<time>.tar.gz` in `out_dir`; the
    agent at `base_url` is asked with its local API `token` (None: it is not running)."""
    now = now or datetime.now(timezone.utc)
    secrets = secret_values(config)
    files: dict[str, str] = {
        "config.json": json.dumps(redact(msgspec.to_builtins(config)), indent=2),
        "agent.json": json.dumps(agent_state(base_url, token, [p.id for p in config.satel.panels]), indent=2),
        "journal.json": json.dumps(journal_figures(config.journal_path), indent=2),
        "manifest.json": json.dumps({"edge_id": config.edge_id, "collected_at": now.isoformat(),
                                     "logs": [str(p) for p in logs]}, indent=2),
    }
    for n, path in enumerate(logs):
        files[f"logs/{n}-{path.name}"] = log_tail(path, log_lines)
    out_dir.mkdir(parents=True, exist_ok=True)
    bundle = out_dir / f"vigil-edge-{config.edge_id}-{now:%Y%m%dT%H%M%SZ}.tar.gz"
    with tarfile.open(bundle, "w:gz") as tar:
        for name, text in files.items():
            data = scrub(text, secrets).encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o600
            tar.addfile(info, io.BytesIO(data))
    bundle.chmod(0o600)
    return bundle
