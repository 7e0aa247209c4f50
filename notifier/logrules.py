"""The rules of a ``logscan`` check: which lines count, and how they are shown.

This module owns the patterns, the ignore patterns and the encoding of a
check, compiled once, and how a line is shown as evidence. It also works out
the literal strings every match must contain (``error`` in
``error:\\s+\\d+``) and makes the function that finds them in a block of
bytes, which lets :mod:`notifier.logmatch` decode only the lines around a hit.

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
"""

from __future__ import annotations

import codecs
import importlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

EVIDENCE_CHARS: Final = 1000
"""Evidence lines are cut at this many characters."""
_MIN_LITERAL: Final = 3
"""Shortest literal worth a block search; shorter ones hit on most lines."""
MAX_FINDERS_KEPT: Final = 8
"""Sets of needles whose search a pattern keeps made (:meth:`Literals.finder`)."""
_LOOK_ALIKES: Final = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}
"""The non-ASCII characters that a case-insensitive Python pattern matches
with an ASCII letter (dotted capital I and dotless i, KELVIN SIGN, long s);
a search of the lower-cased bytes for the letter cannot see them."""
_GLOBAL_FLAGS: Final = re.compile(r"\(\?([aiLmsux]+)\)")
_BACKREFERENCE: Final = re.compile(r"\\[1-9]|\(\?P=")
_ENCODING_HINT: Final = "for example 'utf-8' or 'latin-1'"
_PAST_THE_LINE: Final = frozenset(
    ("ASSERT", "ASSERT_NOT", "ATOMIC_GROUP", "POSSESSIVE_REPEAT")
)
"""Parts of a pattern that can behave differently in a block of lines than in
one line alone: lookarounds see the lines around, and an atomic group or a
possessive repeat may swallow a line feed and never give it back."""
_WITHIN_THE_LINE: Final = frozenset(
    ("LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY", "GROUPREF")
)
"""Parts of a pattern that match the same characters in a block as alone."""


class RulesError(ValueError):
    """The patterns or the encoding cannot be used; the message says why.

    :param key: the option at fault: ``pattern``, ``ignore`` or ``encoding``.
    :param hint: what would be right, when there is something to say.
    """

    def __init__(self, message: str, key: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.key = key
        self.hint = hint


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
    except (LookupError, ValueError) as exc:
        # A NUL in the name is refused by codecs itself, with a ValueError.
        msg = f"{name!r} is not an encoding Python knows"
        raise RulesError(msg, "encoding", _ENCODING_HINT) from exc
    try:
        newline_ok = "\n".encode(canonical) == b"\n"
    except (UnicodeError, LookupError):
        newline_ok = False
    if not newline_ok:
        msg = f"{name!r} does not write a line feed as one byte"
        raise RulesError(msg, "encoding", _ENCODING_HINT)
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
    alone = tuple(re.compile(pattern, re.MULTILINE) for pattern in patterns)
    if len(alone) == 1 or any(_BACKREFERENCE.search(pattern) for pattern in patterns):
        # Group numbers change inside an alternation: \1 would refer to
        # another pattern's group.
        return alone
    try:
        combined = "|".join(_scoped(pattern) for pattern in patterns)
        return (re.compile(combined, re.MULTILINE),)
    except re.error:
        return alone


def _found_in_a_block(pattern: str) -> bool:
    """Return whether a search of a block of lines for ``pattern`` finds every
    line that the pattern matches alone (it may find more, never fewer).

    True when the pattern looks at nothing outside the line it matches in:
    ``^`` and ``$`` (multi-line), ``\\b`` and ``\\B`` see a line feed around a
    line in a block where they see the text's ends around it alone, and give
    the same answer. ``\\A``, ``\\Z``, ``^`` and ``$`` without multi-line,
    lookarounds, atomic groups and possessive repeats can tell the two apart,
    and so can anything this function does not know (the parser is private to
    :mod:`re`): such patterns are matched line by line.
    """
    try:
        parser: Any = importlib.import_module("re._parser")
        tree = parser.parse(pattern, re.MULTILINE)
        return _bounded_items(list(tree), multiline=True)
    except Exception:
        # Any surprise in re's private parser: take the always-right way.
        return False


def _bounded_items(items: list[Any], *, multiline: bool) -> bool:
    for op, argument in items:
        name = getattr(op, "name", None)
        if name in _PAST_THE_LINE:
            return False
        if name == "AT":
            where = getattr(argument, "name", None)
            if where in ("AT_BEGINNING_STRING", "AT_END_STRING"):
                return False
            if where in ("AT_BEGINNING", "AT_END") and not multiline:
                return False
        elif name == "SUBPATTERN":
            _group, add_flags, del_flags, inner = argument
            scoped = (multiline or bool(add_flags & re.MULTILINE)) and not (
                del_flags & re.MULTILINE
            )
            if not _bounded_items(list(inner), multiline=scoped):
                return False
        elif name == "BRANCH":
            if not all(
                _bounded_items(list(b), multiline=multiline) for b in argument[1]
            ):
                return False
        elif name in ("MAX_REPEAT", "MIN_REPEAT"):
            if not _bounded_items(list(argument[2]), multiline=multiline):
                return False
        elif name == "GROUPREF_EXISTS":
            _group, yes, no = argument
            for branch in (yes, no):
                if branch is not None and not _bounded_items(
                    list(branch), multiline=multiline
                ):
                    return False
        elif name not in _WITHIN_THE_LINE:
            return False
    return True


@dataclass(frozen=True)
class Literals:
    """Strings that a line must hold for a pattern to match it.

    The patterns are split into alternatives (``a|b`` gives two); for each
    one, ``choices`` lists sets of byte strings such that every line the
    alternative matches holds a member of each set. Searching any one set per
    alternative finds every candidate line; :meth:`pick` takes the rarest.
    """

    choices: tuple[tuple[tuple[bytes, ...], ...], ...]
    lower: bool
    """Search the lower-cased block (some pattern ignores case)."""
    exact: bool
    """A hit is a match: the patterns are nothing but these strings."""
    look_alikes: tuple[tuple[str, bytes], ...] = ()
    """Encoded non-ASCII characters that a case-insensitive pattern matches
    with an ASCII letter, each with that letter: searched too when a picked
    needle has the letter, as a byte search of it would not see them."""
    _finders: dict[tuple[tuple[bytes, ...], bool], HitFinder] = field(
        default_factory=dict, compare=False, repr=False
    )

    def finder(self, needles: tuple[bytes, ...], *, one_pass: bool) -> HitFinder:
        """Return :func:`literal_finder` of ``needles``, made once per set of
        needles: a check scans its log every run, and on a quiet log, making
        the automaton costs more than searching the few new lines with it."""
        key = (needles, one_pass)
        found = self._finders.get(key)
        if found is None:
            if len(self._finders) >= MAX_FINDERS_KEPT:
                self._finders.clear()
            found = self._finders[key] = literal_finder(needles, one_pass=one_pass)
        return found

    def pick(self, sample: bytes | bytearray) -> tuple[bytes, ...]:
        """Return the needles to search: for each alternative, the set with
        the fewest hits in ``sample`` (the longer on a tie).

        :param sample: the start of the data about to be scanned.
        """
        haystack = sample.lower() if self.lower else sample
        needles: set[bytes] = set()
        for options in self.choices:
            best = min(
                options,
                key=lambda option: (
                    sum(haystack.count(needle) for needle in option),
                    -min(map(len, option)),
                    len(option),
                ),
            )
            needles.update(best)
        letters = set(b"".join(needles).decode("ascii", "replace"))
        needles.update(code for letter, code in self.look_alikes if letter in letters)
        return tuple(sorted(needles))


_Options = list[set[str]]
"""Sets of strings, any one of which a match must hold a member of."""


class _LiteralFinder:
    """Works out the literals a pattern needs, from Python's own parse tree.

    The parser is private to :mod:`re`; any surprise in its shape makes this
    return ``None`` and the scanner uses the slower, always-right way.
    """

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._parser: Any = importlib.import_module("re._parser")
        self.lower = False
        """Some part of some pattern ignores case."""
        self.look_alikes = False
        """... and that part is not limited to ASCII."""
        self._unicode = True

    def alternatives(self, pattern: str) -> tuple[list[_Options], bool] | None:
        """Return the options of each alternative of ``pattern``, and whether
        the pattern is nothing but literal strings; ``None`` when some
        alternative needs no literal long enough to search for."""
        tree = self._parser.parse(pattern, re.MULTILINE)
        flags = int(tree.state.flags)
        ignorecase = bool(flags & re.IGNORECASE)
        self._unicode = not flags & re.ASCII
        self._note_case(ignorecase)
        found: list[_Options] = []
        for branch in _top_branches(list(tree)):
            options = [
                option
                for option in self._options(branch, ignorecase)
                if min(map(len, option)) >= _MIN_LITERAL
            ]
            if not options:
                return None
            found.append(options)
        pure = None if ignorecase else self._pure(list(tree))
        strings = {text for options in found for option in options for text in option}
        exact = pure is not None and all(len(options) == 1 for options in found)
        return found, exact and set(pure or ()) == strings

    def _note_case(self, ignorecase: bool) -> None:
        if ignorecase:
            self.lower = True
            self.look_alikes = self.look_alikes or self._unicode

    def _usable(self, code: int, ignorecase: bool) -> bool:
        char = chr(code)
        if char in "\ufffd\r\n":
            # Never in a line as patterns see it (U+FFFD stands for bytes
            # that are not there as such).
            return False
        if ignorecase:
            return code < 128
        try:
            char.encode(self._encoding)
        except UnicodeError:
            return False
        return True

    def _options(self, items: list[Any], ignorecase: bool) -> _Options:
        """Return each literal run of the sequence ``items``, and the best
        option of each group in it."""
        options: _Options = []
        run: list[str] = []
        for op, argument in [*items, (None, None)]:
            name = getattr(op, "name", None)
            if name == "LITERAL" and self._usable(argument, ignorecase):
                run.append(chr(argument))
                continue
            if run:
                options.append({"".join(run)})
                run = []
            found = self._item(name, argument, ignorecase)
            if found:
                options.append(found)
        return options

    def _sequence(self, items: list[Any], ignorecase: bool) -> set[str] | None:
        best: set[str] | None = None
        for option in self._options(items, ignorecase):
            best = _better(best, option)
        return best

    def _item(
        self, name: str | None, argument: Any, ignorecase: bool
    ) -> set[str] | None:
        if name == "SUBPATTERN":
            _group, add_flags, del_flags, inner = argument
            scoped = (ignorecase or bool(add_flags & re.IGNORECASE)) and not (
                del_flags & re.IGNORECASE
            )
            if add_flags & re.UNICODE:
                # (?u:...) inside an (?a) pattern: Unicode again from here.
                self._unicode = True
            self._note_case(scoped)
            return self._sequence(list(inner), scoped)
        if name == "BRANCH":
            union: set[str] = set()
            for branch in argument[1]:
                found = self._sequence(list(branch), ignorecase)
                if found is None:
                    return None
                union |= found
            return union
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            minimum, _maximum, inner = argument
            return self._sequence(list(inner), ignorecase) if minimum else None
        if name == "ATOMIC_GROUP":
            return self._sequence(list(argument), ignorecase)
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
            if not self._usable(argument, False):
                return None
            chars.append(chr(argument))
        return ["".join(chars)] if chars else None


def _top_branches(items: list[Any]) -> list[list[Any]]:
    """Return the alternatives of a pattern whose whole is ``a|b|...``
    (each searched by its own rarest literal), else the pattern alone."""
    if len(items) != 1 or getattr(items[0][0], "name", None) != "BRANCH":
        return [items]
    return [part for branch in items[0][1][1] for part in _top_branches(list(branch))]


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


def _encoded_look_alikes(encoding: str) -> tuple[tuple[str, bytes], ...]:
    """Return the look-alikes of ASCII letters that ``encoding`` can write."""
    found: list[tuple[str, bytes]] = []
    for letter, characters in _LOOK_ALIKES.items():
        for character in characters:
            try:
                found.append((letter, character.encode(encoding)))
            except UnicodeError:
                continue
    return tuple(found)


def _literals(patterns: Sequence[str], encoding: str) -> Literals | None:
    if not _byte_search_exact(encoding):
        return None
    finder = _LiteralFinder(encoding)
    choices: list[_Options] = []
    exact = True
    try:
        for pattern in patterns:
            found = finder.alternatives(pattern)
            if found is None:
                return None
            choices.extend(found[0])
            exact = exact and found[1]
    except Exception:
        # Any surprise in re's private parser: use the always-right way.
        return None
    if finder.lower:
        strings = {text for options in choices for option in options for text in option}
        if not all(text.isascii() for text in strings):
            return None
        look_alikes = _encoded_look_alikes(encoding) if finder.look_alikes else ()
        return Literals(_encode(choices, str.lower, "ascii"), True, False, look_alikes)
    return Literals(_encode(choices, str, encoding), lower=False, exact=exact)


def _encode(
    choices: list[_Options], change: Callable[[str], str], encoding: str
) -> tuple[tuple[tuple[bytes, ...], ...], ...]:
    return tuple(
        tuple(
            tuple(sorted({change(text).encode(encoding) for text in option}))
            for option in options
        )
        for options in choices
    )


HitFinder = Callable[[bytearray | bytes, int, int], list[tuple[int, int, int]]]
"""``find(haystack, start, end)``: the hits of the literals in
``haystack[start:end]`` as ``(literal, hit start, hit end)``, positions from
``start``, in the order of their start. A line may have several hits (or only
one, even if it holds more): each hit is a line to look at."""


def literal_finder(needles: Sequence[bytes], *, one_pass: bool = True) -> HitFinder:
    """Return a function finding every line of a block that holds a needle.

    With ``one_pass`` and the ``ahocorasick-rs`` package, one Aho-Corasick
    pass over the block finds all needles at once (several GB/s, whatever
    their number). Otherwise each needle is searched with ``bytes.find``, a
    pass per needle; the answer is the same, only slower.

    :param needles: non-empty byte strings without a line feed.
    :param one_pass: use the one-pass search if it is installed (tests turn
        it off to check the other way).
    :returns: a :data:`HitFinder`.
    """
    if one_pass:
        try:
            from ahocorasick_rs import BytesAhoCorasick, MatchKind
        except ImportError:
            pass
        else:
            # Leftmost-first matching is the kind the library speeds up with
            # SIMD; which needle wins at one place does not matter here.
            automaton = BytesAhoCorasick(needles, matchkind=MatchKind.LeftmostFirst)

            def find_at_once(
                haystack: bytearray | bytes, start: int, end: int
            ) -> list[tuple[int, int, int]]:
                return automaton.find_matches_as_indexes(
                    memoryview(haystack)[start:end]
                )

            return find_at_once

    def find_each(
        haystack: bytearray | bytes, start: int, end: int
    ) -> list[tuple[int, int, int]]:
        hits: list[tuple[int, int, int]] = []
        for number, needle in enumerate(needles):
            found = haystack.find(needle, start, end)
            while found >= 0:
                hits.append((number, found - start, found - start + len(needle)))
                # One hit per line is enough: go on from the next line.
                next_line = haystack.find(b"\n", found, end) + 1
                found = haystack.find(needle, next_line, end) if next_line else -1
        hits.sort(key=lambda hit: hit[1])
        return hits

    return find_each


def rules_problems(
    patterns: Sequence[str], ignore: Sequence[str], encoding: str
) -> list[RulesError]:
    """Return every reason why :class:`Rules` would refuse these, each naming
    its key: no pattern, an empty pattern or ignore pattern (it would match
    every line: almost surely a value left unfinished), an unusable encoding.
    Patterns that do not compile are not looked at here."""
    problems: list[RulesError] = []
    if not patterns:
        problems.append(RulesError("at least one pattern is needed", "pattern"))
    for key, given in (("pattern", patterns), ("ignore", ignore)):
        if "" in given:
            hint = "use '^' to count every line" if key == "pattern" else "remove it"
            problems.append(
                RulesError("an empty pattern matches every line", key, hint)
            )
    try:
        check_encoding(encoding)
    except RulesError as exc:
        problems.append(exc)
    return problems


class Rules:
    """A check's compiled patterns, ignore patterns and encoding.

      :param patterns: regular expressions; a line matching any of them counts.
      :param ignore: regular expressions; a line matching any of them does not
          count, whatever else it matches. An empty pattern is refused: it would
    count (or, as an ignore pattern, veto) every line.
      :param encoding: how the log's bytes become text; invalid bytes become
          U+FFFD.
      :raises RulesError: when the encoding is unusable, no pattern is given,
          or a pattern or ignore pattern is empty (it would match every line:
          almost surely a value left unfinished; ``^`` counts every line).
      :raises re.error: when a pattern does not compile.
    """

    def __init__(
        self,
        patterns: Sequence[str],
        ignore: Sequence[str] = (),
        encoding: str = "utf-8",
    ) -> None:
        problems = rules_problems(patterns, ignore, encoding)
        if problems:
            raise problems[0]
        self.encoding = check_encoding(encoding)
        self.patterns = tuple(patterns)
        self.ignore = tuple(ignore)
        self._search = _compile_any(self.patterns)
        self._ignore = _compile_any(self.ignore)
        self.literals = _literals(self.patterns, self.encoding)
        self.block_search = all(_found_in_a_block(rx) for rx in self.patterns)
        """A search of a block of lines finds every line a pattern matches
        alone (:func:`_found_in_a_block`); otherwise lines are searched one by
        one. Either way a line counts only by :meth:`matches` on it alone."""
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
