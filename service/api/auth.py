"""API-key authentication: each router declares the key its routes need, as a FastAPI dependency.

- `/v1/*` routers depend on `require_api_key` (an API key or an admin key), the admin router on
  `require_admin`, `GET /metrics` on `require_metrics_key` (any key, only with
  `metrics_require_key`); health probes and the API description (`/docs`, `/redoc`,
  `/openapi.json`: they grant nothing) declare nothing and are open. Keys are sent as
  `Authorization: Bearer KEY` (what the official openai client sends). Keys themselves: `keys.py`.
- `KeyMiddleware` (pure ASGI, before anything reads the body) identifies the key of every request:
  its id, never the key, goes to `scope["state"]["key_id"]` (`request.state.key_id`) for the
  access log and the rate limiter, with `key_role` (`"api"`/`"admin"`; both None without a valid
  key). It also enforces, before the body is read, what the matched route declares, so a request
  without a key learns nothing but 401 (not a 400 for its body, not a 413).
- Deny by default: a request no route serves (404, 405, a trailing-slash redirect, a websocket)
  needs a key, so it is a 401 without one. With an API key, such a path is a 403 when one of its
  normalised forms (percent-decoded until stable, duplicate slashes collapsed, `.`/`..` resolved)
  falls under a path segment whose routes need an admin key (`//admin`, `/v1/../admin`,
  `/%2561dmin`): the form of a path only chooses between 403 and 404 for paths that reach nothing;
  the routes that exist are guarded by what their routers declare. The method plays no part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import count_refusal, refusal_response
from service.api.keys import KeyEntry, KeyRing, Role, key_ring_for
from service.api.limits import Refusal
from service.config import Settings
from service.errors import AuthenticationError, PermissionDeniedError

logger = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 1024  # a longer bearer token is refused without hashing it
CREDENTIALS = "credentials"  # scope["state"] key of a request's `Credentials`

MISSING_KEY_MESSAGE = ("You didn't provide an API key. You need to provide your API key in an Authorization "
                       "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
MALFORMED_MESSAGE = ("The Authorization header must use Bearer auth with one API key "
                     "(i.e. Authorization: Bearer YOUR_KEY).")
INVALID_KEY_MESSAGE = "Incorrect API key provided."
FORBIDDEN_MESSAGE = "This API key may not use the admin API (/admin/*): use an admin key."


@dataclass(frozen=True)
class Credentials:
    """What a request presented: the key it matched, if any; whether it sent a usable bearer token
    and whether it sent an Authorization header at all (they choose the 401's message)."""

    entry: KeyEntry | None
    token: bool
    header: bool


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


class Auth:
    """The keys to enforce (None: auth disabled) and the one setting that moves a requirement."""

    def __init__(self, ring: KeyRing | None, metrics_require_key: bool = False) -> None:
        self.ring, self.metrics_require_key = ring, metrics_require_key

    @classmethod
    def from_settings(cls, settings: Settings) -> Auth:
        """Raises `AuthConfigError` for settings the service must not start with."""
        ring = key_ring_for(settings)
        if ring is None:
            logger.warning("authentication is DISABLED (auth_disabled): every endpoint, /admin included, is open "
                           "to anyone who can reach %s:%s", settings.host, settings.port)
        else:
            logger.info("authentication on: %d API key(s), %d admin key(s) (ids: %s); /metrics %s",
                        ring.count(Role.API), ring.count(Role.ADMIN),
                        ", ".join(sorted(entry.key_id for entry in ring.entries)),
                        "needs a key" if settings.auth.metrics_require_key else "is open")
            if not ring.count(Role.ADMIN):
                logger.info("no admin keys: /admin/* answers 403 to every key")
        return cls(ring, settings.auth.metrics_require_key)

    def identify(self, scope: Scope) -> Credentials:
        """The request's credentials, looked up once and kept in its state with `key_id`/`key_role`."""
        state = scope.setdefault("state", {})
        known = state.get(CREDENTIALS)
        if isinstance(known, Credentials):
            return known
        token, header = bearer_token(scope) if self.ring is not None else (None, False)
        entry = self.ring.lookup(token) if self.ring is not None and token is not None else None
        credentials = state[CREDENTIALS] = Credentials(entry, token is not None, header)
        state["key_id"] = entry.key_id if entry is not None else None
        state["key_role"] = entry.role.name.lower() if entry is not None else None
        return credentials

    def refusal(self, scope: Scope, need: Role) -> Refusal | None:
        """Why a request that needs `need` may not go on (401 or 403), or None."""
        if self.ring is None or need is Role.OPEN:
            return None
        credentials = self.identify(scope)
        entry = credentials.entry
        if entry is not None and entry.role >= need:
            return None
        method = scope.get("method", "WEBSOCKET")
        if entry is None:
            message = (INVALID_KEY_MESSAGE if credentials.token else
                       MALFORMED_MESSAGE if credentials.header else MISSING_KEY_MESSAGE)
            logger.debug("401 %s %s: %s", method, scope.get("path"), message)
            challenge = 'Bearer error="invalid_token"' if credentials.header else "Bearer"
            return Refusal(AuthenticationError(message), "unauthenticated", {"www-authenticate": challenge})
        logger.info("403 %s %s: key %s is not an admin key", method, scope.get("path"), entry.key_id)
        return Refusal(PermissionDeniedError(FORBIDDEN_MESSAGE), "forbidden")


# ------------------------------------------------------------------ what routers declare
@dataclass(frozen=True)
class KeyRequirement:
    """A dependency declaring the key a route needs; put on a router, it covers all its routes.
    `metrics`: needed only with `metrics_require_key`. Reads the app's `state.auth`."""

    role: Role
    metrics: bool = False

    def role_for(self, auth: Auth) -> Role:
        return Role.OPEN if self.metrics and not auth.metrics_require_key else self.role

    async def __call__(self, request: Request) -> None:  # async: no thread hop per request
        auth: Auth = request.app.state.auth  # no Auth on the app: an AttributeError, a 500, never open
        refusal = auth.refusal(request.scope, self.role_for(auth))
        if refusal is not None:
            raise refusal


require_api_key = KeyRequirement(Role.API)
require_admin = KeyRequirement(Role.ADMIN)
require_metrics_key = KeyRequirement(Role.API, metrics=True)


async def request_caller(request: Request) -> str | None:
    """The id of the key the request came with (never the key), for the audit log; None with
    auth disabled."""
    auth: Auth = request.app.state.auth
    entry = auth.identify(request.scope).entry  # looked up once per request (kept in its state)
    return entry.key_id if entry is not None else None


CallerDep = Annotated[str | None, Depends(request_caller)]


def declared_role(route: BaseRoute, auth: Auth) -> Role:
    """The key a route's (and its routers') dependencies declare; OPEN when none."""
    dependant = getattr(route, "dependant", None)
    calls = [dependency.call for dependency in (dependant.dependencies if dependant is not None else ())]
    return max((call.role_for(auth) for call in calls if isinstance(call, KeyRequirement)), default=Role.OPEN)


# ------------------------------------------------------------------ paths no route serves
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


def matched_route(routes: list[BaseRoute], scope: Scope) -> BaseRoute | None:
    """The route the router will hand the request to: the first full match, else the first partial
    one (a 405), as Starlette's router chooses."""
    partial = None
    for route in routes:
        match, _ = route.matches(scope)
        if match is Match.FULL:
            return route
        if match is Match.PARTIAL and partial is None:
            partial = route
    return partial


class KeyMiddleware:
    """Identifies every request's key and refuses, before the body is read, what its route's
    requirement (or, when no route serves the path, deny by default) does not allow."""

    def __init__(self, app: ASGIApp, auth: Auth) -> None:
        self.app, self.auth = app, auth
        self._admin_segments: frozenset[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        self.auth.identify(scope)
        refusal = self.auth.refusal(scope, self._need(scope))
        if refusal is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            count_refusal(refusal, scope.get("app"))
            await send({"type": "websocket.close", "code": 1008})
        else:
            await refusal_response(refusal, scope.get("app"))(scope, receive, send)

    def _need(self, scope: Scope) -> Role:
        routes: list[BaseRoute] = scope["app"].router.routes
        route = matched_route(routes, scope)
        if route is not None:
            return declared_role(route, self.auth)
        if self._admin_segments is None:  # the routes are all included before the first request
            self._admin_segments = frozenset(_first_segment(getattr(r, "path", "")) for r in routes
                                              if declared_role(r, self.auth) is Role.ADMIN)
        raw = scope.get("raw_path")
        forms = [_route_path(scope), raw.decode("latin-1") if isinstance(raw, bytes) else ""]
        admin = any(_first_segment(normalise_path(form)) in self._admin_segments for form in forms if form)
        return Role.ADMIN if admin else Role.API


def _first_segment(path: str) -> str:
    return path.split("/")[1] if path.count("/") else ""

