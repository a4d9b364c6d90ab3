"""`loragate adapters ...`: the admin API from the command line (talks to a running server)."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
from pathlib import Path

import httpx

from service.cli.client_auth import add_key_option, bearer_headers

DEFAULT_URL = "http://127.0.0.1:8000"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loragate adapters", description="Manage adapters on a running loragate.")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"Server base URL (default {DEFAULT_URL}).")
    add_key_option(parser, admin=True)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="List registered adapters.")
    add = commands.add_parser("add", help="Register a folder the server can read (inside its allowed roots).")
    add.add_argument("name")
    add.add_argument("path", help="Adapter folder, as the server sees it.")
    push = commands.add_parser("push", help="Upload a local adapter folder as .tar.gz.")
    push.add_argument("name")
    push.add_argument("folder", type=Path)
    remove = commands.add_parser("remove", help="Remove an adapter (after its in-flight requests finish).")
    remove.add_argument("name")
    show = commands.add_parser("show", help="Show one adapter's manifest entry and state.")
    show.add_argument("name")
    return parser


def _archive(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(folder.iterdir()):
            if path.is_file():
                archive.add(path, arcname=f"{folder.name}/{path.name}")
    return buffer.getvalue()


def run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    with httpx.Client(base_url=args.url, headers=bearer_headers(args.api_key), timeout=600) as client:
        try:
            if args.command == "list":
                response = client.get("/admin/adapters")
            elif args.command == "show":
                response = client.get(f"/admin/adapters/{args.name}")
            elif args.command == "add":
                response = client.post("/admin/adapters", json={"name": args.name, "path": args.path})
            elif args.command == "push":
                if not args.folder.is_dir():
                    print(f"error: {args.folder} is not a folder", file=sys.stderr)
                    return 2
                response = client.put(f"/admin/adapters/{args.name}", content=_archive(args.folder),
                                      headers={"content-type": "application/gzip"})
            else:
                response = client.delete(f"/admin/adapters/{args.name}")
        except httpx.HTTPError as exc:
            print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
            return 1
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text
        print(f"error ({response.status_code}): {message}", file=sys.stderr)
        return 1
    if response.status_code != 204:
        print(json.dumps(response.json(), indent=2))
    return 0
