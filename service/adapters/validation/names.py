"""Adapter names, and the rule that a source path must lie inside the allowed adapter roots."""

from __future__ import annotations

import re
from pathlib import Path

from service.adapters.validation.errors import fail

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME_RE = re.compile(NAME_PATTERN)


def validate_adapter_name(name: str, reserved: set[str]) -> None:
    """Refuse names that are malformed or would shadow the base model or a route."""
    # fullmatch: `$` alone would accept a trailing newline.
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise fail(
            f"Invalid adapter name {name!r}: use 1-64 characters of lowercase letters, digits, '.', '_' "
            "or '-', starting with a letter or digit.",
            "invalid_adapter_name",
            param="name",
        )
    # Reserved names (e.g. "SmolLM2-135M-Instruct") may be mixed case; clients compare loosely.
    if name in {r.lower() for r in reserved}:
        raise fail(
            f"Adapter name {name!r} is reserved: it would shadow the base model or a route.",
            "invalid_adapter_name",
            param="name",
        )


def resolve_source_path(path: str, allowed_roots: list[Path]) -> Path:
    """Resolve `path` (symlinks included) and require it to lie inside one of `allowed_roots`.

    Relative paths are taken relative to each root in turn. Anything outside the roots is a 400
    whether or not it exists, so the endpoint cannot be used to probe the filesystem; a path
    inside a root that does not exist is a 404.
    """
    if not isinstance(path, str) or not path.strip() or "\x00" in path:
        raise fail("Adapter path must be a non-empty string.", "invalid_adapter_path", param="path")
    raw = Path(path)
    # Refused even when it would resolve back inside: it is never needed and hides intent.
    if ".." in raw.parts:
        raise fail(
            f"Adapter path {path!r} contains '..'; give a path inside the allowed adapter directories.",
            "adapter_path_outside_roots",
            param="path",
        )
    roots: list[Path] = []
    for root in allowed_roots:
        try:
            roots.append(Path(root).resolve(strict=False))
        except (OSError, RuntimeError):
            continue
    candidates = [raw] if raw.is_absolute() else [root / raw for root in roots]

    inside: list[Path] = []
    for candidate in candidates:
        try:
            resolved = candidate.resolve(strict=False)
        except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, odd names
            raise fail(f"Adapter path {path!r} cannot be resolved: {exc}.", "invalid_adapter_path", "path") from exc
        if any(resolved == root or resolved.is_relative_to(root) for root in roots):
            inside.append(resolved)
    if not inside:
        raise fail(
            f"Adapter path {path!r} is outside the allowed adapter directories "
            f"({', '.join(str(r) for r in roots) or 'none configured'}).",
            "adapter_path_outside_roots",
            param="path",
        )
    for resolved in inside:
        try:
            final = resolved.resolve(strict=True)
        except FileNotFoundError:
            continue
        except (OSError, RuntimeError) as exc:
            raise fail(f"Adapter path {path!r} cannot be resolved: {exc}.", "invalid_adapter_path", "path") from exc
        # Re-check: a symlink could have been swapped in between the two resolutions.
        if any(final == root or final.is_relative_to(root) for root in roots):
            return final
    raise fail(f"Adapter path {path!r} does not exist.", "adapter_not_found", param="path", status=404)
