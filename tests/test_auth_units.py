"""Parts of auth that need no database: the secret box and its file, the password policy and
hasher, the auth settings."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from hub.auth.passwords import PasswordPolicyError, Passwords, check_policy, generate_password
from hub.config import AuthSettings, load_hub_config
from hub.secret_box import SecretBox, SecretBoxError, SecretFileError
from shared.config import ConfigError
from shared.signing import b64url
from test_auth_helpers import cheap_passwords


def test_secret_box_round_trip_and_binding() -> None:
    box = SecretBox.generate()
    sealed = box.encrypt(b"camera password", b"object_secrets:1")
    assert b"camera password" not in sealed
    assert box.decrypt(sealed, b"object_secrets:1") == b"camera password"
    assert box.encrypt(b"camera password", b"object_secrets:1") != sealed  # a fresh nonce each time
    with pytest.raises(SecretBoxError):
        box.decrypt(sealed, b"object_secrets:2")  # copied into another row
    with pytest.raises(SecretBoxError):
        SecretBox.generate().decrypt(sealed, b"object_secrets:1")  # another hub's key
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SecretBoxError):
        box.decrypt(tampered, b"object_secrets:1")
    for junk in (b"", b"\x01short", b"\x02short", b"\x03" + sealed[1:]):  # empty, truncated, unknown format
        with pytest.raises(SecretBoxError):
            box.decrypt(junk, b"object_secrets:1")


def test_secret_file_is_created_private_once_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "var" / "hub" / "secret.key"
    first = SecretBox.from_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary left behind
    sealed = first.encrypt(b"x", b"aad")
    assert SecretBox.from_file(path).decrypt(sealed, b"aad") == b"x"


def test_secret_file_readable_by_others_or_malformed_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    SecretBox.from_file(path)
    os.chmod(path, 0o644)
    with pytest.raises(SecretFileError, match="chmod 600"):
        SecretBox.from_file(path)
    for content in ("not base64 at all!!", b64url(b"too short")):
        path.write_text(content)
        os.chmod(path, 0o600)
        with pytest.raises(SecretFileError, match="32-byte"):
            SecretBox.from_file(path)


def test_password_policy() -> None:
    check_policy("twelve chars", "a@b.c")
    for bad, email in (("elevenchars", ""), ("x" * 257, ""), ("Admin@Example.com", "admin@example.com")):
        with pytest.raises(PasswordPolicyError):
            check_policy(bad, email)
    generated = {generate_password() for _ in range(10)}
    assert len(generated) == 10 and all(len(p) >= 20 for p in generated)


async def test_passwords_hash_with_argon2id_and_verify() -> None:
    passwords = cheap_passwords()
    hashed = await passwords.hash("a long enough password")
    assert hashed.startswith("$argon2id$") and "a long enough password" not in hashed
    assert await passwords.verify(hashed, "a long enough password")
    assert not await passwords.verify(hashed, "another password")
    assert not await passwords.verify("not a hash", "a long enough password")
    assert not await passwords.verify(None, "a long enough password")  # unknown user: dummy check, False
    assert Passwords().needs_rehash(hashed)  # the production cost differs from the tests'


def test_auth_settings_defaults_env_and_validation(tmp_path: Path) -> None:
    config = load_hub_config(env={})
    assert config.auth == AuthSettings()
    assert (config.auth.access_ttl_s, config.auth.refresh_ttl_s) == (900, 604800)
    assert config.auth.master_password == "" and config.auth.secret_file == "var/hub/secret.key"
    env = {"VIGIL_HUB_AUTH_MASTER_EMAIL": "ops@example.com", "VIGIL_HUB_AUTH_ACCESS_TTL_S": "600"}
    config = load_hub_config(env=env)
    assert config.auth.master_email == "ops@example.com" and config.auth.access_ttl_s == 600
    for bad in ({"VIGIL_HUB_AUTH_ACCESS_TTL_S": "5"}, {"VIGIL_HUB_AUTH_REFRESH_TTL_S": "100"},
                {"VIGIL_HUB_AUTH_KEY_ROTATION_DAYS": "0"}):
        with pytest.raises(ConfigError, match="auth"):
            load_hub_config(env=bad)
