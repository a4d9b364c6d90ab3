"""API keys: loading them (settings, keys files), keeping only their SHA-256 digests, and looking a
presented key up in constant time. Who needs which key is declared by the routers (`auth.py`).

- Each key has an id (`id:key` in a keys file, else the first 8 hex digits of its digest) and a
  role (`api` or `admin`; a key listed as both is an admin key).
- Only digests are kept; a presented key is compared with every digest with `hmac.compare_digest`
  (no early exit).
- Auth is off only with `auth_disabled`, refused on a non-loopback host unless
  `allow_insecure_bind`; with neither keys nor `auth_disabled` the service does not start.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import os
import re
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from service.config import ENV_PREFIX, Settings

logger = logging.getLogger(__name__)

KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_KEY_CHARS = 16  # shorter keys are accepted with a warning


class AuthConfigError(ValueError):
    """Key settings the service must not start with; the message says how to fix them."""


class Role(IntEnum):
    OPEN = 0  # what an open route needs
    API = 1
    ADMIN = 2


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    digest: bytes
    role: Role


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


class KeyRing:
    """The configured keys, as SHA-256 digests only."""

    def __init__(self, entries: list[KeyEntry]) -> None:
        self.entries = tuple(entries)

    def __len__(self) -> int:
        return len(self.entries)

    def count(self, role: Role) -> int:
        return sum(1 for entry in self.entries if entry.role == role)

    def lookup(self, token: str) -> KeyEntry | None:
        """The entry whose key is `token`: every digest is compared, in constant time each."""
        digest = _digest(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(digest, entry.digest):
                found = entry
        return found


# ------------------------------------------------------------------ loading keys
def _check_key(key: str, where: str) -> None:
    if not key:
        raise AuthConfigError(f"{where}: empty key")
    if not all("!" <= char <= "~" for char in key):
        raise AuthConfigError(f"{where}: a key must be printable ASCII without spaces (it travels in an "
                              "HTTP header)")


def parse_keys_file(path: Path, setting: str, warn: bool = True) -> list[tuple[str | None, str]]:
    """(id or None, key) per line: `key` or `id:key`; blank lines and `#` comments are skipped.
    A line with a `:` is always `id:key` (a key containing `:` must be given an id)."""
    path = path.expanduser()
    try:
        text = path.read_text(encoding="utf-8")
        world_readable = bool(path.stat().st_mode & 0o004)
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"cannot read {setting} {path}: {exc}") from exc
    if world_readable and warn:
        logger.warning("%s %s is readable by every user of this machine; chmod 600 it", setting, path)
    keys: list[tuple[str | None, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{setting} {path} line {number}"
        key_id, colon, key = line.partition(":")
        if not colon:
            key_id, key = "", line
        elif not KEY_ID_PATTERN.fullmatch(key_id):
            raise AuthConfigError(f"{where}: the key id before ':' must be 1-64 letters, digits, '_', '.' "
                                  "or '-' (starting with a letter or digit)")
        _check_key(key, where)
        keys.append((key_id or None, key))
    return keys


def load_key_ring(settings: Settings, warn: bool = True) -> KeyRing:
    by_digest: dict[bytes, KeyEntry] = {}
    auth = settings.auth
    sources = ((Role.API, auth.api_keys, auth.api_keys_file, "api_keys"),
               (Role.ADMIN, auth.admin_keys, auth.admin_keys_file, "admin_keys"))
    for role, listed, keys_file, setting in sources:
        pairs: list[tuple[str | None, str]] = []
        for index, key in enumerate(listed):
            _check_key(key, f"{setting}[{index}]")
            pairs.append((None, key))
        if keys_file is not None:
            pairs += parse_keys_file(keys_file, f"{setting}_file", warn)
        for key_id, key in pairs:
            digest = _digest(key)
            known = by_digest.get(digest)
            # The same key listed twice is one key, with the higher role and the first id it was given.
            name = key_id or (known.key_id if known else digest.hex()[:8])
            by_digest[digest] = KeyEntry(name, digest, max(role, known.role) if known else role)
            if warn and len(key) < MIN_KEY_CHARS:
                logger.warning("key %s is shorter than %d characters: use a long random key, e.g. "
                               "python -c 'import secrets; print(secrets.token_urlsafe(32))'", name, MIN_KEY_CHARS)
    ids: dict[str, int] = {}
    for entry in by_digest.values():
        ids[entry.key_id] = ids.get(entry.key_id, 0) + 1
    duplicated = sorted(key_id for key_id, count in ids.items() if count > 1)
    if duplicated:
        raise AuthConfigError(f"key id(s) {', '.join(duplicated)} name more than one key; give each key its own "
                              "id (`id:key` in a keys file)")
    return KeyRing(list(by_digest.values()))


def is_loopback(host: str) -> bool:
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def key_ring_for(settings: Settings, warn: bool = True) -> KeyRing | None:
    """The keys to enforce, or None when auth is disabled. Raises `AuthConfigError` for settings the
    service must not start with (called by `loragate serve` before anything else, and by
    `Auth.from_settings`); `warn`: log weak-key warnings."""
    auth = settings.auth
    has_keys = bool(auth.api_keys or auth.admin_keys or auth.api_keys_file or auth.admin_keys_file)
    if auth.auth_disabled:
        if has_keys:
            raise AuthConfigError(
                "auth_disabled is set but keys are configured too: either remove LORAGATE_AUTH_DISABLED "
                "(keys are then required) or remove the keys (api_keys, admin_keys, api_keys_file, "
                "admin_keys_file). `make serve` sets LORAGATE_AUTH_DISABLED=true unless keys are exported in "
                "the environment (LORAGATE_API_KEYS, LORAGATE_ADMIN_KEYS or their _FILE forms).")
        if not is_loopback(settings.host) and not auth.allow_insecure_bind:
            raise AuthConfigError(
                f"refusing to listen on {settings.host} with authentication disabled: anyone who can reach "
                "it could generate and change adapters and routes. Configure keys "
                "(LORAGATE_API_KEYS / LORAGATE_ADMIN_KEYS or LORAGATE_API_KEYS_FILE / LORAGATE_ADMIN_KEYS_FILE) "
                "and drop LORAGATE_AUTH_DISABLED, listen on 127.0.0.1 (--host 127.0.0.1), or set "
                "LORAGATE_ALLOW_INSECURE_BIND=true (e.g. behind a proxy that authenticates).")
        return None
    ring = load_key_ring(settings, warn)
    if not ring:
        raise AuthConfigError(
            "no API keys configured: set LORAGATE_API_KEYS='[\"KEY\"]' and/or LORAGATE_ADMIN_KEYS, or "
            "LORAGATE_API_KEYS_FILE / LORAGATE_ADMIN_KEYS_FILE (one key per line, `id:key` names it); "
            "or run without keys on 127.0.0.1 with LORAGATE_AUTH_DISABLED=true (what `make serve` does)")
    return ring


# The environment variables that can carry raw keys (flat and nested names; matched ignoring case,
# as pydantic-settings reads them).
RAW_KEY_VARIABLES = frozenset(f"{ENV_PREFIX}{name}" for name in (
    "API_KEYS", "ADMIN_KEYS", "AUTH__API_KEYS", "AUTH__ADMIN_KEYS"))


def forget_raw_keys(settings: Settings) -> None:
    """Once the key ring holds their digests, drop the raw keys from the settings and from this
    process's environment, which vLLM's engine processes (started later) inherit: a memory or
    `/proc/<pid>/environ` reader of any of them then finds no key. (The main process's own
    `/proc/self/environ` keeps the block it was started with: prefer a keys file.)"""
    settings.auth = settings.auth.model_copy(update={"api_keys": [], "admin_keys": []})
    for name in [name for name in os.environ if name.upper() in RAW_KEY_VARIABLES]:
        del os.environ[name]
