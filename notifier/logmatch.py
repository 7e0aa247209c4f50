"""Finding the lines of a log that match a check's rules, fast.

This module owns the block scanner that applies :class:`notifier.logrules.Rules`
to a stream of bytes, and the evidence it keeps. It knows nothing about files,
offsets or rotation (see :mod:`notifier.tail`): it is handed a
``readinto(buffer)`` function and returns how far it got.

How it stays fast: data is read in large blocks into one buffer, and each
block is searched as a whole. When every pattern needs one of a few literal
strings, the block's bytes are searched for all of them in one pass (an
Aho-Corasick automaton from ``ahocorasick-rs``; without it, a ``bytes.find``
pass per literal) and only the lines around a hit are decoded and given to the
regular expression. Of the literals an alternative needs (``127.0.0.1`` and
``denied`` in ``127\\.0\\.0\\.1.*denied``) the rarest at the start of the
data is searched. Otherwise the block's complete lines are decoded at once
and searched with one compiled alternation of all patterns. Either way line
boundaries are located only around a hit, and lines are counted with
``count(b"\\n")``. Patterns always see decoded text, so both ways give the
same answer; the first is merely quicker.

A line longer than :data:`MAX_LINE_BYTES` is never held in memory whole: it
is searched in overlapping pieces of that size, and still counts as one line.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from notifier.logrules import (
    EVIDENCE_CHARS,
    HitFinder,
    Rules,
    cut_evidence,
    printable,
)

BLOCK_SIZE: Final = 1024 * 1024
"""Bytes read and searched at a time, at most."""
FIRST_BLOCK_SIZE: Final = 64 * 1024
"""Bytes read first; each read that fills its block doubles the next, up to
:data:`BLOCK_SIZE`. A quiet log gains a few lines between two runs, and the
read buffer is only as large as the reads: a full-size one, zeroed when it is
made, would cost a megabyte of page faults on every run."""
MAX_LINE_BYTES: Final = 1024 * 1024
"""Longer lines are searched in pieces of this size (memory stays bounded)."""
ONE_PASS_MIN_BYTES: Final = 32 * 1024
"""Blocks smaller than this are searched a literal at a time, not in one
pass: a quiet log's few new lines take microseconds either way, and the
one-pass library (0.5 to 0.8 MiB resident once loaded) is then never loaded
by a daemon whose logs only ever gain a few lines between two runs."""
_SAMPLE_BYTES: Final = 256 * 1024
"""Bytes at the start of a scan in which each literal's hits are counted, to
search the rarest."""
_WINDOW_BYTES: Final = 64 * 1024
"""A block's literals are searched this many bytes at a time (to the next line
end), which bounds the hits held at once."""
_PIECE_OVERLAP: Final = 4096
"""Bytes of a long line's piece searched again with the next piece, so a match
crossing the boundary between two pieces is still found."""
_LONG_LINE_LEAD: Final = 200
"""Characters shown before the match when a long line is cut for evidence."""
_Text = TypeVar("_Text", str, bytes, bytearray)


@dataclass(frozen=True)
class EvidenceLine:
    """One line kept as evidence: a match, or context around one.

    :param segment: which scanned segment it came from (see
        :meth:`LineScanner.scan`).
    :param index: the line's index within that segment, from 0.
    """

    segment: int
    index: int
    text: str
    matched: bool


@dataclass(frozen=True)
class Scanned:
    """How far one :meth:`LineScanner.scan` got.

    :param consumed: bytes from the start of the data up to the end of the
        last complete line handled; the caller's next read starts there.
    :param lines: complete lines handled.
    :param matches: lines that counted.
    :param stopped_by_budget: the scan stopped because of ``budget``, not at
        the end of the data.
    """

    consumed: int
    lines: int
    matches: int
    stopped_by_budget: bool


@dataclass
class SegmentInfo:
    """What the scanner knows of a segment: where it came from and its count."""

    label: str
    first_line: int | None
    matches: int = 0
    first_match: str = ""


@dataclass
class _LongLine:
    """A line longer than MAX_LINE_BYTES, being searched piece by piece."""

    index: int
    matched_text: str = ""
    ignored: bool = False
    pieces: int = 0


@dataclass
class _Cursor:
    """Where a scan is: what was handled, and what waits in the buffer."""

    consumed: int = 0
    """Bytes handled, up to the end of the last complete line."""
    lines: int = 0
    dropped: int = 0
    """Bytes of the long line being searched that were let go already."""
    filled: int = 0
    """Bytes at the start of the buffer read but not handled yet."""
    long_line: _LongLine | None = None


@dataclass
class _Tally:
    """Counters of the segment being scanned."""

    matches: int = 0
    first_match: str = ""


class LineScanner:
    """Applies :class:`Rules` to one run's data, segment after segment.

    One scanner serves one check run: it adds up matches, lines and bytes
    over every segment (a log file, the rest of its rotated predecessor) and
    keeps the first ``max_evidence`` matched lines, each with ``context``
    lines before and after it when they are in the data of that segment.

    Memory stays within a few blocks whatever the data: lines longer than
    :data:`MAX_LINE_BYTES` are searched in pieces.

    :param one_pass: search the literals of the rules in one pass when
        ``ahocorasick-rs`` is installed; ``False`` uses a ``bytes.find`` pass
        per literal instead (the same answer, slower; for tests).
    :param one_pass_from: the smallest block searched in one pass (see
        :data:`ONE_PASS_MIN_BYTES`).
    """

    def __init__(
        self,
        rules: Rules,
        *,
        context: int = 0,
        max_evidence: int = 20,
        block_size: int = BLOCK_SIZE,
        max_line: int = MAX_LINE_BYTES,
        one_pass: bool = True,
        one_pass_from: int = ONE_PASS_MIN_BYTES,
    ) -> None:
        self.rules = rules
        self.context = context
        self.max_evidence = max_evidence
        self.block_size = block_size
        self.max_line = max(max_line, 2 * _PIECE_OVERLAP)
        self.segments: list[SegmentInfo] = []
        self.matches = 0
        self.lines = 0
        self.bytes = 0
        self._evidence: dict[tuple[int, int], EvidenceLine] = {}
        self._kept = 0
        self._recent: collections.deque[tuple[int, str]] = collections.deque(
            maxlen=max(context, 1)
        )
        self._after_left = 0
        self._after_index = 0
        self._segment = -1
        self._tally = _Tally()
        self._buffer: bytearray | None = None
        self._view: memoryview | None = None
        self.one_pass = one_pass
        """Search literals in one pass (:func:`notifier.logrules.literal_finder`)."""
        self.one_pass_from = one_pass_from
        self.needles: tuple[bytes, ...] = ()
        """The literals searched, picked from the first block scanned."""
        self._picked = False

    @property
    def evidence(self) -> list[EvidenceLine]:
        """Return the kept lines in the order they were read."""
        return [self._evidence[key] for key in sorted(self._evidence)]

    def scan(
        self,
        readinto: Callable[[memoryview], int],
        *,
        label: str,
        first_line: int | None = None,
        budget: int = 2**62,
        flush_partial: bool = False,
    ) -> Scanned:
        """Scan data from ``readinto`` until it gives nothing or ``budget`` is spent.

        :param readinto: fills the buffer it is given with the next bytes,
            as much as it has, and returns how many; 0 at the end.
        :param label: names the data in evidence (the log file's path).
        :param first_line: the line number of the first line, when known.
        :param budget: bytes to handle at most; the scan stops at the last
            line ending within it. A single line longer than the whole budget
            is still read to its end, so that every scan makes progress.
        :param flush_partial: handle a last line without a line ending as a
            complete line (the writer is done with it).
        :returns: how far the scan got; data after ``consumed`` (a partial
            last line, or what the budget did not cover) must be offered
            again next time.
        """
        self._start_segment(label, first_line)
        cursor = _Cursor()
        left = budget
        block = min(FIRST_BLOCK_SIZE, self.block_size)
        stopped = False
        while True:
            if left <= 0 and cursor.consumed > 0:
                stopped = True
                break
            want = block if left <= 0 else min(block, left)
            view = self._room(cursor.filled + want)[1]
            count = readinto(view[cursor.filled : cursor.filled + want])
            if count <= 0:
                break
            if count == want:
                block = min(2 * block, self.block_size)
            left -= count
            self._take(cursor, cursor.filled + count)
        if flush_partial and (cursor.filled or cursor.long_line is not None):
            self._flush(cursor)
        self._end_segment(cursor.lines, cursor.consumed)
        return Scanned(cursor.consumed, cursor.lines, self._tally.matches, stopped)

    def _take(self, cursor: _Cursor, end: int) -> None:
        """Handle the complete lines among the first ``end`` bytes of the
        buffer, and keep the rest (a line not yet ended) at its start."""
        buffer, view = self._buffers()
        cut = buffer.rfind(b"\n", cursor.filled, end) + 1

        # No line ending yet: keep the line, in pieces when it is long.
        # Limitation: in a line longer than MAX_LINE_BYTES, a match longer
        # than _PIECE_OVERLAP that straddles two pieces is not found, and a
        # lookahead or \Z near the end of a piece sees that end (a space
        # put there), not the rest of the line.
        if cut == 0:
            cursor.filled = end
            if end > self.max_line:
                cursor.long_line = cursor.long_line or _LongLine(cursor.lines)
                self._search_piece(cursor.long_line, view[:end], final=False)
                cursor.dropped += end - _PIECE_OVERLAP
                buffer[:_PIECE_OVERLAP] = view[end - _PIECE_OVERLAP : end]
                cursor.filled = _PIECE_OVERLAP
            return

        # The first line ending closes a long line being searched.
        start = 0
        if cursor.long_line is not None:
            start = buffer.find(b"\n", 0, end) + 1
            self._search_piece(cursor.long_line, view[: start - 1], final=True)
            self._finish_long(cursor.long_line)
            cursor.long_line = None
        self._scan_block(buffer, start, cut, cursor.lines + (1 if start else 0))
        cursor.lines += buffer.count(b"\n", 0, cut)
        cursor.consumed += cursor.dropped + cut
        cursor.dropped = 0
        buffer[: end - cut] = view[cut:end]
        cursor.filled = end - cut

    def _flush(self, cursor: _Cursor) -> None:
        """Handle the last line of the data, which has no line ending."""
        pending = bytes(self._buffers()[1][: cursor.filled])
        if cursor.long_line is not None:
            self._search_piece(cursor.long_line, pending, final=True)
            self._finish_long(cursor.long_line)
        else:
            data = bytearray(pending + b"\n")
            self._scan_block(data, 0, len(data), cursor.lines)
        cursor.lines += 1
        cursor.consumed += cursor.dropped + cursor.filled

    def _buffers(self) -> tuple[bytearray, memoryview]:
        """Return the scanner's read buffer and a view of it."""
        return self._room(0)

    def _room(self, size: int) -> tuple[bytearray, memoryview]:
        """Return the read buffer and a view of it, grown first to hold
        ``size`` bytes. It is kept from block to block (a fresh buffer for
        every block would cost a page fault per 4 KiB) and grows to a block
        and a long line's piece at most."""
        held = 0 if self._buffer is None else len(self._buffer)
        if self._buffer is None or self._view is None or held < size:
            largest = self.block_size + self.max_line + 2 * _PIECE_OVERLAP
            grown = bytearray(max(size, min(2 * held, largest), _PIECE_OVERLAP))
            if self._buffer is not None:
                grown[:held] = self._buffer
            self._buffer = grown
            self._view = memoryview(grown)
        return self._buffer, self._view

    def _start_segment(self, label: str, first_line: int | None) -> None:
        self._segment += 1
        self.segments.append(SegmentInfo(label, first_line))
        self._recent.clear()
        self._after_left = 0
        self._tally = _Tally()

    def _end_segment(self, lines: int, consumed: int) -> None:
        info = self.segments[self._segment]
        info.matches = self._tally.matches
        info.first_match = self._tally.first_match
        self.matches += self._tally.matches
        self.lines += lines
        self.bytes += consumed

    def _scan_block(self, data: bytearray, start: int, cut: int, base: int) -> None:
        """Find the matching lines among the complete lines ``data[start:cut]``,
        the first of which has index ``base`` in the segment."""
        if self._after_left > 0:
            self._owed_context(data, start, cut, base)
        literals = self.rules.literals
        if literals is not None:
            if not self._picked:
                # The sample ends where the lines read end: past it, the
                # buffer holds what an earlier block left.
                sample_end = min(cut, start + _SAMPLE_BYTES)
                self.needles = literals.pick(data[start:sample_end])
                self._picked = True
            one_pass = self.one_pass and cut - start >= self.one_pass_from
            find_hits = literals.finder(self.needles, one_pass=one_pass)
            self._scan_bytes(data, start, cut, base, find_hits)
            self._remember_tail(data, start, cut, base)
        else:
            text = self.rules.decode(data[start:cut])
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            self._scan_text(text, base)
            self._remember_tail(text, 0, len(text), base)

    def _scan_bytes(
        self, data: bytearray, start: int, cut: int, base: int, find_hits: HitFinder
    ) -> None:
        # The hot loop of the whole check: nothing per line, little per hit.
        literals = self.rules.literals
        exact = literals is not None and literals.exact and not self.rules.ignore
        counts = self.rules.counts
        encoding = self.rules.encoding
        tally = self._tally
        index_at, index = start, base
        for line_start, line_end in self._lines_hit(data, start, cut, find_hits):
            text = ""
            if not exact:
                raw = data[line_start:line_end]
                text = (raw[:-1] if raw.endswith(b"\r") else raw).decode(
                    encoding, "replace"
                )
            if exact or counts(text):
                tally.matches += 1
                if self._kept < self.max_evidence or not tally.first_match:
                    text = text or self._text_of(data[line_start:line_end])
                    tally.first_match = tally.first_match or text
                    index += data.count(b"\n", index_at, line_start)
                    index_at = line_start
                    self._keep(data, start, cut, line_start, line_end, index, text)

    def _lines_hit(
        self, data: bytearray, start: int, cut: int, find_hits: HitFinder
    ) -> Iterator[tuple[int, int]]:
        """Yield where each line of ``data[start:cut]`` that holds a literal
        starts and ends (at its line feed), in order, each line once."""
        literals = self.rules.literals
        haystack, shift = data, 0
        if literals is not None and literals.lower:
            haystack, shift = data[start:cut].lower(), start

        # Windows end at a line end, so that no hit straddles two; they keep
        # the list of hits small when a literal is on every line.
        after = window = start
        while window < cut:
            window_end = (
                data.find(b"\n", min(window + _WINDOW_BYTES, cut) - 1, cut) + 1 or cut
            )
            for _needle, begin, _end in find_hits(
                haystack, window - shift, window_end - shift
            ):
                hit = window + begin
                if hit < after:
                    continue
                line_start = data.rfind(b"\n", after, hit) + 1 or after
                after = data.find(b"\n", hit, window_end) + 1
                yield line_start, after - 1
            window = window_end

    def _scan_text(self, text: str, base: int) -> None:
        """Count the matching lines of ``text``, complete lines each ending
        with a line feed, the first of which has index ``base``."""
        counts = self.rules.counts
        tally = self._tally
        index_at, index = 0, base
        for line_start, line_end in self._lines_to_try(text):
            line = text[line_start:line_end]
            if counts(line):
                if not tally.matches:
                    tally.first_match = line
                tally.matches += 1
                if self._kept < self.max_evidence:
                    index += text.count("\n", index_at, line_start)
                    index_at = line_start
                    self._keep(text, 0, len(text), line_start, line_end, index, line)

    def _lines_to_try(self, text: str) -> Iterator[tuple[int, int]]:
        """Yield where each line of ``text`` that may match starts and ends
        (at its line feed), in order, each line once: the lines where a search
        of the whole text finds a match, or every line when such a search
        could miss one (:attr:`notifier.logrules.Rules.block_search`)."""
        end = len(text)
        position = 0
        if not self.rules.block_search:
            while position < end:
                line_end = _line_end(text, position)
                yield position, line_end
                position = line_end + 1
            return

        # A match may start at the very end of the text (``^$`` after the last
        # line feed) where no line is; the position only ever moves forward.
        search = self.rules.search
        while position < end and (match := search(text, position)) is not None:
            hit = match.start()
            if hit >= end:
                return
            line_start = text.rfind("\n", position, hit) + 1 or position
            line_end = _line_end(text, hit)
            yield line_start, line_end
            position = line_end + 1

    def _text_of(self, line: _Text) -> str:
        text = line if isinstance(line, str) else self.rules.decode(bytes(line))
        return text[:-1] if text.endswith("\r") else text

    def _keep(
        self,
        data: _Text,
        start: int,
        cut: int,
        line_start: int,
        line_end: int,
        index: int,
        text: str,
    ) -> None:
        """Keep a matched line with the context around it, if there is room."""
        if self._kept >= self.max_evidence:
            return
        self._kept += 1
        self._add(index, cut_evidence(text), matched=True)
        if not self.context:
            return

        # Context before: this block first, then the end of the previous one.
        before = _lines_before(data, start, line_start, self.context)
        for distance, line in enumerate(reversed(before), start=1):
            self._add(index - distance, cut_evidence(self._text_of(line)), False)
        for recent_index, recent_text in self._recent:
            if index - self.context <= recent_index < index - len(before):
                self._add(recent_index, recent_text, matched=False)

        # Context after: what this block has; the rest is owed to the next.
        # Limitation: lines not yet written when the run reads are not shown,
        # and a later run does not add them to this run's evidence.
        self._after_left = self.context
        self._after_index = index + 1
        self._owed_context(data, line_end + 1, cut, index + 1)

    def _owed_context(self, data: _Text, start: int, cut: int, base: int) -> None:
        """Keep context lines still owed after a match, from the line at
        ``start`` (index ``base``) on."""
        if base != self._after_index:
            # A long line came in between; it is not shown as context.
            self._after_left -= base - self._after_index
            self._after_index = base
        position = start
        newline = _newline(data)
        while self._after_left > 0 and position < cut:
            end = data.find(newline, position, cut)
            if end < 0:
                break
            line = cut_evidence(self._text_of(data[position:end]))
            self._add(self._after_index, line, matched=False)
            self._after_index += 1
            self._after_left -= 1
            position = end + 1

    def _remember_tail(self, data: _Text, start: int, cut: int, base: int) -> None:
        """Remember a block's last lines as context for a match at the very
        start of the next block."""
        if not self.context or self._kept >= self.max_evidence:
            return
        tail = _lines_before(data, start, cut, self.context)
        first = base + data.count(_newline(data), start, cut) - len(tail)
        for offset, line in enumerate(tail):
            text = cut_evidence(self._text_of(line))
            self._recent.append((first + offset, text))

    def _add(self, index: int, text: str, matched: bool) -> None:
        if index < 0:
            return
        key = (self._segment, index)
        known = self._evidence.get(key)
        if known is not None and known.matched:
            return
        self._evidence[key] = EvidenceLine(self._segment, index, text, matched)

    def _search_piece(
        self, long_line: _LongLine, piece: bytes | memoryview, *, final: bool
    ) -> None:
        """Search one piece of a long line. Only the first piece starts where
        the line starts and only the last ends where it ends: a later piece is
        searched from its second character (its start was searched with the
        piece before, which it overlaps), so that ``^`` cannot match there, and
        a piece before the last gets a space at its end, so that ``$`` cannot."""
        text = str(piece, self.rules.encoding, "replace")
        if final and text.endswith("\r"):
            text = text[:-1]
        elif not final:
            text += " "
        lead = 0 if long_line.pieces == 0 else 1
        long_line.pieces += 1
        if self.rules.ignored(text):
            long_line.ignored = True
        if long_line.matched_text:
            return
        match = self.rules.search(text, lead)
        if match is not None:
            begin = max(match.start() - _LONG_LINE_LEAD, 0)
            window = text[begin : begin + EVIDENCE_CHARS]
            prefix = "[...] " if begin > 0 or long_line.pieces > 1 else ""
            long_line.matched_text = (
                prefix + printable(window) + " [... line longer than "
                f"{MAX_LINE_BYTES // 1024} KiB cut]"
            )

    def _finish_long(self, long_line: _LongLine) -> None:
        if not long_line.matched_text or long_line.ignored:
            return
        self._tally.matches += 1
        self._tally.first_match = self._tally.first_match or long_line.matched_text
        if self._kept < self.max_evidence:
            self._kept += 1
            self._add(long_line.index, long_line.matched_text, matched=True)


def _line_end(text: str, position: int) -> int:
    """Return where the line holding ``position`` ends: its line feed, or the
    end of the text (which should end with one, but a decoder might eat it)."""
    found = text.find("\n", position)
    return found if found >= 0 else len(text)


def _newline(data: str | bytes | bytearray) -> Any:
    """Return the line feed of the same type as ``data``."""
    return "\n" if isinstance(data, str) else b"\n"


def _lines_before(data: _Text, start: int, line_start: int, count: int) -> list[_Text]:
    """Return up to ``count`` complete lines that end right before
    ``line_start``, oldest first, without their line endings."""
    newline = _newline(data)
    found: list[_Text] = []
    end = line_start - 1
    while len(found) < count and end >= start:
        begin = data.rfind(newline, start, end) + 1 or start
        found.append(data[begin:end])
        end = begin - 1
    found.reverse()
    return found


def format_evidence(scanner: LineScanner) -> tuple[str, ...]:
    """Return the scanner's evidence as lines in the style of ``grep -n -C``.

    A match reads ``path:LINE: text`` and a context line ``path-LINE- text``
    (without ``LINE`` when the line number is unknown, as after starting at
    the end of a file); ``--`` separates lines that are not adjacent. A last
    line says how many matching lines were not kept.
    """
    shown: list[str] = []
    previous: tuple[int, int] | None = None
    for line in scanner.evidence:
        info = scanner.segments[line.segment]
        if previous is not None and previous != (line.segment, line.index - 1):
            shown.append("--")
        mark = ":" if line.matched else "-"
        if info.first_line is None:
            where = f"{info.label}{mark}"
        else:
            where = f"{info.label}{mark}{info.first_line + line.index}{mark}"
        shown.append(f"{where} {line.text}")
        previous = (line.segment, line.index)
    hidden = scanner.matches - sum(1 for line in scanner.evidence if line.matched)
    if hidden > 0:
        lines = "line" if hidden == 1 else "lines"
        shown.append(f"({hidden:,} more matching {lines} not shown)")
    return tuple(shown)
