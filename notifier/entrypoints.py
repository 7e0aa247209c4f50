"""Installed plugins: the ``notifier`` entry points of the distributions on
``sys.path``, read without :mod:`importlib.metadata`.

``importlib.metadata`` imports ``email``, ``zipfile`` and ``csv`` to answer,
about 1.5 MiB resident that the idle daemon (budget: 25 MB in all) would
keep for good after reading a few small text files once. What it reads is
plain: pip, and every installer after PEP 376, lays out each distribution as
a ``NAME-VERSION.dist-info`` folder beside its code, with a ``METADATA`` file
whose first lines say ``Name:`` and ``Version:``, and an ``entry_points.txt``
of ``[group]`` sections of ``name = module:attribute`` lines (setuptools'
``*.egg-info`` folders, from ``pip install -e`` of old projects, have the
same files, ``PKG-INFO`` for ``METADATA``).

Like ``importlib.metadata``, the folders of ``sys.path`` are searched in
order and a distribution found twice counts once, where it is found first
(the one Python would import). Unlike it, distributions inside zip files on
``sys.path`` are not looked in: pip never installs one that way.
"""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

METADATA_FOLDER_SUFFIXES: Final = (".dist-info", ".egg-info")
_SEPARATORS: Final = re.compile(r"[-_.]+")


@dataclass(frozen=True)
class EntryPoint:
    """One ``name = value`` line of a group in an ``entry_points.txt``.

    :param value: ``module`` or ``module:attribute.attribute``, perhaps with
        ``[extras]`` after it, which are ignored.
    :param distribution: the ``Name`` its distribution's metadata gives.
    :param version: that metadata's ``Version`` (empty if it gives none).
    """

    name: str
    value: str
    distribution: str
    version: str

    def load(self) -> object:
        """Import the module and return the object the value names."""
        target = self.value.partition("[")[0].strip()
        module_name, _, attributes = target.partition(":")
        loaded: object = importlib.import_module(module_name.strip())
        for attribute in filter(None, attributes.strip().split(".")):
            loaded = getattr(loaded, attribute)
        return loaded


def entry_points(
    group: str, search_path: Iterable[str] | None = None
) -> list[EntryPoint]:
    """Return the entry points of ``group`` of every distribution installed
    in the folders of ``search_path`` (``sys.path`` by default)."""
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for folder in metadata_folders(sys.path if search_path is None else search_path):
        key = _normalized(_folder_name_and_version(folder)[0])
        if key in seen:
            continue
        seen.add(key)
        found.extend(_read_entry_points(folder, group))
    return found


def metadata_folders(search_path: Iterable[str]) -> Iterator[Path]:
    """Yield each ``*.dist-info`` and ``*.egg-info`` folder in the folders of
    ``search_path``, folder by folder, in sorted order within one."""
    for entry in search_path:
        try:
            children = sorted(Path(entry or ".").iterdir())
        except OSError:  # a zip file, a folder that is gone or unreadable
            continue
        for child in children:
            if child.name.endswith(METADATA_FOLDER_SUFFIXES) and child.is_dir():
                yield child


def _read_entry_points(folder: Path, group: str) -> list[EntryPoint]:
    try:
        text = (folder / "entry_points.txt").read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []

    lines = list(_group_lines(text, group))
    if not lines:
        return []

    distribution, version = _name_and_version(folder)
    return [EntryPoint(name, value, distribution, version) for name, value in lines]


def _group_lines(text: str, group: str) -> Iterator[tuple[str, str]]:
    """Yield the ``(name, value)`` pairs of section ``[group]`` of an
    ``entry_points.txt``; comments and blank lines are skipped."""
    section = None
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        name, equals, value = line.partition("=")
        if section == group and equals and name.strip():
            yield name.strip(), value.strip()


def _name_and_version(folder: Path) -> tuple[str, str]:
    """Return the ``Name`` and ``Version`` of a metadata folder's headers;
    where it has none, what its folder's name says."""
    name, version = _folder_name_and_version(folder)
    for file_name in ("METADATA", "PKG-INFO"):
        try:
            text = (folder / file_name).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        headers = _headers(text)
        return headers.get("name", name), headers.get("version", version)
    return name, version


def _folder_name_and_version(folder: Path) -> tuple[str, str]:
    """Return the name and version a metadata folder's own name gives
    (``Foo-1.0.dist-info``; an ``*.egg-info`` may have no version)."""
    name, _, version = folder.name.removesuffix(folder.suffix).partition("-")
    return name, version


def _headers(text: str) -> dict[str, str]:
    """Return the first value of each header of an RFC 822 style text, by
    lower-case name, up to the first blank line."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, colon, value = line.partition(":")
        if colon and not line[0].isspace():
            headers.setdefault(key.strip().lower(), value.strip())
    return headers


def _normalized(name: str) -> str:
    """Return a distribution's name as PEP 503 compares it."""
    return _SEPARATORS.sub("-", name).lower()
