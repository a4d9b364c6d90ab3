"""What an adapter folder may hold: its two required files, and no pickles, escaping links or
special files. Listing the folder never opens a file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from service.adapters.validation.errors import fail

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"

# Formats that are (or may be) pickles: loading them can run arbitrary code, so they are refused
# outright rather than ignored, and never opened.
PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib"})

_MAX_FOLDER_ENTRIES = 256


def scan_folder(folder: Path, max_size_bytes: int) -> tuple[list[str], int]:
    """List the folder's files (sorted, relative) and their total size, refusing pickles, links
    leaving the folder, special files and oversized folders. Never opens a file."""
    files: list[str] = []
    total = 0
    entries = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        for name in sorted(dirnames + filenames):
            entries += 1
            if entries > _MAX_FOLDER_ENTRIES:
                raise fail(f"Adapter folder holds more than {_MAX_FOLDER_ENTRIES} entries.", "adapter_too_large")
            full = Path(dirpath) / name
            rel = full.relative_to(folder).as_posix()
            st = full.lstat()
            if stat.S_ISLNK(st.st_mode):
                # vLLM would follow it: it must not lead outside the adapter.
                try:
                    target = full.resolve(strict=True)
                except (OSError, RuntimeError):
                    raise fail(f"Adapter file {rel!r} is a broken or looping symlink.", "unsafe_adapter_file") from None
                if not target.is_relative_to(folder):
                    raise fail(f"Adapter file {rel!r} is a symlink pointing outside the adapter folder.", "unsafe_adapter_file")
                st = target.stat()
            if stat.S_ISDIR(st.st_mode):
                continue
            if Path(name).suffix.lower() in PICKLE_SUFFIXES:
                raise fail(
                    f"Adapter file {rel!r} is in a pickle-based format, which can execute code when loaded; "
                    f"it is refused. Ship only {WEIGHTS_FILE} (remove {rel!r} from the folder).",
                    "pickle_weights_refused",
                )
            if not stat.S_ISREG(st.st_mode):
                raise fail(f"Adapter entry {rel!r} is not a regular file.", "unsafe_adapter_file")
            files.append(rel)
            total += st.st_size
            if total > max_size_bytes:
                raise fail(
                    f"Adapter folder is larger than the {max_size_bytes}-byte limit.", "adapter_too_large"
                )
    return sorted(files), total
