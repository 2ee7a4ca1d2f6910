r"""Syntax highlighting of A1111's prompt language: which characters are syntax, and which are mistakes.

:func:`highlight_spans` runs on every keystroke on the GUI thread, so it never builds the Earley
parse that :mod:`desktop.core.prompt_syntax` (A1111's ``prompt_parser``) uses: one pass with a
bracket stack per ``AND`` sub-prompt, linear in the length of the text. It reads the text the way
A1111 v1.10 does, in A1111's order:

1. ``<kind:...>`` extra-network tags are taken out of the whole prompt (``extra_networks.parse_prompt``);
2. the rest is split on ``AND``; a trailing ``:weight`` weights a sub-prompt (``get_multicond_prompt_list``);
3. ``[from:to:when]`` and ``[a|b]`` are found as A1111's schedule grammar finds them; a ``|``
   outside an alternation makes A1111 use the whole sub-prompt literally, and so does this module;
4. what is left goes through emphasis (``parse_prompt_attention``): ``( )`` and ``[ ]`` each have
   their own stack, ``(text:1.2)`` sets a weight, ``\( \) \[ \] \\`` are escapes, ``BREAK`` a
   chunk break.

Errors are what changes the meaning of a prompt without the user asking: a bracket never closed
(A1111 applies it to the end of the sub-prompt), a closer without an opener (kept as text), a
weight that is not a number, a ``BREAK`` inside brackets (A1111 weights it and encodes the word),
and a ``|`` that turns the sub-prompt's scheduling off.

>>> labelled("a (cat:1.2) [in a hat:on a mat:0.5] <lora:cute:0.8> BREAK [dog|fox]")  # doctest: +NORMALIZE_WHITESPACE
[('emphasis', '('), ('weight_up', ':1.2'), ('emphasis', ')'),
 ('schedule', '['), ('schedule', ':'), ('schedule', ':'), ('schedule_step', '0.5'), ('schedule', ']'),
 ('network', '<lora:'), ('network_name', 'cute'), ('network', ':0.8>'), ('break', 'BREAK'),
 ('alternation', '['), ('alternation', '|'), ('alternation', ']')]
>>> labelled("(unclosed [and] stray) ) AND dog :0.5")  # doctest: +NORMALIZE_WHITESPACE
[('emphasis', '('), ('deemphasis', '['), ('deemphasis', ']'), ('emphasis', ')'), ('error', ')'),
 ('and', 'AND'), ('and_weight', ':0.5')]
"""

from __future__ import annotations

import bisect
import heapq
import re
from collections.abc import Collection, Iterator
from enum import Enum
from typing import NamedTuple

__all__ = ["Span", "SpanKind", "highlight_spans", "labelled"]


class SpanKind(str, Enum):
    """What a highlighted stretch of prompt is; the widget picks one text format per kind."""

    EMPHASIS = "emphasis"  # ( and ) that pair up: attention x1.1, or an explicit weight
    DEEMPHASIS = "deemphasis"  # [ and ] that pair up: attention /1.1
    WEIGHT_UP = "weight_up"  # ":1.2" in (text:1.2), weight above 1
    WEIGHT_DOWN = "weight_down"  # ":0.8", below 1
    WEIGHT_NEUTRAL = "weight_neutral"  # ":1", exactly 1
    SCHEDULE = "schedule"  # [ : : ] of [from:to:when]
    SCHEDULE_STEP = "schedule_step"  # its "when"
    ALTERNATION = "alternation"  # [ | ] of [a|b]
    AND = "and"  # the AND keyword
    AND_WEIGHT = "and_weight"  # ":0.5" weighting a sub-prompt
    BREAK = "break"  # the BREAK keyword
    NETWORK = "network"  # <lora: ... :0.8> around the name
    NETWORK_NAME = "network_name"  # the LoRA / hypernetwork name
    ESCAPE = "escape"  # \( \) \[ \] \\
    EMBEDDING = "embedding"  # a known textual-inversion name
    ERROR = "error"


class Span(NamedTuple):
    """``length`` characters of the prompt from ``start`` (Python string indices) are a ``kind``."""

    start: int
    length: int
    kind: SpanKind

    @property
    def end(self) -> int:
        return self.start + self.length


# A1111's patterns, each from the function named.
_NETWORK = re.compile(r"<(\w+):([^>]+)>")  # extra_networks.re_extra_net
_AND = re.compile(r"\bAND\b")  # prompt_parser.re_AND
_BREAK = re.compile(r"\bBREAK\b")  # prompt_parser.re_break, without the spaces it swallows
# get_multicond_prompt_list's weight, anchored at its colon: searching for the first colon from
# which the rest matches finds what A1111's lazy ^(.*?)(weight)?\s*$ finds, without its
# quadratic backtracking over long runs of spaces.
_SUBPROMPT_WEIGHT = re.compile(r":\s*([-+]?(?:\d+\.?|\d*\.\d+))\s*$")
# parse_prompt_attention's explicit-weight closer.
_WEIGHT_CLOSER = re.compile(r":\s*([+-]?[.\d]+)\s*\)")
# The schedule grammar's "when": lark's SIGNED_NUMBER between optional whitespace.
_SCHEDULE_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*")
# Characters the schedule grammar and emphasis treat as syntax; a backslash escapes the next one.
_STRUCTURE = re.compile(r"\\.|\\\Z|[()\[\]:|]", re.S)
_ESCAPED = frozenset("()[]\\")
# A word an embedding could be named by; A1111 matches embeddings on CLIP tokens, which are
# lower-cased and end at spaces and punctuation, so a case-insensitive whole-word match.
_WORD = re.compile(r"[^\s,()\[\]{}<>:|\\]+")
_WORD_TRAILING_PUNCTUATION = ".!?;"

# (start, end, kind) in the text with the network tags cut out: what the passes below produce.
_Found = list[tuple[int, int, SpanKind]]


def highlight_spans(text: str, *, embeddings: Collection[str] = ()) -> list[Span]:
    r"""Spans of syntax and errors in ``text``, sorted and never overlapping; plain text has none.

    ``embeddings`` are the textual-inversion names to mark (matched without regard to case).

    Emphasis, explicit weights (above, below or at 1) and escapes:

    >>> labelled(r"(a) [b] (c:1.3) (d:0.5) (e:1) \(f\)")  # doctest: +NORMALIZE_WHITESPACE
    [('emphasis', '('), ('emphasis', ')'), ('deemphasis', '['), ('deemphasis', ']'),
     ('emphasis', '('), ('weight_up', ':1.3'), ('emphasis', ')'),
     ('emphasis', '('), ('weight_down', ':0.5'), ('emphasis', ')'),
     ('emphasis', '('), ('weight_neutral', ':1'), ('emphasis', ')'), ('escape', '\\('), ('escape', '\\)')]

    Round and square brackets pair up separately, as in A1111 (``([a)]`` is fine); an opener never
    closed and a closer without an opener are errors, and so is a weight that is not a number:

    >>> labelled("([a)] ((b) c]")
    [('emphasis', '('), ('deemphasis', '['), ('emphasis', ')'), ('deemphasis', ']'), ('error', '('), ('emphasis', '('), ('emphasis', ')'), ('error', ']')]
    >>> labelled("(a:1.2.3) b")
    [('error', '('), ('error', ':1.2.3)')]

    Scheduling and alternation, nested, in emphasis and around it:

    >>> labelled("a[b:[c:d:2]:1]e")  # doctest: +NORMALIZE_WHITESPACE
    [('schedule', '['), ('schedule', ':'), ('schedule', '['), ('schedule', ':'), ('schedule', ':'),
     ('schedule_step', '2'), ('schedule', ']'), ('schedule', ':'), ('schedule_step', '1'), ('schedule', ']')]
    >>> labelled("[a::0.5] [to: 3 ] ([x|y|])")  # doctest: +NORMALIZE_WHITESPACE
    [('schedule', '['), ('schedule', ':'), ('schedule', ':'), ('schedule_step', '0.5'), ('schedule', ']'),
     ('schedule', '['), ('schedule', ':'), ('schedule_step', '3'), ('schedule', ']'),
     ('emphasis', '('), ('alternation', '['), ('alternation', '|'), ('alternation', '|'), ('alternation', ']'),
     ('emphasis', ')')]

    Brackets that are not a schedule stay emphasis (``[a:b]`` has no step; ``[a:b:c]`` no number):

    >>> labelled("[a:b] [a:b:c]")
    [('deemphasis', '['), ('deemphasis', ']'), ('deemphasis', '['), ('deemphasis', ']')]

    A ``|`` outside an alternation makes A1111 use the sub-prompt literally, scheduling off; that
    ``|`` is the error, and the brackets are emphasis again:

    >>> labelled("[a:b:0.5] x|y")
    [('deemphasis', '['), ('deemphasis', ']'), ('error', '|')]
    >>> labelled("x|y")  # nothing to turn off: a plain character
    []

    ``AND`` splits first, so brackets do not pair across it; every sub-prompt may end in a weight:

    >>> labelled("(a AND b) :0.7")
    [('error', '('), ('and', 'AND'), ('error', ')'), ('and_weight', ':0.7')]

    ``BREAK`` (a whole word) and, inside brackets, an error; extra networks in any kind:

    >>> labelled("a BREAK b, (c BREAK d), BREAKING")
    [('break', 'BREAK'), ('emphasis', '('), ('error', 'BREAK'), ('emphasis', ')')]
    >>> labelled("<hypernet:my net:0.6> (<lora:x:1>)")  # doctest: +NORMALIZE_WHITESPACE
    [('network', '<hypernet:'), ('network_name', 'my net'), ('network', ':0.6>'),
     ('emphasis', '('), ('network', '<lora:'), ('network_name', 'x'), ('network', ':1>'), ('emphasis', ')')]

    Embedding names, as whole words in any case:

    >>> labelled("EasyNegative, bad-hands-5. easynegatives", embeddings={"easynegative", "bad-hands-5"})
    [('embedding', 'EasyNegative'), ('embedding', 'bad-hands-5')]

    Tags are taken out before anything else, so brackets around them still pair up:

    >>> labelled("(a<lora:x:1>:1.2)")
    [('emphasis', '('), ('network', '<lora:'), ('network_name', 'x'), ('network', ':1>'), ('weight_up', ':1.2'), ('emphasis', ')')]
    """
    stripped = _TagsRemoved(text)
    found: _Found = []
    embedding_names = frozenset(name.lower() for name in embeddings)
    for segment_start, segment_end, and_keyword in _and_segments(stripped.text):
        if and_keyword is not None:
            found.append((and_keyword, and_keyword + 3, SpanKind.AND))
        weight = _SUBPROMPT_WEIGHT.search(stripped.text, segment_start, segment_end)
        if weight is not None:
            found.append((weight.start(), weight.end(1), SpanKind.AND_WEIGHT))
            segment_end = weight.start()
        _subprompt_spans(stripped.text, segment_start, segment_end, found)
        if embedding_names:
            _embedding_spans(stripped.text, segment_start, segment_end, embedding_names, found)
    spans = stripped.to_original(found)
    spans.extend(_network_spans(text))
    spans.sort(key=lambda span: span.start)
    return spans


def labelled(text: str, *, embeddings: Collection[str] = ()) -> list[tuple[str, str]]:
    """``(kind, text)`` for each span of :func:`highlight_spans`: the readable form its doctests use."""
    return [(span.kind.value, text[span.start : span.end]) for span in highlight_spans(text, embeddings=embeddings)]


# --- step 1: extra networks -----------------------------------------------------------------------


def _network_tags(text: str) -> Iterator[re.Match[str]]:
    # A tag needs a ">" after it: stopping the search at the last one keeps "<a:<a:<a:..." linear
    # (each "<" would otherwise scan to the end of the text and fail).
    last_closer = text.rfind(">")
    return _NETWORK.finditer(text, 0, last_closer + 1) if last_closer >= 0 else iter(())


def _network_spans(text: str) -> Iterator[Span]:
    for match in _network_tags(text):
        name_end = match.start(2) + len(match.group(2).split(":", 1)[0])
        yield Span(match.start(), match.start(2) - match.start(), SpanKind.NETWORK)
        if name_end > match.start(2):
            yield Span(match.start(2), name_end - match.start(2), SpanKind.NETWORK_NAME)
        yield Span(name_end, match.end() - name_end, SpanKind.NETWORK)


class _TagsRemoved:
    """The prompt with its extra-network tags cut out, as A1111 parses it, and the way back."""

    def __init__(self, text: str) -> None:
        pieces: list[str] = []
        # Parallel lists: where each kept piece of the original starts in the cut text and in the
        # original; bisecting the first maps a position back.
        self._cut_starts: list[int] = []
        self._original_starts: list[int] = []
        kept_from = 0
        cut_length = 0
        for match in _network_tags(text):
            if match.start() > kept_from:
                pieces.append(text[kept_from : match.start()])
                self._cut_starts.append(cut_length)
                self._original_starts.append(kept_from)
                cut_length += match.start() - kept_from
            kept_from = match.end()
        self.text = "".join(pieces) + text[kept_from:] if pieces or kept_from else text
        self._cut_starts.append(cut_length)
        self._original_starts.append(kept_from)

    def to_original(self, found: _Found) -> list[Span]:
        """``found`` in positions of the original text; a span a tag cuts in two becomes two."""
        if len(self._cut_starts) == 1:  # one piece: no tags before the end, nothing moves
            offset = self._original_starts[0]
            return [Span(start + offset, end - start, kind) for start, end, kind in found]
        spans: list[Span] = []
        for start, end, kind in found:
            piece = bisect.bisect_right(self._cut_starts, start) - 1
            while start < end:
                piece_end = self._cut_starts[piece + 1] if piece + 1 < len(self._cut_starts) else end
                stop = min(end, piece_end)
                spans.append(Span(start + self._original_starts[piece] - self._cut_starts[piece], stop - start, kind))
                start = stop
                piece += 1
        return spans


# --- step 2: AND --------------------------------------------------------------------------------


def _and_segments(text: str) -> Iterator[tuple[int, int, int | None]]:
    """``(start, end, position of the AND before it or None)`` for each sub-prompt."""
    start, keyword = 0, None
    for match in _AND.finditer(text):
        yield start, match.start(), keyword
        start, keyword = match.end(), match.start()
    yield start, len(text), keyword


# --- steps 3 and 4: scheduling, then emphasis, within one sub-prompt -------------------------------


def _subprompt_spans(text: str, start: int, end: int, found: _Found) -> None:
    tokens = [(match.start(), match.group()) for match in _STRUCTURE.finditer(text, start, end)]
    consumed: set[int] = set()
    if text.find("[", start, end) >= 0:  # schedules and alternations all start with one
        syntax, consumed, culprits = _scheduling(text, tokens)
        if culprits:
            # A1111's grammar rejects the sub-prompt and uses it literally: nothing is scheduled,
            # and if something would have been, the characters that stopped it are the error.
            if syntax:
                found.extend((position, position + 1, SpanKind.ERROR) for position in culprits)
            consumed = set()
        else:
            found.extend(syntax)
    _emphasis(text, tokens, consumed, start, end, found)


class _Frame:
    """An open bracket in the schedule grammar's view: brackets nest, ``:`` and ``|`` belong to the innermost."""

    __slots__ = ("opener", "position", "colons", "pipes", "clean")

    def __init__(self, opener: str, position: int) -> None:
        self.opener = opener
        self.position = position
        self.colons: list[int] = []
        self.pipes: list[int] = []
        # The grammar lets stray brackets and colons stand only at the top level, so a frame
        # holding anything that is not a well-formed construct cannot be a construct itself.
        self.clean = True


def _scheduling(text: str, tokens: list[tuple[int, str]]) -> tuple[_Found, set[int], list[int]]:
    """Schedules and alternations as A1111's lark grammar finds them, with one bracket stack.

    Returns their syntax spans, the positions those cover (gone before emphasis is parsed), and
    the culprits that make the grammar reject the whole sub-prompt: a ``|`` that is not an
    alternation's, a lone backslash at the end.

    A ``[`` group is a schedule when it is clean and holds one or two colons of its own, the last
    followed by a number; an alternation when it is clean and holds ``|`` and no colon.
    """
    syntax: _Found = []
    consumed: set[int] = set()
    culprits: list[int] = []
    stack: list[_Frame] = []
    open_counts = {"(": 0, "[": 0}
    all_pipes: list[int] = []
    alternation_pipes: set[int] = set()

    def pop() -> _Frame:
        frame = stack.pop()
        open_counts[frame.opener] -= 1
        if not frame.clean and stack:
            stack[-1].clean = False
        return frame

    for position, token in tokens:
        if token == "(" or token == "[":
            stack.append(_Frame(token, position))
            open_counts[token] += 1
        elif token == ":":
            if stack:
                stack[-1].colons.append(position)
        elif token == ")" or token == "]":
            opener = "(" if token == ")" else "["
            if stack and stack[-1].opener == opener:
                frame = pop()
                if _classify(text, frame, position, syntax, consumed):
                    alternation_pipes.update(frame.pipes)
                elif stack and not _is_construct(frame):
                    stack[-1].clean = False
            else:
                # Mismatched nesting: every frame open now contains a stray. The innermost takes
                # the mark and pop() hands it outwards, which keeps this linear.
                if stack:
                    stack[-1].clean = False
                if open_counts[opener]:
                    while stack[-1].opener != opener:
                        pop()
                    pop()
        elif token == "|":
            all_pipes.append(position)
            if stack:
                stack[-1].pipes.append(position)
        elif token == "\\":  # a lone backslash at the very end: plain text cannot end in one
            culprits.append(position)
        # escapes ("\x") are plain text to the grammar
    culprits.extend(pipe for pipe in all_pipes if pipe not in alternation_pipes)
    culprits.sort()
    return syntax, consumed, culprits


def _is_construct(frame: _Frame) -> bool:
    """Whether a closed frame is an emphasis construct of the grammar: ``(a)``, ``(a:b)``, ``[a]``."""
    if not frame.clean or frame.pipes:
        return False
    return len(frame.colons) <= 1 if frame.opener == "(" else not frame.colons


def _classify(text: str, frame: _Frame, closer: int, syntax: _Found, consumed: set[int]) -> bool:
    """Record ``frame`` (just closed at ``closer``) if it is a schedule or an alternation."""
    if frame.opener != "[" or not frame.clean:
        return False
    if frame.pipes and not frame.colons:
        marks = [frame.position, *frame.pipes, closer]
        syntax.extend((mark, mark + 1, SpanKind.ALTERNATION) for mark in marks)
        consumed.update(marks)
        return True
    if not frame.pipes and 1 <= len(frame.colons) <= 2:
        last_colon = frame.colons[-1]
        number = _SCHEDULE_NUMBER.fullmatch(text, last_colon + 1, closer)
        if number is None:
            return False
        marks = [frame.position, *frame.colons, closer]
        syntax.extend((mark, mark + 1, SpanKind.SCHEDULE) for mark in marks)
        syntax.append((number.start(1), number.end(1), SpanKind.SCHEDULE_STEP))
        consumed.update(marks)
        consumed.update(range(last_colon + 1, closer))
        return True
    return False


def _emphasis(text: str, tokens: list[tuple[int, str]], consumed: set[int], start: int, end: int, found: _Found) -> None:
    """Brackets, weights, escapes and BREAKs as A1111's ``parse_prompt_attention`` reads them.

    ``consumed`` are schedule and alternation characters, gone by the time A1111 parses emphasis.
    Round and square brackets have a stack each, as in A1111.
    """
    round_open: list[int] = []
    square_open: list[int] = []
    if text.find("BREAK", start, end) >= 0:
        breaks = [(match.start(), "BREAK") for match in _BREAK.finditer(text, start, end)]
        tokens = list(heapq.merge(tokens, breaks))
    skip_until = start  # the end of an explicit-weight closer already handled
    for position, token in tokens:
        if position < skip_until or position in consumed:
            continue
        if token == "(":
            round_open.append(position)
        elif token == "[":
            square_open.append(position)
        elif token == ")" or token == "]":
            open_brackets = round_open if token == ")" else square_open
            if open_brackets:
                kind = SpanKind.EMPHASIS if token == ")" else SpanKind.DEEMPHASIS
                opener = open_brackets.pop()
                found.append((opener, opener + 1, kind))
                found.append((position, position + 1, kind))
            else:
                found.append((position, position + 1, SpanKind.ERROR))
        elif token == ":":
            skip_until = _explicit_weight(text, position, end, round_open, found)
        elif token == "BREAK":
            # A1111 multiplies a BREAK inside brackets like any text, and then no longer knows it.
            found.append((position, position + 5, SpanKind.ERROR if round_open or square_open else SpanKind.BREAK))
        elif len(token) == 2:  # an escape
            if token[1] in _ESCAPED:
                found.append((position, position + 2, SpanKind.ESCAPE))
            elif token[1] == ":":  # emphasis drops the lone backslash; the colon is live
                skip_until = _explicit_weight(text, position + 1, end, round_open, found)
        # "|" is plain text to emphasis, and a lone "\" at the end is dropped
    found.extend((position, position + 1, SpanKind.ERROR) for position in round_open + square_open)


def _explicit_weight(text: str, colon: int, end: int, round_open: list[int], found: _Found) -> int:
    """An explicit weight ``:1.2)`` at ``colon`` closing the innermost ``(``; returns where it ends."""
    closer = _WEIGHT_CLOSER.match(text, colon, end)
    if closer is None:
        return colon
    weight = _float_or_none(closer.group(1))
    if not round_open:
        found.append((closer.end() - 1, closer.end(), SpanKind.ERROR))  # plain text: closes nothing
    elif weight is None:
        # A1111 raises on float("1.2.3"); prompt_syntax keeps the text, and the bracket open.
        found.append((colon, closer.end(), SpanKind.ERROR))
    else:
        opener = round_open.pop()
        found.append((opener, opener + 1, SpanKind.EMPHASIS))
        found.append((colon, closer.end(1), _weight_kind(weight)))
        found.append((closer.end() - 1, closer.end(), SpanKind.EMPHASIS))
    return closer.end()


def _weight_kind(weight: float) -> SpanKind:
    if weight > 1:
        return SpanKind.WEIGHT_UP
    if weight < 1:
        return SpanKind.WEIGHT_DOWN
    return SpanKind.WEIGHT_NEUTRAL


def _float_or_none(number: str) -> float | None:
    try:
        return float(number)
    except ValueError:
        return None


def _embedding_spans(text: str, start: int, end: int, names: frozenset[str], found: _Found) -> None:
    for match in _WORD.finditer(text, start, end):
        word = match.group().rstrip(_WORD_TRAILING_PUNCTUATION)
        if word.lower() in names:
            found.append((match.start(), match.start() + len(word), SpanKind.EMBEDDING))
