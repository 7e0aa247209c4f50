"""Who owns what notifier creates, and atomic replacement.

The daemon runs as its own user; sysadmins run ``notifier queue``,
``silence`` and ``test-send`` as root in the daemon's state folder. Run as
root there, everything notifier creates must belong to the folder's owner,
or the daemon can no longer read or append to it. These tests run the real
commands as root in a state folder owned by uid 65534 (nobody), then run
the daemon's side as nobody (``setpriv``); they need root and are skipped
otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import tomli_w

from notifier.atomicfile import make_folder, open_owned, write_atomic

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="giving files away needs root (and setpriv to act as another user)",
)


@pytest.fixture
def nobody_folder():
    """A folder owned by nobody, outside pytest's tree (which only root may
    enter), so that a process running as nobody can reach it."""
    base = Path(tempfile.mkdtemp(prefix="notifier-owner-"))
    base.chmod(0o755)
    folder = base / "state"
    folder.mkdir(mode=0o700)
    os.chown(folder, NOBODY, NOBODY)
    yield folder
    shutil.rmtree(base)


def owner(path: Path) -> tuple[int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid


def test_write_atomic_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    write_atomic(path, b"old", mode=0o600)

    write_atomic(path, b"new", mode=0o600)

    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_exclusive_write_never_replaces_a_file(tmp_path):
    path = tmp_path / "meta.json"
    write_atomic(path, b"first", exclusive=True)

    with pytest.raises(FileExistsError):
        write_atomic(path, b"second", exclusive=True)

    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["meta.json"]


@needs_root
def test_files_and_folders_root_creates_belong_to_the_folders_owner(nobody_folder):
    write_atomic(nobody_folder / "replaced.json", b"{}")
    os.close(open_owned(nobody_folder / "appended.log", os.O_WRONLY | os.O_CREAT))
    make_folder(nobody_folder / "outbox" / "failed")

    for name in ("replaced.json", "appended.log", "outbox", "outbox/failed"):
        assert owner(nobody_folder / name) == (NOBODY, NOBODY), name


@needs_root
def test_a_file_root_created_earlier_is_given_back_when_opened(nobody_folder):
    stray = nobody_folder / "sent.log"
    stray.write_text("2024-01-01T00:00:00Z <old@example.test>\n")
    assert owner(stray) == (0, 0)

    os.close(open_owned(stray, os.O_WRONLY | os.O_APPEND))

    assert owner(stray) == (NOBODY, NOBODY)


@needs_root
def test_root_keeps_what_it_creates_in_its_own_folder(tmp_path):
    write_atomic(tmp_path / "mine.json", b"{}")
    make_folder(tmp_path / "sub")

    assert owner(tmp_path / "mine.json") == (0, 0)
    assert owner(tmp_path / "sub") == (0, 0)


SETUP_AS_DAEMON = textwrap.dedent(
    """
    import email.policy, pathlib, sys
    from email.message import EmailMessage
    from notifier.outbox import Outbox

    outbox = Outbox.in_state_dir(pathlib.Path(sys.argv[1]))
    for subject in ("queued", "refused"):
        message = EmailMessage(policy=email.policy.SMTP)
        message["From"] = "notifier@web-1.example.test"
        message["To"] = "ops@example.test"
        message["Subject"] = subject
        message["Message-ID"] = f"<{subject}@web-1.example.test>"
        message.set_content("body\\n")
        entry = outbox.put(message)
    outbox.dead_letter(entry, entry.recipients, "550 no such user", entry.created)
    print(entry.id)
    """
)


def run(config: Path, *args: str, as_nobody: bool = False):
    command = [sys.executable, "-m", "notifier", *args, "-c", str(config)]
    if as_nobody:
        command = [*AS_NOBODY, *command]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=60, cwd=config.parent
    )


@needs_root
@pytest.mark.slow
def test_commands_run_as_root_leave_a_state_folder_the_daemon_can_use(
    nobody_folder,
):
    config = nobody_folder.parent / "notifier.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "notifier": {
                    "hostname": "web-1.example.test",
                    "state_dir": str(nobody_folder),
                },
                "mail": {"transport": "file", "to": ["ops@example.test"]},
            }
        )
    )
    config.chmod(0o644)
    script = nobody_folder.parent / "setup.py"
    script.write_text(SETUP_AS_DAEMON)
    script.chmod(0o644)
    setup = subprocess.run(
        [*AS_NOBODY, sys.executable, str(script), str(nobody_folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    refused_id = setup.stdout.strip()

    # What the documentation tells a sysadmin to run, as root.
    for args in (
        ("queue", "flush"),
        ("test-send",),
        ("queue", "retry", refused_id),
        ("silence", "all", "--for", "1h"),
    ):
        result = run(config, *args)
        assert result.returncode == 0, (args, result.stderr)

    owned_by_root = [
        str(path.relative_to(nobody_folder))
        for path in nobody_folder.rglob("*")
        if owner(path) != (NOBODY, NOBODY)
    ]
    assert owned_by_root == []
    assert (nobody_folder / "outbox" / "sent.log").exists()
    assert (nobody_folder / "outbox" / ".lock").exists()

    # The daemon's user can deliver what root put back in the queue, append
    # to the log root started, and change the silences root wrote.
    flushed = run(config, "queue", "flush", as_nobody=True)
    assert flushed.returncode == 0, flushed.stderr
    assert "1 sent" in flushed.stdout
    sent = (nobody_folder / "outbox" / "sent.log").read_text().splitlines()
    assert [line.split()[1] for line in sent] == [
        "<queued@web-1.example.test>",
        "<refused@web-1.example.test>",
    ]
    cleared = run(config, "silence", "--clear", "all", as_nobody=True)
    assert cleared.returncode == 0, cleared.stderr
