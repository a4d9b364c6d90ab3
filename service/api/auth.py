"""API-key authentication: a pure ASGI middleware in front of every route.

- `/v1/*` (and anything else that is not open) needs an API key or an admin key, `/admin/*` an
  admin key, sent as `Authorization: Bearer KEY` (what the official openai client sends).
- Open without a key: `/health/live`, `/health/ready`, the API description (`/docs`, `/redoc`,
  `/openapi.json`: they grant nothing) and `/metrics` unless `metrics_require_key`.
- Deny by default: a path is open only when the path the router sees is exactly an open path;
  every other path needs a key, so an unknown path is a 401 (not a 404) without one. Whether a
  path needs an admin key is decided on normalised forms of the path (percent-decoded until
  stable, duplicate slashes collapsed, `.`/`..` resolved, trailing slash dropped) and of the raw
  request target, so `//admin`, `/v1/../admin`, `/%61dmin` or `/admin%2F...` cannot pass with an
  API key. The method plays no part (HEAD and OPTIONS are checked like GET).
- Only SHA-256 digests of the keys are kept; a presented key is compared with every digest with
  `hmac.compare_digest` (no early exit). Each key has an id (`id:key` in a keys file, else the
  first 8 hex digits of its digest); the id, never the key, goes to `scope["state"]["key_id"]`
  (`request.state.key_id`) for the middlewares and logs downstream, with `key_role`
  (`"api"`/`"admin"`; both None for requests that presented no valid key on an open path).
- Auth is off only with `auth_disabled`, refused on a non-loopback host unless
  `allow_insecure_bind`; with neither keys nor `auth_disabled` the service does not start.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from urllib.parse import unquote

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import error_response
from service.config import Settings

logger = logging.getLogger(__name__)

HEALTH_PATHS = ("/health/live", "/health/ready")
METRICS_PATH = "/metrics"
ADMIN_SEGMENT = "admin"
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_KEY_CHARS = 16  # shorter keys are accepted with a warning
MAX_TOKEN_CHARS = 1024  # a longer bearer token is refused without hashing it

MISSING_KEY_MESSAGE = ("You didn't provide an API key. You need to provide your API key in an Authorization "
                       "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
MALFORMED_MESSAGE = ("The Authorization header must use Bearer auth with one API key "
                     "(i.e. Authorization: Bearer YOUR_KEY).")
INVALID_KEY_MESSAGE = "Incorrect API key provided."
FORBIDDEN_MESSAGE = "This API key may not use the admin API (/admin/*): use an admin key."


class AuthConfigError(ValueError):
    """Key settings the service must not start with; the message says how to fix them."""


class Role(IntEnum):
    OPEN = 0  # what an open path needs
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
    sources = ((Role.API, settings.api_keys, settings.api_keys_file, "api_keys"),
               (Role.ADMIN, settings.admin_keys, settings.admin_keys_file, "admin_keys"))
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
    `install_auth`); `warn`: log weak-key warnings."""
    has_keys = bool(settings.api_keys or settings.admin_keys or settings.api_keys_file or settings.admin_keys_file)
    if settings.auth_disabled:
        if has_keys:
            raise AuthConfigError(
                "auth_disabled is set but keys are configured too: either remove LORAGATE_AUTH_DISABLED "
                "(keys are then required) or remove the keys (api_keys, admin_keys, api_keys_file, "
                "admin_keys_file). `make serve` sets LORAGATE_AUTH_DISABLED=true unless keys are exported in "
                "the environment (LORAGATE_API_KEYS, LORAGATE_ADMIN_KEYS or their _FILE forms).")
        if not is_loopback(settings.host) and not settings.allow_insecure_bind:
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


# ------------------------------------------------------------------ paths
def normalise_path(path: str) -> str:
    """Percent-decoded until stable, `\\` read as `/`, duplicate slashes collapsed, `.`/`..`
    resolved (never above the root), no trailing slash."""
    while True:  # each round that changes the text shortens it, so this ends
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    segments: list[str] = []
    for segment in path.replace("\\", "/").split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
        else:
            segments.append(segment)
    return "/" + "/".join(segments)


def _route_path(scope: Scope) -> str:
    """The path the router matches (the request path without the app's root_path)."""
    path: str = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root):len(root) + 1] in ("", "/"):
        return path[len(root):]
    return path


def required_role(scope: Scope, open_paths: frozenset[str]) -> Role:
    path = _route_path(scope)
    if path in open_paths:
        return Role.OPEN
    raw = scope.get("raw_path")
    forms = [path, raw.decode("latin-1") if isinstance(raw, bytes) else ""]
    admin = any(normalise_path(form).split("/")[1] == ADMIN_SEGMENT for form in forms if form)
    return Role.ADMIN if admin else Role.API


def bearer_token(scope: Scope) -> tuple[str | None, bool]:
    """(token, header present): the token of the one `Authorization: Bearer` header, scheme
    case-insensitive; None when missing, repeated or malformed."""
    values = [value for name, value in scope.get("headers", ()) if name.lower() == b"authorization"]
    if not values:
        return None, False
    if len(values) > 1:
        return None, True
    try:
        scheme, _, token = values[0].decode("ascii").strip().partition(" ")
    except UnicodeDecodeError:
        return None, True
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS or any(c.isspace() for c in token):
        return None, True
    return token, True


# ------------------------------------------------------------------ middleware
def _count_refusal(scope: Scope, reason: str) -> None:
    """`loragate_rejected_requests_total{reason}` of the running app (none in bare test apps)."""
    services = getattr(getattr(scope.get("app"), "state", None), "services", None)
    metrics = getattr(services, "metrics", None)
    if metrics is not None:
        metrics.rejected.labels(reason=reason).inc()


class AuthMiddleware:
    def __init__(self, app: ASGIApp, ring: KeyRing | None, open_paths: frozenset[str]) -> None:
        self.app, self.ring, self.open_paths = app, ring, open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["key_id"] = state["key_role"] = None
        if self.ring is None:
            await self.app(scope, receive, send)
            return
        need = required_role(scope, self.open_paths)
        token, presented = bearer_token(scope)
        entry = self.ring.lookup(token) if token is not None else None
        if entry is not None:
            state["key_id"] = entry.key_id
        if need is Role.OPEN or (entry is not None and entry.role >= need):
            if entry is not None:
                state["key_role"] = entry.role.name.lower()
            await self.app(scope, receive, send)
            return
        if entry is None:
            message = INVALID_KEY_MESSAGE if token is not None else (MALFORMED_MESSAGE if presented else
                                                                     MISSING_KEY_MESSAGE)
            logger.debug("401 %s %s: %s", scope.get("method", "WEBSOCKET"), scope.get("path"), message)
            challenge = 'Bearer error="invalid_token"' if presented else "Bearer"
            _count_refusal(scope, "unauthenticated")
            response = error_response(401, message, "invalid_request_error", None, "invalid_api_key",
                                      headers={"www-authenticate": challenge})
        else:
            logger.info("403 %s %s: key %s is not an admin key", scope.get("method", "WEBSOCKET"),
                        scope.get("path"), entry.key_id)
            _count_refusal(scope, "forbidden")
            response = error_response(403, FORBIDDEN_MESSAGE, "invalid_request_error", None,
                                      "insufficient_permissions")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await response(scope, receive, send)


def open_paths_for(app: FastAPI, settings: Settings) -> frozenset[str]:
    paths = {*HEALTH_PATHS, *(p for p in (app.docs_url, app.redoc_url, app.openapi_url) if p)}
    if not settings.metrics_require_key:
        paths.add(METRICS_PATH)
    return frozenset(paths)


def install_auth(app: FastAPI, settings: Settings) -> None:
    """Put the auth middleware outermost among the app's middlewares (raises `AuthConfigError` for
    settings the service must not start with)."""
    ring = key_ring_for(settings)
    open_paths = open_paths_for(app, settings)
    if ring is None:
        logger.warning("authentication is DISABLED (auth_disabled): every endpoint, /admin included, is open "
                       "to anyone who can reach %s:%s", settings.host, settings.port)
    else:
        logger.info("authentication on: %d API key(s), %d admin key(s) (ids: %s); open without a key: %s",
                    ring.count(Role.API), ring.count(Role.ADMIN),
                    ", ".join(sorted(entry.key_id for entry in ring.entries)), ", ".join(sorted(open_paths)))
        if not ring.count(Role.ADMIN):
            logger.info("no admin keys: /admin/* answers 403 to every key")
    app.add_middleware(AuthMiddleware, ring=ring, open_paths=open_paths)
