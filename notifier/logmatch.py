"""Finding the lines of a log that match a check's patterns, fast.

This module owns the rules of the ``logscan`` check (patterns, ignore
patterns, encoding) and the block scanner that applies them to bytes. It
knows nothing about files, offsets or rotation (see :mod:`notifier.tail`):
it is handed a ``read(n)`` function and returns how far it got.

How it stays fast: data is read in large blocks, and each block is searched
as a whole. When every pattern needs one of a few literal strings (``error``
in ``error:\\s+\\d+``), the block's bytes are searched for those literals with
``bytes.find`` and only the line around a hit is decoded and given to the
regular expression. Otherwise the block's complete lines are decoded at once
and searched with one compiled alternation of all patterns. Either way line
boundaries are located only around a hit, and lines are counted with
``bytes.count``. Patterns always see decoded text, so both ways give the same
answer; the first is merely quicker.

Rules a user can rely on:

- Patterns and ignore patterns are Python regular expressions applied to one
  line at a time, without its line ending (``\\n`` or ``\\r\\n``); ``^`` and
  ``$`` are the line's start and end. A line that matches a pattern and no
  ignore pattern counts once, however many patterns it matches.
- Bytes that are not valid in the encoding become U+FFFD; NUL and other
  control characters are kept for matching and shown escaped (``\\x00``) in
  evidence.
- Evidence lines are cut at :data:`EVIDENCE_CHARS` characters with a marker
  saying how much was left out.
- A line longer than :data:`MAX_LINE_BYTES` is never held in memory whole: it
  is searched in overlapping pieces of that size. It still counts as one line.
"""

from __future__ import annotations

import codecs
import collections
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

BLOCK_SIZE: Final = 1024 * 1024
"""Bytes read and searched at a time."""
MAX_LINE_BYTES: Final = 1024 * 1024
"""Longer lines are searched in pieces of this size (memory stays bounded)."""
EVIDENCE_CHARS: Final = 1000
"""Evidence lines are cut at this many characters."""
_PIECE_OVERLAP: Final = 4096
"""Bytes of a long line's piece searched again with the next piece, so a match
crossing the boundary between two pieces is still found."""
_LONG_LINE_LEAD: Final = 200
"""Characters shown before the match when a long line is cut for evidence."""
_MIN_LITERAL: Final = 3
"""Shortest literal worth a block search; shorter ones hit on most lines."""
_CASE_TRAPS: Final = frozenset("iksIKS")
"""ASCII letters that a case-insensitive Python pattern also matches with a
non-ASCII character (dotless i, dotted capital I, KELVIN SIGN, long s); a byte
search cannot see those."""
_Text = TypeVar("_Text", str, bytes, bytearray)
_GLOBAL_FLAGS: Final = re.compile(r"\(\?([aiLmsux]+)\)")


class RulesError(ValueError):
    """The patterns or the encoding cannot be used; the message says why."""


def _escape_controls() -> dict[int, str]:
    table = {code: f"\\x{code:02x}" for code in range(32) if code != 9}
    table.update({code: f"\\x{code:02x}" for code in range(127, 160)})
    return table


_CONTROL_ESCAPES: Final = _escape_controls()


def printable(text: str) -> str:
    """Return ``text`` with control characters (but tab) shown as ``\\xNN``.

    Log content goes to terminals and email bodies; an escape sequence or a
    bare carriage return in it must not act, only show.
    """
    return text.translate(_CONTROL_ESCAPES)


def cut_evidence(text: str, limit: int = EVIDENCE_CHARS) -> str:
    """Return ``text`` cut at ``limit`` characters, with a marker when cut."""
    if len(text) <= limit:
        return printable(text)
    left_out = len(text) - limit
    return printable(text[:limit]) + f" [... {left_out} more characters cut]"


def check_encoding(name: str) -> str:
    """Return the canonical name of the log encoding ``name``.

    :raises RulesError: when Python has no such codec, or when the encoding
        does not write a line feed as the single byte ``\\n`` (UTF-16 and
        UTF-32 logs are not supported).
    """
    try:
        canonical = codecs.lookup(name).name
    except LookupError as exc:
        msg = f"{name!r} is not an encoding Python knows"
        raise RulesError(msg) from exc
    try:
        newline_ok = "\n".encode(canonical) == b"\n"
    except (UnicodeError, LookupError):
        newline_ok = False
    if not newline_ok:
        msg = f"{name!r} does not write a line feed as one byte"
        raise RulesError(msg)
    return canonical


def _byte_search_exact(encoding: str) -> bool:
    """Return whether finding a character's bytes in raw data is the same as
    finding the character in the decoded text, for this encoding."""
    if encoding in ("utf-8", "utf-8-sig", "ascii"):
        return True
    try:
        every_byte = bytes(range(256)).decode(encoding, errors="replace")
        ascii_text = bytes(range(128)).decode(encoding)
    except (UnicodeError, LookupError):
        return False
    single_byte = len(every_byte) == 256
    return single_byte and ascii_text == "".join(map(chr, range(128)))


def _scoped(pattern: str) -> str:
    """Return ``pattern`` with leading global flags made local to it, so that
    it can stand inside an alternation."""
    match = _GLOBAL_FLAGS.match(pattern)
    if match is None:
        return f"(?:{pattern})"
    return f"(?{match.group(1)}:{pattern[match.end() :]})"


def _compile_any(patterns: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    """Return one compiled alternation of ``patterns`` if Python accepts it,
    else each pattern compiled alone."""
    if not patterns:
        return ()
    try:
        combined = "|".join(_scoped(pattern) for pattern in patterns)
        return (re.compile(combined, re.MULTILINE),)
    except re.error:
        return tuple(re.compile(pattern, re.MULTILINE) for pattern in patterns)


@dataclass(frozen=True)
class _Literals:
    """Strings of which every match contains at least one."""

    needles: tuple[bytes, ...]
    lower: bool
    """Search the lower-cased block (some pattern ignores case)."""
    exact: bool
    """A hit is a match: the patterns are nothing but these strings."""


class _LiteralFinder:
    """Works out the literals a pattern needs, from Python's own parse tree.

    The parser is private to :mod:`re`; any surprise in its shape makes this
    return ``None`` and the scanner uses the slower, always-right way.
    """

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._parser: Any = importlib.import_module("re._parser")
        self.lower = False

    def needles(self, pattern: str) -> tuple[set[str], bool] | None:
        """Return the literals of ``pattern`` and whether they are all of it."""
        tree = self._parser.parse(pattern, re.MULTILINE)
        flags = int(tree.state.flags)
        ignorecase = bool(flags & re.IGNORECASE)
        traps = frozenset() if flags & re.ASCII else _CASE_TRAPS
        self.lower = self.lower or ignorecase
        found = self._sequence(list(tree), ignorecase, traps)
        pure = None if ignorecase else self._pure(list(tree))
        if found is None:
            return None
        return found, pure is not None and set(pure) == found

    def _usable(self, code: int, ignorecase: bool, traps: frozenset[str]) -> bool:
        char = chr(code)
        if char == "\ufffd" or char == "\n":
            return False
        if ignorecase:
            return code < 128 and char not in traps
        try:
            char.encode(self._encoding)
        except UnicodeError:
            return False
        return True

    def _sequence(
        self, items: list[Any], ignorecase: bool, traps: frozenset[str]
    ) -> set[str] | None:
        best: set[str] | None = None
        run: list[str] = []
        for op, argument in [*items, (None, None)]:
            name = getattr(op, "name", None)
            if name == "LITERAL" and self._usable(argument, ignorecase, traps):
                run.append(chr(argument))
                continue
            if run:
                best = _better(best, {"".join(run)})
                run = []
            best = _better(best, self._item(name, argument, ignorecase, traps))
        return best

    def _item(
        self, name: str | None, argument: Any, ignorecase: bool, traps: frozenset[str]
    ) -> set[str] | None:
        if name == "SUBPATTERN":
            _group, add_flags, del_flags, inner = argument
            scoped = (ignorecase or bool(add_flags & re.IGNORECASE)) and not (
                del_flags & re.IGNORECASE
            )
            self.lower = self.lower or scoped
            return self._sequence(list(inner), scoped, traps)
        if name == "BRANCH":
            union: set[str] = set()
            for branch in argument[1]:
                found = self._sequence(list(branch), ignorecase, traps)
                if found is None:
                    return None
                union |= found
            return union
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            minimum, _maximum, inner = argument
            return self._sequence(list(inner), ignorecase, traps) if minimum else None
        if name == "ATOMIC_GROUP":
            return self._sequence(list(argument), ignorecase, traps)
        return None

    def _pure(self, items: list[Any]) -> list[str] | None:
        """Return the strings ``items`` stands for when it is only literals."""
        if len(items) == 1 and getattr(items[0][0], "name", None) == "BRANCH":
            strings: list[str] = []
            for branch in items[0][1][1]:
                inner = self._pure(list(branch))
                if inner is None or len(inner) != 1:
                    return None
                strings.extend(inner)
            return strings
        chars: list[str] = []
        for op, argument in items:
            if getattr(op, "name", None) != "LITERAL":
                return None
            if not self._usable(argument, False, frozenset()):
                return None
            chars.append(chr(argument))
        return ["".join(chars)] if chars else None


def _better(current: set[str] | None, other: set[str] | None) -> set[str] | None:
    """Return the more selective of two literal sets (longest shortest member,
    then fewest members)."""
    if other is None or not other:
        return current
    if current is None:
        return other
    score_current = (min(map(len, current)), -len(current))
    score_other = (min(map(len, other)), -len(other))
    return other if score_other > score_current else current


def _literals(patterns: Sequence[str], encoding: str) -> _Literals | None:
    if not _byte_search_exact(encoding):
        return None
    finder = _LiteralFinder(encoding)
    strings: set[str] = set()
    exact = True
    try:
        for pattern in patterns:
            found = finder.needles(pattern)
            if found is None:
                return None
            strings |= found[0]
            exact = exact and found[1]
    except Exception:
        # Any surprise in re's private parser: use the always-right way.
        return None
    if not strings or min(map(len, strings)) < _MIN_LITERAL:
        return None
    if finder.lower:
        if not all(text.isascii() for text in strings):
            return None
        needles = tuple(sorted({text.lower().encode("ascii") for text in strings}))
        return _Literals(needles, lower=True, exact=False)
    needles = tuple(sorted({text.encode(encoding) for text in strings}))
    return _Literals(needles, lower=False, exact=exact)


class Rules:
    """A check's compiled patterns, ignore patterns and encoding.

    :param patterns: regular expressions; a line matching any of them counts.
    :param ignore: regular expressions; a line matching any of them does not
        count, whatever else it matches.
    :param encoding: how the log's bytes become text; invalid bytes become
        U+FFFD.
    :raises RulesError: when the encoding is unusable or no pattern is given.
    :raises re.error: when a pattern does not compile.
    """

    def __init__(
        self,
        patterns: Sequence[str],
        ignore: Sequence[str] = (),
        encoding: str = "utf-8",
    ) -> None:
        if not patterns:
            msg = "at least one pattern is needed"
            raise RulesError(msg)
        self.encoding = check_encoding(encoding)
        self.patterns = tuple(patterns)
        self.ignore = tuple(ignore)
        self._search = _compile_any(self.patterns)
        self._ignore = _compile_any(self.ignore)
        self.literals = _literals(self.patterns, self.encoding)
        self.counts: Callable[[str], object] = self.matches
        if len(self._search) == 1 and not self._ignore:
            # The common case, without a Python call in between.
            self.counts = self._search[0].search

    def decode(self, data: bytes | bytearray) -> str:
        """Return ``data`` decoded, invalid bytes replaced, never raising."""
        return data.decode(self.encoding, errors="replace")

    def search(self, text: str, start: int = 0) -> re.Match[str] | None:
        """Return the first match of any pattern in ``text`` from ``start``."""
        if len(self._search) == 1:
            return self._search[0].search(text, start)
        found = [match for rx in self._search if (match := rx.search(text, start))]
        return min(found, key=lambda match: match.start(), default=None)

    def ignored(self, text: str) -> bool:
        """Return whether an ignore pattern vetoes the line ``text``."""
        return any(rx.search(text) for rx in self._ignore)

    def matches(self, line: str) -> bool:
        """Return whether the single line ``line`` counts as a match."""
        return self.search(line) is not None and not self.ignored(line)


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
    """

    def __init__(
        self,
        rules: Rules,
        *,
        context: int = 0,
        max_evidence: int = 20,
        block_size: int = BLOCK_SIZE,
        max_line: int = MAX_LINE_BYTES,
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
        buffer, view = self._buffers()
        consumed = lines = dropped = filled = 0
        long_line: _LongLine | None = None
        left = budget
        stopped = False
        while True:
            if left <= 0 and consumed > 0:
                stopped = True
                break
            want = self.block_size if left <= 0 else min(self.block_size, left)
            count = readinto(view[filled : filled + want])
            if count <= 0:
                break
            left -= count
            end = filled + count
            cut = buffer.rfind(b"\n", filled, end) + 1

            # No line ending yet: keep the line, in pieces when it is long.
            if cut == 0:
                filled = end
                if filled > self.max_line:
                    long_line = long_line or _LongLine(lines)
                    self._search_piece(long_line, view[:filled], final=False)
                    dropped += filled - _PIECE_OVERLAP
                    buffer[:_PIECE_OVERLAP] = view[filled - _PIECE_OVERLAP : filled]
                    filled = _PIECE_OVERLAP
                continue

            # The first line ending closes a long line being searched.
            start = 0
            if long_line is not None:
                start = buffer.find(b"\n", 0, end) + 1
                self._search_piece(long_line, view[: start - 1], final=True)
                self._finish_long(long_line)
                long_line = None
            self._scan_block(buffer, start, cut, lines + (1 if start else 0))
            lines += buffer.count(b"\n", 0, cut)
            consumed += dropped + cut
            dropped = 0
            buffer[: end - cut] = view[cut:end]
            filled = end - cut

        # The end of the data: a last line without its line ending.
        if flush_partial and (filled or long_line is not None):
            pending = bytes(view[:filled])
            if long_line is not None:
                self._search_piece(long_line, pending, final=True)
                self._finish_long(long_line)
            else:
                self._scan_block(bytearray(pending + b"\n"), 0, filled + 1, lines)
            lines += 1
            consumed += dropped + filled

        self._end_segment(lines, consumed)
        return Scanned(consumed, lines, self._tally.matches, stopped)

    def _buffers(self) -> tuple[bytearray, memoryview]:
        """Return the scanner's read buffer (made once: a fresh buffer for
        every block would cost a page fault per 4 KiB)."""
        if self._buffer is None or self._view is None:
            size = self.block_size + self.max_line + 2 * _PIECE_OVERLAP
            self._buffer = bytearray(size)
            self._view = memoryview(self._buffer)
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
        if self.rules.literals is not None:
            self._scan_bytes(data, start, cut, base, self.rules.literals)
            self._remember_tail(data, start, cut, base)
        else:
            text = self.rules.decode(data[start:cut])
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            self._scan_text(text, base)
            self._remember_tail(text, 0, len(text), base)

    def _scan_bytes(
        self, data: bytearray, start: int, cut: int, base: int, literals: _Literals
    ) -> None:
        # The hot loop of the whole check: nothing per line, little per hit.
        haystack = data.lower() if literals.lower else data
        exact = literals.exact and not self.rules.ignore
        counts = self.rules.counts
        encoding = self.rules.encoding
        tally = self._tally
        upcoming: list[list[Any]] = []
        for needle in literals.needles:
            found = haystack.find(needle, start, cut)
            if found >= 0:
                upcoming.append([found, needle])
        index_at, index = start, base
        while upcoming:
            hit = min(upcoming)[0]
            line_start = data.rfind(b"\n", start, hit) + 1 or start
            line_end = data.find(b"\n", hit, cut)
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

            # Move every literal that is behind to its next hit.
            after = line_end + 1
            for entry in upcoming:
                if entry[0] < after:
                    entry[0] = haystack.find(entry[1], after, cut)
            if min(upcoming)[0] < 0:
                upcoming = [entry for entry in upcoming if entry[0] >= 0]

    def _scan_text(self, text: str, base: int) -> None:
        rules = self.rules
        tally = self._tally
        index_at, index = 0, base
        position = 0
        while (match := rules.search(text, position)) is not None:
            line_start = text.rfind("\n", 0, match.start()) + 1
            line_end = text.find("\n", match.start())
            line = text[line_start:line_end]
            within = match.end() <= line_end or rules.search(line) is not None
            if within and not rules.ignored(line):
                tally.matches += 1
                tally.first_match = tally.first_match or line
                if self._kept < self.max_evidence:
                    index += text.count("\n", index_at, line_start)
                    index_at = line_start
                    self._keep(text, 0, len(text), line_start, line_end, index, line)
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
        shown.append(f"({hidden} more matching lines not shown)")
    return tuple(shown)
