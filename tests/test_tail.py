"""Tailing log files: every new line once, through rotation, truncation and restarts.

The rotation tests run a real writer process that appends numbered lines
while the test rotates the file the way logrotate does. Every seventh line
is an ERROR; the test collects the ERROR lines each poll reports and checks
that every one the writer wrote was reported exactly once.
"""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from notifier.logmatch import LineScanner
from notifier.logrules import Rules
from notifier.tail import FilePosition, Tailer

WRITER = r"""
import fcntl, os, sys, time
path, lock_path, stop_path = sys.argv[1], sys.argv[2], sys.argv[3]
check_every = int(sys.argv[4])

def open_log():
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

fd = open_log()
lock = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
seq = 0
while seq % 40 or not os.path.exists(stop_path):
    # Like a daemon told to reopen its log: it notices only now and then,
    # so some lines still go to the old file after a rotation.
    if seq % check_every == 0:
        try:
            same = os.path.samestat(os.stat(path), os.fstat(fd))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            fd = open_log()
    kind = "ERROR" if seq % 7 == 0 else "info"
    line = f"2024-05-01T12:00:00 app[42]: seq={seq:06d} {kind} something happened\n"
    fcntl.flock(lock, fcntl.LOCK_EX)
    os.write(fd, line.encode())
    fcntl.flock(lock, fcntl.LOCK_UN)
    seq += 1
    if seq % 40 == 0:
        time.sleep(0.003)
print(seq)
"""
SEQ = re.compile(r"seq=(\d+) ERROR")


class Collector:
    """Polls a tailer with the real scanner and keeps every ERROR seq seen."""

    def __init__(self) -> None:
        self.rules = Rules([r"seq=\d+ ERROR"])
        self.seqs: list[int] = []
        self.labels: list[str] = []

    def poll(self, tailer: Tailer):
        scanner = LineScanner(self.rules, max_evidence=10**6)

        def scan(segment, read, budget):
            self.labels.append(segment.label)
            return scanner.scan(
                read,
                label=segment.label,
                first_line=segment.first_line,
                budget=budget,
                flush_partial=segment.flush_partial,
            )

        report = tailer.poll(scan)
        for line in scanner.evidence:
            if line.matched:
                found = SEQ.search(line.text)
                assert found, line.text
                self.seqs.append(int(found.group(1)))
        assert scanner.matches == sum(1 for line in scanner.evidence if line.matched)
        return report

    def assert_each_error_once(self, total: int) -> None:
        expected = [seq for seq in range(total) if seq % 7 == 0]
        duplicates = sorted({seq for seq in self.seqs if self.seqs.count(seq) > 1})
        assert duplicates == []
        missing = sorted(set(expected) - set(self.seqs))
        assert missing == []
        assert sorted(self.seqs) == expected


class Writer:
    """A process appending numbered lines until told to stop."""

    def __init__(self, log: Path, lock: Path) -> None:
        self.log = log
        self.stop_file = lock.with_name("stop-writing")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(log),
                str(lock),
                str(self.stop_file),
                "25",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )

    def written(self) -> int:
        """Lines in the live file and its rotated siblings."""
        count = 0
        for path in self.log.parent.iterdir():
            if path.name.endswith(".gz"):
                with gzip.open(path, "rb") as stream:
                    count += stream.read().count(b"\n")
            elif path.name.startswith("app.log"):
                count += path.read_bytes().count(b"\n")
        return count

    def wait_for(self, lines: int) -> None:
        """Wait until the live file has ``lines`` lines (at most 20 s, so that
        a broken writer fails the test instead of hanging it)."""
        give_up = time.monotonic() + 20
        while self.live_lines() < lines:
            assert self.process.poll() is None, "the writer died"
            assert time.monotonic() < give_up, "the writer stopped writing"
            time.sleep(0.005)

    def live_lines(self) -> int:
        try:
            return self.log.read_bytes().count(b"\n")
        except FileNotFoundError:
            return 0

    def finish(self) -> int:
        """Stop the writer; return how many lines it wrote."""
        self.stop_file.touch()
        output, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0
        return int(output)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.communicate()


@contextlib.contextmanager
def writer_paused(lock: Path):
    """Hold the writer's lock: it cannot write until we let go."""
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@pytest.fixture
def logdir(tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "app.log").touch()
    return folder


def new_tailer(tmp_path: Path, logdir: Path, **options) -> Tailer:
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return Tailer(str(logdir / "app.log"), state / "offsets.json", **options)


def gzip_away(source: Path, target: Path) -> None:
    with source.open("rb") as plain, gzip.open(target, "wb") as packed:
        shutil.copyfileobj(plain, packed)
    source.unlink()


def rename_and_create(log: Path, writer: Writer, rotated: Path) -> None:
    log.rename(rotated)
    log.touch()
    writer.wait_for(1)


def run_with_rotations(
    tmp_path, logdir, rotate, rotations: int = 2, files_keep_all: bool = True
) -> tuple[Collector, int]:
    """Poll while the writer writes, rotating ``rotations`` times; return what
    was collected and how many lines were written."""
    log = logdir / "app.log"
    lock = tmp_path / "writer.lock"
    tailer = new_tailer(tmp_path, logdir)
    collector = Collector()
    collector.poll(tailer)
    writer = Writer(log, lock)
    try:
        for number in range(1, rotations + 1):
            writer.wait_for(300)
            collector.poll(tailer)
            writer.wait_for(500)
            rotate(log, lock, writer, number)
            writer.wait_for(100)
            collector.poll(tailer)
        total = writer.finish()
        collector.poll(tailer)
        collector.poll(tailer)
    finally:
        writer.kill()
        tailer.close()
    if files_keep_all:
        assert writer.written() == total
    return collector, total


def test_rename_and_create_reads_the_rest_of_the_renamed_file(tmp_path, logdir):
    def rotate(log, lock, writer, number):
        rotated = log.with_name(f"app.log.{number}")
        rename_and_create(log, writer, rotated)

    collector, total = run_with_rotations(tmp_path, logdir, rotate)

    collector.assert_each_error_once(total)
    assert any(label.endswith("app.log.1") for label in collector.labels)


def test_compress_right_after_rename_still_reads_the_old_file(tmp_path, logdir):
    # logrotate without delaycompress: rename, create, signal the writer
    # (here: wait until it wrote to the new file), then gzip the old one.
    def rotate(log, lock, writer, number):
        rotated = log.with_name("app.log.1")
        rename_and_create(log, writer, rotated)
        gzip_away(rotated, log.with_name(f"app.log.{number}.gz"))

    collector, total = run_with_rotations(tmp_path, logdir, rotate)

    collector.assert_each_error_once(total)


def test_delaycompress_compresses_the_older_file_without_rereading(tmp_path, logdir):
    def rotate(log, lock, writer, number):
        older = log.with_name("app.log.1")
        if older.exists():
            gzip_away(older, log.with_name(f"app.log.{number}.gz"))
        rename_and_create(log, writer, older)

    collector, total = run_with_rotations(tmp_path, logdir, rotate, rotations=3)

    collector.assert_each_error_once(total)


def test_copytruncate_reads_the_rest_from_the_copy_first(tmp_path, logdir):
    # copytruncate loses lines written between its copy and its truncate; the
    # writer is paused meanwhile so that every line is in one file or the
    # other, and the test can ask for all of them.
    def rotate(log, lock, writer, number):
        with writer_paused(lock):
            shutil.copyfile(log, log.with_name(f"app.log.{number}"))
            os.truncate(log, 0)

    collector, total = run_with_rotations(tmp_path, logdir, rotate)

    collector.assert_each_error_once(total)
    assert any(label.endswith("app.log.2") for label in collector.labels)


def test_two_copytruncates_between_runs_read_the_copy_in_between(tmp_path, logdir):
    def copy_and_truncate(log, lock):
        with writer_paused(lock):
            numbers = [int(path.suffix[1:]) for path in log.parent.glob("app.log.*")]
            for number in sorted(numbers, reverse=True):
                older = log.with_name(f"app.log.{number}")
                older.rename(log.with_name(f"app.log.{number + 1}"))
            shutil.copyfile(log, log.with_name("app.log.1"))
            os.truncate(log, 0)

    def rotate(log, lock, writer, number):
        copy_and_truncate(log, lock)
        writer.wait_for(150)
        copy_and_truncate(log, lock)

    collector, total = run_with_rotations(tmp_path, logdir, rotate)

    collector.assert_each_error_once(total)


def test_copytruncate_then_compress_reads_the_rest_from_the_gzip(tmp_path, logdir):
    def rotate(log, lock, writer, number):
        with writer_paused(lock):
            copy = log.with_name("app.log.1")
            shutil.copyfile(log, copy)
            os.truncate(log, 0)
        gzip_away(copy, log.with_name(f"app.log.{number}.gz"))

    collector, total = run_with_rotations(tmp_path, logdir, rotate)

    collector.assert_each_error_once(total)
    assert any(label.endswith(".gz") for label in collector.labels)


def test_truncation_in_place_starts_over_even_when_regrown(tmp_path, logdir):
    # The writer is paused while the test reads and truncates, so that no
    # line is destroyed unread; the file then grows past the old offset before
    # the next poll, which must still notice the truncation.
    log = logdir / "app.log"
    tailer = new_tailer(tmp_path, logdir)
    collector = Collector()
    lock = tmp_path / "writer.lock"
    collector.poll(tailer)
    writer = Writer(log, lock)
    try:
        writer.wait_for(400)
        with writer_paused(lock):
            collector.poll(tailer)
            lines_before = log.read_bytes().count(b"\n")
            os.truncate(log, 0)
        writer.wait_for(lines_before + 50)
        collector.poll(tailer)
        total = writer.finish()
        collector.poll(tailer)
    finally:
        writer.kill()
        tailer.close()

    assert log.read_bytes().count(b"\n") == total - lines_before
    collector.assert_each_error_once(total)


def test_delete_and_recreate_reads_the_deleted_file_through_its_handle(
    tmp_path, logdir
):
    def rotate(log, lock, writer, number):
        log.unlink()
        writer.wait_for(1)

    collector, total = run_with_rotations(
        tmp_path, logdir, rotate, files_keep_all=False
    )

    collector.assert_each_error_once(total)
    assert any(label.endswith("(deleted)") for label in collector.labels)


def shift_rotate(log: Path, writer: Writer, compress: bool = False) -> None:
    """Rotate as logrotate does by default: ``app.log.N`` becomes
    ``app.log.N+1``, ``app.log`` becomes ``app.log.1`` and a new ``app.log``
    is created; with ``compress`` (and ``delaycompress``), ``app.log.1`` is
    compressed on its way to ``app.log.2.gz``."""
    numbered = []
    for path in log.parent.iterdir():
        number = path.name.removeprefix("app.log.").removesuffix(".gz")
        if path.name.startswith("app.log.") and number.isdigit():
            numbered.append((int(number), path))
    for number, path in sorted(numbered, reverse=True):
        target = log.with_name(path.name.replace(f".{number}", f".{number + 1}", 1))
        if compress and number == 1:
            gzip_away(path, target.with_name(target.name + ".gz"))
        else:
            path.rename(target)
    rename_and_create(log, writer, log.with_name("app.log.1"))


@pytest.mark.parametrize("compress", [False, True])
def test_two_rotations_between_runs_read_the_file_in_between(
    tmp_path, logdir, compress
):
    # The file created by the first rotation is rotated away by the second
    # before any poll saw it at app.log: it is found among the rotated files.
    def rotate(log, lock, writer, number):
        shift_rotate(log, writer, compress)
        writer.wait_for(150)
        shift_rotate(log, writer, compress)

    collector, total = run_with_rotations(tmp_path, logdir, rotate)

    collector.assert_each_error_once(total)
    assert f"{logdir}/app.log.1" in collector.labels


@pytest.mark.parametrize("compress", [False, True])
def test_two_rotations_while_stopped_read_the_file_in_between(
    tmp_path, logdir, compress
):
    log = logdir / "app.log"
    collector = Collector()
    first = new_tailer(tmp_path, logdir)
    collector.poll(first)
    writer = Writer(log, tmp_path / "writer.lock")
    try:
        writer.wait_for(300)
        collector.poll(first)
        first.close()

        # While the daemon is stopped, the writer goes on through two
        # rotations.
        writer.wait_for(400)
        shift_rotate(log, writer, compress)
        writer.wait_for(150)
        shift_rotate(log, writer, compress)
        writer.wait_for(100)
        second = new_tailer(tmp_path, logdir)
        report = collector.poll(second)
        total = writer.finish()
        collector.poll(second)
        collector.poll(second)
        second.close()
    finally:
        writer.kill()

    collector.assert_each_error_once(total)
    assert any("reading all of" in event for event in report.events)
    assert report.missed == []


def test_rotated_file_compressed_later_is_not_read_again(tmp_path, logdir):
    # app.log.1 is there before the first run and is never read; when the
    # next rotation compresses it, the .gz is new but its lines are not.
    log = logdir / "app.log"
    write_lines(logdir / "app.log.1", 0, 70)
    write_lines(log, 100, 70)
    collector = Collector()
    first = new_tailer(tmp_path, logdir)
    collector.poll(first)
    first.close()

    write_lines(log, 200, 70)
    gzip_away(logdir / "app.log.1", logdir / "app.log.2.gz")
    log.rename(logdir / "app.log.1")
    write_lines(log, 300, 70)
    second = new_tailer(tmp_path, logdir)
    collector.poll(second)
    second.close()

    expected = [s for s in (*range(200, 270), *range(300, 370)) if s % 7 == 0]
    assert sorted(collector.seqs) == expected


def test_file_in_between_that_cannot_be_read_is_reported(tmp_path, logdir, caplog):
    log = logdir / "app.log"
    collector = Collector()
    tailer = new_tailer(tmp_path, logdir, start_at_end=False)
    write_lines(log, 0, 70)
    collector.poll(tailer)

    # Two rotations, and the file in between is compressed in a way that
    # cannot be read back (zstd).
    write_lines(log, 70, 70)
    log.rename(logdir / "app.log.1")
    write_lines(log, 1000, 70)
    (logdir / "app.log.1").rename(logdir / "app.log.2")
    log.rename(logdir / "app.log.1.zst")
    write_lines(log, 2000, 70)
    report = collector.poll(tailer)
    tailer.close()

    expected = [s for s in (*range(140), *range(2000, 2070)) if s % 7 == 0]
    assert sorted(collector.seqs) == expected
    assert report.missed == [
        f"{logdir}/app.log.1.zst was rotated since the last run and cannot be "
        "read (compressed in a way notifier cannot read); lines in it may have "
        "been missed"
    ]
    assert report.missed[0] in caplog.text
    assert "WARNING" in caplog.text


def write_lines(path: Path, first: int, count: int) -> None:
    with path.open("a") as stream:
        for seq in range(first, first + count):
            kind = "ERROR" if seq % 7 == 0 else "info"
            stream.write(f"app: seq={seq:06d} {kind} text\n")


@pytest.mark.parametrize("created", ["before compression", "after compression"])
def test_rename_and_compress_while_stopped_reads_the_rest_from_the_gzip(
    tmp_path, logdir, created
):
    # Created after compression, the new file usually gets the old file's
    # inode number back (ext4): that is the inode-reuse path. Created before,
    # it cannot: that is the "rotated away, not found by inode" path.
    log = logdir / "app.log"
    collector = Collector()
    first = new_tailer(tmp_path, logdir, start_at_end=False)
    write_lines(log, 0, 700)
    collector.poll(first)
    first.close()

    # While the daemon is stopped: more lines, then rotation with compression.
    write_lines(log, 700, 300)
    log.rename(logdir / "app.log.1")
    if created == "before compression":
        write_lines(log, 1000, 400)
    gzip_away(logdir / "app.log.1", logdir / "app.log.1.gz")
    if created == "after compression":
        write_lines(log, 1000, 400)
    second = new_tailer(tmp_path, logdir, start_at_end=False)
    report = collector.poll(second)
    second.close()

    collector.assert_each_error_once(1400)
    assert f"{logdir}/app.log.1.gz" in collector.labels
    assert report.events


def test_rename_while_stopped_finds_the_old_file_by_inode(tmp_path, logdir):
    log = logdir / "app.log"
    collector = Collector()
    first = new_tailer(tmp_path, logdir, start_at_end=False)
    write_lines(log, 0, 500)
    collector.poll(first)
    first.close()

    write_lines(log, 500, 200)
    log.rename(logdir / "app.log-20240501")
    write_lines(log, 700, 100)
    second = new_tailer(tmp_path, logdir, start_at_end=False)
    collector.poll(second)
    collector.poll(second)
    second.close()

    collector.assert_each_error_once(800)
    assert f"{logdir}/app.log-20240501" in collector.labels


def test_restart_neither_repeats_nor_misses_lines(tmp_path, logdir):
    log = logdir / "app.log"
    collector = Collector()
    for round_number in range(4):
        tailer = new_tailer(tmp_path, logdir, start_at_end=False)
        write_lines(log, round_number * 100, 100)
        collector.poll(tailer)
        collector.poll(tailer)
        tailer.close()

    collector.assert_each_error_once(400)


def write_info_lines(path: Path, count: int) -> None:
    with path.open("a") as stream:
        stream.writelines(
            f"app: info {number} nothing to see\n" for number in range(count)
        )


def test_offsets_past_lines_that_matched_nothing_wait_and_match_nothing_again(
    tmp_path, logdir
):
    # Saving after every poll of a quiet log is most of its cost, so such
    # offsets wait; a crash before they are saved reads those lines again,
    # and they report nothing again.
    log = logdir / "app.log"
    offsets = tmp_path / "state" / "offsets.json"
    collector = Collector()
    first = new_tailer(tmp_path, logdir, start_at_end=False)
    write_lines(log, 0, 1)
    collector.poll(first)
    saved = offsets.read_text()

    write_info_lines(log, 50)
    quiet = collector.poll(first)
    after_quiet = offsets.read_text()
    restarted = new_tailer(tmp_path, logdir, start_at_end=False)
    again = collector.poll(restarted)

    assert quiet.bytes_read > 0
    assert after_quiet == saved
    assert again.bytes_read == quiet.bytes_read
    assert collector.seqs == [0]


def quiet_poll_waiting_to_save(
    tmp_path: Path, logdir: Path, collector: Collector
) -> Tailer:
    """Return a tailer whose last poll read lines that matched nothing."""
    first = new_tailer(tmp_path, logdir, start_at_end=False)
    collector.poll(first)
    write_info_lines(logdir / "app.log", 50)
    collector.poll(first)
    return first


def test_a_match_saves_every_offset_at_once(tmp_path, logdir):
    log = logdir / "app.log"
    collector = Collector()
    first = quiet_poll_waiting_to_save(tmp_path, logdir, collector)

    write_lines(log, 7, 1)
    collector.poll(first)
    restarted = new_tailer(tmp_path, logdir, start_at_end=False)
    again = collector.poll(restarted)

    assert again.bytes_read == 0
    assert collector.seqs == [7]


def test_close_saves_the_offsets_that_waited(tmp_path, logdir):
    collector = Collector()
    first = quiet_poll_waiting_to_save(tmp_path, logdir, collector)

    first.close()
    restarted = new_tailer(tmp_path, logdir, start_at_end=False)
    again = collector.poll(restarted)

    assert again.bytes_read == 0


def test_first_run_starts_at_the_end_and_later_files_at_their_start(tmp_path, logdir):
    log = logdir / "app.log"
    write_lines(log, 0, 50)
    tailer = Tailer(str(logdir / "*.log"), tmp_path / "offsets.json")
    collector = Collector()

    collector.poll(tailer)
    assert collector.seqs == []

    write_lines(log, 50, 10)
    write_lines(logdir / "new.log", 1000, 8)
    collector.poll(tailer)
    tailer.close()

    assert sorted(collector.seqs) == [56, 1001]


def test_glob_picks_up_a_file_created_between_runs(tmp_path, logdir):
    tailer = Tailer(str(logdir / "*.log"), tmp_path / "offsets.json")
    collector = Collector()
    collector.poll(tailer)

    write_lines(logdir / "worker-1.log", 0, 30)
    report = collector.poll(tailer)
    write_lines(logdir / "worker-2.log", 100, 30)
    write_lines(logdir / "worker-1.log", 200, 30)
    later = collector.poll(tailer)
    tailer.close()

    assert report.files == 2
    assert later.files == 3
    expected = [
        s for s in (*range(30), *range(100, 130), *range(200, 230)) if s % 7 == 0
    ]
    assert sorted(collector.seqs) == expected


def test_double_star_in_a_glob_reaches_folders_at_any_depth(tmp_path, logdir):
    tailer = Tailer(str(logdir / "**" / "*.log"), tmp_path / "offsets.json")
    collector = Collector()
    collector.poll(tailer)

    deep = logdir / "site-a" / "2024" / "05"
    deep.mkdir(parents=True)
    write_lines(logdir / "top.log", 0, 8)
    write_lines(logdir / "site-a" / "app.log", 100, 8)
    write_lines(deep / "worker.log", 200, 8)
    write_lines(deep / "worker.txt", 300, 8)
    report = collector.poll(tailer)
    tailer.close()

    assert report.files == 4
    assert sorted(collector.seqs) == [0, 7, 105, 203]


def test_first_line_still_being_written_is_read_once_complete(tmp_path, logdir):
    log = logdir / "app.log"
    tailer = new_tailer(tmp_path, logdir)
    collector = Collector()
    collector.poll(tailer)

    with log.open("a") as stream:
        stream.write("app: seq=000007 ERR")
    collector.poll(tailer)
    with log.open("a") as stream:
        stream.write("OR text\n")
    collector.poll(tailer)
    tailer.close()

    assert collector.seqs == [7]


def test_reused_inode_with_new_content_is_read_from_its_start(tmp_path, logdir):
    log = logdir / "app.log"
    collector = Collector()
    first = new_tailer(tmp_path, logdir, start_at_end=False)
    write_lines(log, 0, 300)
    collector.poll(first)
    first.close()
    old_inode = log.stat().st_ino

    # Deleted while the daemon is stopped; a new file gets the same inode
    # number (ext4 hands the freed inode out again at once).
    log.unlink()
    write_lines(log, 5000, 500)
    if log.stat().st_ino != old_inode:
        # Stand-in for a file system that did not reuse the number this time:
        # make the saved position claim the new file's inode, which is all
        # that inode reuse looks like from the outside.
        state = tmp_path / "state" / "offsets.json"
        document = json.loads(state.read_text())
        document["files"][0]["ino"] = log.stat().st_ino
        state.write_text(json.dumps(document))
    second = new_tailer(tmp_path, logdir, start_at_end=False)
    report = collector.poll(second)
    second.close()

    expected = [s for s in (*range(300), *range(5000, 5500)) if s % 7 == 0]
    assert sorted(collector.seqs) == expected
    assert any("replaced" in event for event in report.events)


def test_budget_catches_up_over_several_polls(tmp_path, logdir):
    log = logdir / "app.log"
    write_lines(log, 0, 20000)
    size = log.stat().st_size
    tailer = new_tailer(tmp_path, logdir, start_at_end=False, max_bytes=200_000)
    collector = Collector()

    reports = [collector.poll(tailer) for _ in range(size // 200_000 + 2)]
    tailer.close()

    assert reports[0].behind_bytes > size - 200_001
    assert all(report.bytes_read <= 200_000 for report in reports)
    assert reports[-1].behind_bytes == 0
    collector.assert_each_error_once(20000)


def test_offsets_are_saved_in_one_file_and_nothing_else(tmp_path, logdir):
    tailer = new_tailer(tmp_path, logdir)
    for number in range(3):
        write_lines(logdir / "app.log", number * 10, 10)
        Collector().poll(tailer)
    tailer.close()

    assert [path.name for path in (tmp_path / "state").iterdir()] == ["offsets.json"]


def test_offsets_saved_without_poll_time_and_fingerprints_are_used(tmp_path, logdir):
    # As saved before the poll time and the fingerprints of rotated files
    # were kept.
    log = logdir / "app.log"
    write_lines(log, 0, 70)
    collector = Collector()
    first = new_tailer(tmp_path, logdir, start_at_end=False)
    collector.poll(first)
    first.close()
    state = tmp_path / "state" / "offsets.json"
    document = json.loads(state.read_text())
    assert {"polled", "fingerprints", "folders"} <= set(document)
    state.write_text(
        json.dumps({key: document[key] for key in ("version", "pattern", "files")})
    )

    write_lines(log, 70, 70)
    second = new_tailer(tmp_path, logdir, start_at_end=False)
    collector.poll(second)
    second.close()

    collector.assert_each_error_once(140)


def test_damaged_offsets_start_over_as_a_first_run(tmp_path, logdir, caplog):
    log = logdir / "app.log"
    write_lines(log, 0, 70)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "offsets.json").write_text("{not json")
    tailer = new_tailer(tmp_path, logdir)
    collector = Collector()

    collector.poll(tailer)
    write_lines(log, 70, 7)
    collector.poll(tailer)
    tailer.close()

    assert collector.seqs == [70]
    assert "damaged" in caplog.text
    kept = [path.name for path in (tmp_path / "state").glob("offsets.json.corrupt-*")]
    assert len(kept) == 1
    saved = json.loads((tmp_path / "state" / "offsets.json").read_text())
    assert FilePosition(**saved["files"][0]).offset == log.stat().st_size


def test_missing_file_is_reported_and_found_when_it_appears(tmp_path, logdir):
    log = logdir / "app.log"
    log.unlink()
    tailer = new_tailer(tmp_path, logdir)
    collector = Collector()

    assert collector.poll(tailer).missing
    write_lines(log, 0, 10)
    report = collector.poll(tailer)
    tailer.close()

    assert not report.missing
    assert sorted(collector.seqs) == [0, 7]


def test_damaged_compressed_copy_does_not_stop_the_check(tmp_path, logdir):
    log = logdir / "app.log"
    collector = Collector()
    first = new_tailer(tmp_path, logdir, start_at_end=False)
    write_lines(log, 0, 2000)
    collector.poll(first)
    first.close()

    write_lines(log, 2000, 700)
    log.rename(logdir / "app.log.1")
    write_lines(log, 5000, 70)
    gzip_away(logdir / "app.log.1", logdir / "app.log.1.gz")
    packed = (logdir / "app.log.1.gz").read_bytes()
    (logdir / "app.log.1.gz").write_bytes(packed[: len(packed) // 2])
    second = new_tailer(tmp_path, logdir, start_at_end=False)
    report = collector.poll(second)
    second.close()

    assert any("cannot be found again" in event for event in report.events)
    new_file = [seq for seq in range(5000, 5070) if seq % 7 == 0]
    assert [seq for seq in collector.seqs if seq >= 5000] == new_file
    assert [seq for seq in collector.seqs if 2000 <= seq < 2700] == []
