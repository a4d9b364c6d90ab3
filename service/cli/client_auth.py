"""The key the `loragate` client commands send to a running service, as `Authorization: Bearer`.

`/admin/*` commands (adapters, routes) send `--api-key`, else $LORAGATE_ADMIN_KEY, else
$LORAGATE_API_KEY; `/v1/*` commands (eval) send `--api-key`, else $LORAGATE_API_KEY, else
$LORAGATE_ADMIN_KEY (an admin key works on /v1 too). No key: no header (a keyless server).
"""

from __future__ import annotations

import argparse
import os

API_KEY_ENV = "LORAGATE_API_KEY"
ADMIN_KEY_ENV = "LORAGATE_ADMIN_KEY"


def key_from_env(admin: bool) -> str | None:
    names = (ADMIN_KEY_ENV, API_KEY_ENV) if admin else (API_KEY_ENV, ADMIN_KEY_ENV)
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def add_key_option(parser: argparse.ArgumentParser, admin: bool) -> None:
    first, second = (ADMIN_KEY_ENV, API_KEY_ENV) if admin else (API_KEY_ENV, ADMIN_KEY_ENV)
    parser.add_argument("--api-key", default=key_from_env(admin),
                        help=f"Sent as `Authorization: Bearer ...` (default ${first}, else ${second}). "
                        "Prefer the environment: a flag shows in the process list.")


def bearer_headers(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}
