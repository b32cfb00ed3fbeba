"""Writing and reading files safely: every write is atomic, every JSON read fails in one line.

The bottom of the package: it imports nothing of pocketvision but the error type, so data,
training, export and serving can all use it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from pocketvision.errors import PocketvisionError


def pocketvision_home() -> Path:
    """``$POCKETVISION_HOME`` (default ``~/.cache/pocketvision``): the weights and embedding
    caches live below it."""
    home = os.environ.get("POCKETVISION_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "pocketvision"


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file via a temp file in the same folder, fsync and an atomic rename.

    A process killed mid-write leaves the old file (or none), never a half-written one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        # disk full, quota, read-only: the old file stays as it was
        reason = (err.strerror or str(err)).lower()
        raise PocketvisionError(f"{path}: cannot write ({reason}); the old file is kept") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, atomically."""
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def read_json(path: Path, missing_hint: str = "") -> Any:
    """Parse a JSON file; a missing or invalid file is a one-line PocketvisionError.

    Args:
        path: The file.
        missing_hint: Appended to the "missing" message, e.g. "is RUN a pocketvision run?".
    """
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise PocketvisionError(
            f"{path}: missing{'; ' + missing_hint if missing_hint else ''}"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = err.msg if isinstance(err, json.JSONDecodeError) else "not UTF-8 text"
        raise PocketvisionError(f"{path}: not valid JSON ({reason})") from None
    except OSError as err:
        raise PocketvisionError(f"{path}: unreadable ({err.strerror or err})") from None
