"""One writer for every file trex writes, and checked reads of files named by saved configs.

Writes are atomic (a temporary sibling renamed over the target, so an interrupted save never leaves a file
that loads) and give new files and folders the permissions ``open()`` and ``mkdir()`` would, whatever the
library that filled them (``mkstemp``, ``mkdtemp`` and safetensors' ``save_file`` all create private 0600/0700
entries, which would hide adapters and caches from the other users of a shared machine).
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()
FILE_MODE = 0o666 & ~_UMASK
"""What `open()` gives a new file."""
DIR_MODE = 0o777 & ~_UMASK
"""What `mkdir()` gives a new folder."""


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, then rename it over ``path``.

    The mode is set after ``write`` returns, because writers such as safetensors' ``save_file`` replace the
    temporary file (and its mode) instead of writing into it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_tensors_atomic(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str] | None = None) -> None:
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def make_temp_dir(parent: Path, prefix: str) -> Path:
    """A new staging folder in ``parent`` with the mode ``mkdir()`` would give (``mkdtemp`` gives 0700)."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, DIR_MODE)
    return folder


def set_default_modes(folder: Path) -> None:
    """Give everything under ``folder`` the modes ``open()``/``mkdir()`` would, for files another library wrote.

    transformers' ``save_pretrained`` writes its safetensors through ``save_file``, so they come out 0600.
    """
    for path in folder.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, DIR_MODE if path.is_dir() else FILE_MODE)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file, turning a truncated or corrupt file into an error that names it."""
    if not path.is_file():
        raise FileNotFoundError(f"missing weights file {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise ValueError(f"{path} is corrupt or truncated and cannot be read as safetensors ({err})") from err


def member_file(folder: Path, name: str, max_bytes: int) -> Path:
    """The regular file ``name`` (a relative path listed in a saved config) inside ``folder``, resolved.

    A config comes from whoever shipped the folder, so its paths are checked before anything is opened: an
    absolute path or a ``..`` would let it read (or probe the existence of) any file, a FIFO or device would
    hang the reader, and a huge (even sparse) file would take minutes to hash.

    Raises:
        ValueError: one line naming the folder, the name and why it is refused.
    """

    def refuse(reason: str) -> ValueError:
        return ValueError(f"{folder}: listed file {name!r} {reason}")

    if not isinstance(name, str) or not name:
        raise refuse("is not a non-empty relative path")
    relative = PurePosixPath(name)
    if relative.is_absolute():
        raise refuse("is an absolute path; files must be listed relative to their folder")
    if ".." in relative.parts:
        raise refuse("uses '..'; files must lie inside their folder")
    try:
        root = folder.resolve(strict=True)
        path = (folder / relative).resolve(strict=True)
        info = path.stat()
    except FileNotFoundError:
        raise refuse("does not exist") from None
    except (OSError, ValueError) as err:
        raise refuse(f"cannot be resolved ({err})") from None
    if not path.is_relative_to(root):
        raise refuse(f"resolves to {path}, outside the folder (a symbolic link)")
    if not stat.S_ISREG(info.st_mode):
        raise refuse("is not a regular file")
    if info.st_size > max_bytes:
        raise refuse(f"has {info.st_size} bytes, more than the {max_bytes} allowed")
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
