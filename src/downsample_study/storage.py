"""Files written whole or not at all, and one-line errors naming the path when they cannot be.

A temporary file beside the target is renamed over it when complete, so a reader sees the old
file or the new one."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from downsample_study.errors import StorageError, UserError

# an OSError with one of these is the disk's or the folder's fault, not the program's
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS,
                            errno.ENOTDIR, errno.EEXIST, errno.ENAMETOOLONG})
HINTS = {errno.ENOSPC: "free some space, or write elsewhere",
         errno.EEXIST: "a file is where a folder of that name should be",
         errno.ENAMETOOLONG: "a file or folder name is over 255 characters: shorten it"}


def is_storage_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in STORAGE_ERRNOS


def storage_error(err: OSError, path: Path | str | None = None,
                  within: Path | str | None = None) -> StorageError:
    """The one-line error for an ``OSError`` met while writing ``path`` (else the file the
    error names, else a file ``within`` a folder: the path is always named)."""
    where = path or err.filename2 or err.filename  # filename2: a move's destination
    where = where or f"a file in {within or Path.cwd()}"
    cause = err.strerror or type(err).__name__
    hint = f" ({HINTS[err.errno]})" if err.errno in HINTS else ""
    verb = "use" if err.errno == errno.ENAMETOOLONG else "write"
    return StorageError(f"cannot {verb} {where}: {cause}{hint}")


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open(path, mode)`` for writing, atomically."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # a name of our own (not mkstemp's, whose files are private to the user): the file
        # gets the permissions of any other the process writes
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        with open(tmp, mode.replace("w", "x"), **kwargs) as f:
            yield f
        os.replace(tmp, path)
        tmp = None
    except OSError as err:
        if not is_storage_error(err):
            raise
        raise storage_error(err, path) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def remove_orphans(folder: Path) -> list[Path]:
    """Remove the temporary files in ``folder`` that ``atomic_write`` left when its process
    was killed (their process is gone); the removed ones."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        pid = tmp.name.rsplit(".", 3)[-3] if tmp.name.count(".") >= 4 else ""
        if pid.isdigit() and not alive(int(pid)):
            with contextlib.suppress(OSError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def alive(pid: int) -> bool:
    """Whether process ``pid`` is alive (this machine's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def write_yaml(path: Path, content: Any) -> None:
    """``content`` (a config, or plain dicts and lists) as YAML, written whole or not at all."""
    with atomic_write(path) as f:
        f.write(OmegaConf.to_yaml(content))


def read_yaml(path: Path) -> Any:
    """``path`` as OmegaConf loads it; a ``UserError`` naming it when it cannot be read or is
    not YAML (edited by hand, truncated by another tool)."""
    try:
        return OmegaConf.load(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, OmegaConfBaseException) as err:
        first = str(err).splitlines()[0] if str(err) else "no detail"
        raise UserError(f"{path}: unreadable ({type(err).__name__}: {first})") from None
