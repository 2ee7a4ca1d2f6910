"""Ctrl/Cmd+Up and Ctrl/Cmd+Down on a prompt: A1111's "edit attention", as pure text editing.

A1111 v1.10 ``javascript/edit-attention.js`` (``keyupEditAttention``) with its default settings:
with no selection it takes the ``<...>``, ``(...)`` or ``[...]`` group around the cursor, or else
the word under it (words end at ``keyedit_delimiters`` and tabs and line breaks); it writes
``(text:1.1)``, changes the number of an existing ``(text:1.2)`` or ``<lora:name:0.8>``, turns old
``((text))`` / ``[text]`` emphasis into a number, and drops the parentheses when the weight comes
back to 1.0. The selection stays on the text.

Positions are Python string indices; a caller working in UTF-16 units (Qt) converts.

>>> adjust_weight("a cat on a mat", 3, 3, increase=True)
('a (cat:1.1) on a mat', 3, 6)
>>> adjust_weight("a (cat:1.1) on a mat", 3, 6, increase=False)
('a cat on a mat', 2, 5)
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["DEFAULT_DELIMITERS", "adjust_weight"]

# A1111's keyedit_delimiters default, plus the keyedit_delimiters_whitespace defaults (tab, CR, LF).
DEFAULT_DELIMITERS = ".,\\/!?%^*;:{}=`~() \t\r\n"
ATTENTION_STEP = 0.1  # keyedit_precision_attention
EXTRA_NETWORK_STEP = 0.05  # keyedit_precision_extra

# selectCurrentParenthesisBlock's test for "the group ends in a weight": /.*:-?[\d.]+/s
_HAS_WEIGHT = re.compile(r":-?[\d.]")
# JavaScript's parseFloat: the longest number at the start, after leading whitespace.
_JS_FLOAT_PREFIX = re.compile(r"\s*([+-]?(?:Infinity|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?))")


def adjust_weight(
    text: str,
    selection_start: int,
    selection_end: int,
    *,
    increase: bool,
    step: float = ATTENTION_STEP,
    extra_network_step: float = EXTRA_NETWORK_STEP,
    delimiters: str = DEFAULT_DELIMITERS,
) -> tuple[str, int, int]:
    r"""Raise (``increase``) or lower the weight of the selection: ``(new_text, new_start, new_end)``.

    Where A1111 changes nothing (no word under the cursor, a selection inside brackets that are
    not a weight) the text comes back unchanged, with the selection A1111 would leave.

    A word under the cursor, a selection (trailing spaces left out), and both directions:

    >>> adjust_weight("a cat, dog", 4, 4, increase=False)
    ('a (cat:0.9), dog', 3, 6)
    >>> adjust_weight("a cat on a mat ", 2, 9, increase=True)
    ('a (cat on:1.1) a mat ', 3, 9)

    An existing weight, with the cursor anywhere in its group; at 1.0 the parentheses go:

    >>> adjust_weight("(cat:1.2)", 2, 2, increase=True)
    ('(cat:1.3)', 1, 4)
    >>> adjust_weight("(cat, hat:1.1)", 2, 2, increase=True)
    ('(cat, hat:1.2)', 1, 9)
    >>> adjust_weight("(a big cat:0.9) rests", 5, 5, increase=True)
    ('a big cat rests', 0, 9)

    A1111 rounds to 12 significant digits and writes whole numbers with ".0":

    >>> adjust_weight("(x:1.9)", 1, 2, increase=True), adjust_weight("(x:0.1)", 1, 2, increase=False)
    (('(x:2.0)', 1, 2), ('(x:0.0)', 1, 2))

    Old-style emphasis becomes a number first (``((x))`` is 1.21, rounded to 1.2, then raised):

    >>> adjust_weight("((x))", 2, 2, increase=True), adjust_weight("[x]", 1, 1, increase=False)
    (('(x:1.3)', 1, 2), ('(x:0.8)', 1, 2))

    Extra networks move by 0.05:

    >>> adjust_weight("<lora:cute:0.8>", 3, 3, increase=True)
    ('<lora:cute:0.85>', 1, 10)

    Nothing to weight: a cursor between delimiters (just after a ``)`` too), a selection of spaces:

    >>> adjust_weight("a, b", 2, 2, increase=True), adjust_weight("(a:1.1)", 7, 7, increase=True)
    (('a, b', 2, 2), ('(a:1.1)', 7, 7))
    >>> adjust_weight("a  b", 1, 3, increase=True)
    ('a  b', 1, 3)
    """
    start, end = selection_start, selection_end
    if start == end:
        group = (
            _group_around(text, start, "<", ">")
            or _group_around(text, start, "(", ")")
            or _group_around(text, start, "[", "]")
        )
        start, end = group or _word_around(text, start, delimiters)
    unchanged = (text, start, end)  # A1111 has already moved the selection when it gives up

    close = ")"
    delta = step
    before = text[start - 1] if start > 0 else ""
    after = text[end] if end < len(text) else ""
    if before == "<":
        close = ">"
        delta = extra_network_step
    elif (before, after) in (("(", ")"), ("[", "]")):
        # Old-style emphasis, (((text))) or [[text]]: replace the brackets by an explicit weight.
        depth = 0
        while start - depth - 1 >= 0 and end + depth < len(text) and text[start - depth - 1] == before and text[end + depth] == after:
            depth += 1
        weight = (1 / 1.1) ** depth if before == "[" else 1.1**depth
        weight = math.floor(weight / step + 0.5) * step  # JavaScript's Math.round
        text = f"{text[:start - depth]}({text[start:end]}:{_js_number(weight)}){text[end + depth:]}"
        start -= depth - 1
        end -= depth - 1
    elif before != "(":
        while end > start and text[end - 1] == " ":
            end -= 1
        if start == end:
            return unchanged
        text = f"{text[:start]}({text[start:end]}:1.0){text[end:]}"
        start += 1
        end += 1

    if end >= len(text) or text[end] != ":":
        return unchanged
    weight_length = text.find(close, end + 1) - end  # A1111's indexOf(close) + 1, -1 -> 0
    if weight_length <= 0:
        return unchanged
    weight = _js_parse_float(text[end + 1 : end + weight_length])
    if weight is None:
        return unchanged

    weight += delta if increase else -delta
    weight = float(f"{weight:.12g}") + 0.0  # toPrecision(12); "+ 0.0" turns -0.0 into JavaScript's 0
    written = _js_number(weight) + (".0" if weight.is_integer() else "")

    if close == ")" and weight == 1:
        closing = text.find(")", end)
        return text[: start - 1] + text[start:end] + text[closing + 1 :], start - 1, end - 1
    return text[: end + 1] + written + text[end + weight_length :], start, end


def _group_around(text: str, cursor: int, opener: str, closer: str) -> tuple[int, int] | None:
    """A1111's ``selectCurrentParenthesisBlock``: the inside of the group around the cursor.

    Its weight (``:1.2``) is left out. Only the nearest opener before and closer after count,
    with nothing of the other kind in between.
    """
    opened = text.rfind(opener, 0, cursor)
    if opened == -1 or text.rfind(closer, 0, cursor) > opened:
        return None
    closed = text.find(closer, cursor)
    if closed == -1:
        return None
    reopened = text.find(opener, cursor)
    if reopened != -1 and reopened < closed:
        return None
    content = text[opened + 1 : closed]
    if _HAS_WEIGHT.search(content):
        return opened + 1, opened + 1 + content.rfind(":")
    return opened + 1, closed


def _word_around(text: str, cursor: int, delimiters: str) -> tuple[int, int]:
    """A1111's ``selectCurrentWord``: out to the delimiters, then without spaces at either end."""
    start = end = cursor
    while start > 0 and text[start - 1] not in delimiters:
        start -= 1
    while end < len(text) and text[end] not in delimiters:
        end += 1
    while start < end and text[start] == " ":
        start += 1
    while end > start and text[end - 1] == " ":
        end -= 1
    return start, end


def _js_parse_float(text: str) -> float | None:
    """JavaScript's ``parseFloat``: the number the text starts with, ``None`` for NaN."""
    match = _JS_FLOAT_PREFIX.match(text)
    if match is None:
        return None
    number = match.group(1)
    return float(number.replace("Infinity", "inf"))


def _js_number(number: float) -> str:
    """``String(number)`` in JavaScript: Python's shortest repr, with JavaScript's exponent rules."""
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "0"  # -0 too
    if 1e-6 <= abs(number) < 1e21:
        return format(Decimal(repr(number)).normalize(), "f")
    mantissa, exponent = f"{Decimal(repr(number)):e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa}e{int(exponent):+d}"
