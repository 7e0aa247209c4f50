"""Drop-in plugin files: whether one is safe to run, and loading it.

A drop-in runs with the daemon's rights, so the folder and the file must be
writable by no one but their owner, and owned by root or the daemon's user;
a symlink is judged by its target. Each check returns the problem as a
sentence ending in the command that fixes it, or ``None`` when all is well.

A safe file is loaded under a private module name
(:data:`DROPIN_MODULE_PREFIX` plus its stem), compiled from source every time,
without its folder on ``sys.path``.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import pwd
import re
import stat
import sys
from pathlib import Path
from types import CodeType, ModuleType
from typing import Final

DROPIN_MODULE_PREFIX: Final = "notifier_dropin_"

_NOT_IDENTIFIER: Final = re.compile(r"\W")


class _FreshSourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles a drop-in from its source every time.

    No ``__pycache__`` is read or written in the plugin folder: a cached file
    there would be code that the folder's safety check never looked at.
    """

    def get_code(self, fullname: str) -> CodeType:
        source = self.get_data(self.path)
        return self.source_to_code(source, self.path)


def import_dropin(path: Path) -> ModuleType:
    """Run the drop-in file ``path`` and return it as a module.

    Call it only on a file :func:`file_problem` passed. The module stays in
    ``sys.modules`` under its private name (replacing an earlier load of the
    same stem), as any imported module would.

    :raises Exception: whatever the plugin's own code raises, ``SyntaxError``
        included; nothing is left in ``sys.modules`` then.
    """
    module_name = DROPIN_MODULE_PREFIX + _NOT_IDENTIFIER.sub("_", path.stem)
    loader = _FreshSourceLoader(module_name, str(path))
    spec = importlib.util.spec_from_file_location(module_name, path, loader=loader)
    if spec is None:
        msg = f"cannot load {path} as a module"
        raise ImportError(msg)
    module = importlib.util.module_from_spec(spec)

    # dataclasses and typing find a class's module through sys.modules, so it
    # must be there while the plugin runs; a failed plugin leaves no trace.
    sys.modules[module_name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def folder_problem(folder: Path, daemon_uid: int) -> str | None:
    """Return why drop-ins in ``folder`` must not be loaded, or ``None``.

    :param daemon_uid: the user besides root allowed to own the folder.
    :returns: a message with the fix, such as ``plugin folder is writable by
        others (mode 0o757); run chmod go-w /etc/notifier/plugins``.
    """
    try:
        target = folder.stat()
    except FileNotFoundError:
        return (
            "plugin folder does not exist; create it or remove it from "
            "[notifier] plugin_dirs"
        )
    except OSError as exc:
        return f"plugin folder cannot be read ({exc.strerror})"
    except ValueError:
        return "is not a path the system can look up (it holds a NUL character)"
    if not stat.S_ISDIR(target.st_mode):
        return "is not a folder; [notifier] plugin_dirs takes folders of .py files"
    problem = _ownership_problem(folder, daemon_uid)
    return None if problem is None else f"plugin folder {problem}"


def file_problem(path: Path, daemon_uid: int) -> str | None:
    """Return why the drop-in file ``path`` must not be run, or ``None``.

    :param daemon_uid: the user besides root allowed to own the file.
    :returns: a message with the fix; a symlink is judged by its target.
    """
    try:
        target = path.stat()
    except OSError:
        return "is a symlink to nothing; remove it"
    if not stat.S_ISREG(target.st_mode):
        return "is not a regular file; only .py files are loaded"
    return _ownership_problem(path, daemon_uid)


def _ownership_problem(path: Path, daemon_uid: int) -> str | None:
    """Return what makes ``path`` unsafe to run code from, with the fix.

    The path itself is checked with ``lstat``; a symlink is judged by its
    target (a link's own mode means nothing on Linux).
    """
    # Limitation: the folders above a plugin folder are not checked; whoever
    # can rename an ancestor can swap the plugin folder for one of their own.
    try:
        status = path.lstat()
        shown = path
        if stat.S_ISLNK(status.st_mode):
            shown = path.resolve()
            status = shown.stat()
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"

    faults: list[str] = []
    fixes: list[str] = []
    writers = [
        who
        for bit, who in ((stat.S_IWGRP, "group"), (stat.S_IWOTH, "others"))
        if status.st_mode & bit
    ]
    if writers:
        mode = oct(stat.S_IMODE(status.st_mode))
        faults.append(f"writable by {' and '.join(writers)} (mode {mode})")
        fixes.append(f"chmod go-w {shown}")
    if status.st_uid not in (0, daemon_uid):
        faults.append(
            f"owned by {_user(status.st_uid)}, not root or the daemon's user "
            f"({_user(daemon_uid)})"
        )
        fixes.append(f"chown root {shown}")
    if not faults:
        return None
    where = f"links to {shown}, which is " if shown != path else "is "
    return f"{where}{' and '.join(faults)}; run {' && '.join(fixes)}"


def _user(uid: int) -> str:
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"
