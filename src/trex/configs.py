"""The recipes and configs shipped inside the package (``trex/assets/configs``), for ``trex configs``.

This folder is the one copy: a clone's ``configs/`` at the repository root is a link to it, so
``trex train configs/tiny-cpu.yaml`` in a clone and ``trex configs copy tiny-cpu.yaml`` after a
``pip install`` read the same files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from trex.errors import UserError

CONFIGS = Path(__file__).resolve().parent / "assets" / "configs"
SUFFIXES = (".yaml", ".json")


def list_configs() -> list[str]:
    """Every shipped config, as a path relative to the configs folder (``compare/smollm2-cpu.yaml``)."""
    return sorted(str(p.relative_to(CONFIGS)) for p in CONFIGS.rglob("*") if p.is_file() and p.suffix in SUFFIXES)


def config_path(name: str) -> Path:
    """The shipped file named ``name`` (with or without ``.yaml``); unknown names list the close ones."""
    known = list_configs()
    for candidate in (name, f"{name}.yaml", f"{name}.json"):
        if candidate in known:
            return CONFIGS / candidate
    import difflib

    close = difflib.get_close_matches(name, known, n=3)
    hint = f"did you mean {', '.join(close)}?" if close else "`trex configs list` shows them"
    raise UserError(f"no shipped config {name!r}; {hint}")


def first_line_comment(path: Path) -> str:
    """What a config is for: its first comment line (recipes start with one)."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def copy_config(name: str, destination: Path, overwrite: bool = False) -> Path:
    """Copy a shipped config to ``destination`` (a file, or a folder to copy into); never replaces a file
    unless ``overwrite``."""
    source = config_path(name)
    target = destination / source.name if destination.is_dir() else destination
    if target.exists() and not overwrite:
        raise UserError(f"{target} exists; pass --overwrite to replace it or choose another destination")
    if not target.parent.is_dir():
        raise UserError(f"folder {target.parent} does not exist")
    shutil.copyfile(source, target)
    return target
