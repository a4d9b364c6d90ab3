#!/usr/bin/env python3
"""Container health check: exit 0 when loragate answers 200 on a health path, else 1.

Used by the Dockerfile's HEALTHCHECK (standard library only, so it works in any image):

    python scripts/healthcheck.py               # GET /health/live  (process up, engine not dead)
    python scripts/healthcheck.py /health/ready # GET /health/ready (engine serves; 503 while starting/draining)

The port is LORAGATE_PORT (default 8000); proxies from the environment are ignored.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    path = argv[1] if len(argv) > 1 else "/health/live"
    port = os.environ.get("LORAGATE_PORT", "8000")
    url = f"http://127.0.0.1:{port}{path}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"healthcheck {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
