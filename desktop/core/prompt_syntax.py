"""AUTOMATIC1111's prompt language (v1.10), exactly: emphasis, BREAK, scheduling, AND, extra networks.

Each function reproduces one piece of A1111 v1.10 and says which; its doctests are A1111's own
examples (``modules/prompt_parser.py``) plus ours. A1111 applies the pieces in this order, and so
must callers:

1. :func:`extract_networks` removes ``<lora:...>``-style tags from the whole prompt;
2. :func:`split_and` splits what is left on ``AND`` into weighted sub-prompts;
3. :func:`prompt_schedule` resolves ``[from:to:when]`` and ``[a|b]`` per sub-prompt and step;
4. :func:`parse_emphasis` turns each scheduled text into ``(text, weight)`` pieces and BREAKs.

>>> text, networks = extract_networks("a (cat:1.2) [in a hat:on a mat:0.5] <lora:cute:0.8> AND dog :0.5")
>>> [network.name for network in networks]
['cute']
>>> split_and(text)
[('a (cat:1.2) [in a hat:on a mat:0.5]', 1.0), (' dog', 0.5)]
>>> prompt_schedule('a (cat:1.2) [in a hat:on a mat:0.5]', 10)
[(5, 'a (cat:1.2) in a hat'), (10, 'a (cat:1.2) on a mat')]
>>> parse_emphasis('a (cat:1.2) in a hat')
[('a ', 1.0), ('cat', 1.2), (' in a hat', 1.0)]

Where A1111 raises on odd input (a malformed weight, an endless schedule number, a non-numeric
network weight) these functions return a documented result instead: a typo in a prompt must
never fail a generation.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import lark

__all__ = ["NetworkRef", "extract_networks", "parse_emphasis", "prompt_schedule", "split_and"]

# --- emphasis: A1111's parse_prompt_attention ---------------------------------------------------

# A1111's re_attention, alternative for alternative (order matters: escapes before the lone
# backslash, the explicit-weight closer before the plain ")").
_ATTENTION = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\\|
\\|
\(|
\[|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
[^\\()\[\]:]+|
:
""",
    re.X,
)

# The same with NovelAI's curly braces as a third bracket kind (escapes \{ \} included); plain
# runs stop at braces. Not A1111: used only when the user opts in.
_ATTENTION_NOVELAI = re.compile(
    r"""
\\\(|
\\\)|
\\\[|
\\]|
\\\{|
\\}|
\\\\|
\\|
\(|
\[|
\{|
:\s*([+-]?[.\d]+)\s*\)|
\)|
]|
}|
[^\\()\[\]{}:]+|
:
""",
    re.X,
)

_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)

# A1111 writes the BREAK marker as ("BREAK", -1); downstream code recognises it by exactly this
# pair. A BREAK inside brackets gets multiplied like any piece and is then plain text to A1111.
BREAK_WEIGHT = -1.0

ROUND_BRACKET_MULTIPLIER = 1.1
SQUARE_BRACKET_MULTIPLIER = 1 / 1.1
CURLY_BRACKET_MULTIPLIER = 1.05  # NovelAI


def parse_emphasis(text: str, *, novelai: bool = False) -> list[tuple[str, float]]:
    r"""Split ``text`` into ``(text, weight)`` pieces: A1111's ``parse_prompt_attention``, bit for bit.

    ``(a)`` multiplies by 1.1, ``[a]`` by 1/1.1, ``(a:1.3)`` by 1.3; ``\( \) \[ \] \\`` are
    literal characters and a lone backslash is dropped. Closing brackets without an opener stay as
    text; openers never closed apply to the end of the text. ``BREAK`` (a whole word) becomes the
    piece ``("BREAK", -1.0)``. Neighbouring pieces of equal weight are merged (BREAK included,
    should a neighbour ever carry the same weight, as A1111 compares weights only).

    With ``novelai=True`` (an opt-in setting, not A1111) ``{a}`` multiplies by 1.05 and
    ``\{ \}`` are literal braces; otherwise braces are ordinary text.

    A1111's examples:

    >>> parse_emphasis('normal text')
    [('normal text', 1.0)]
    >>> parse_emphasis('an (important) word')
    [('an ', 1.0), ('important', 1.1), (' word', 1.0)]
    >>> parse_emphasis('(unbalanced')
    [('unbalanced', 1.1)]
    >>> parse_emphasis('\\(literal\\]')
    [('(literal]', 1.0)]
    >>> parse_emphasis('(unnecessary)(parens)')
    [('unnecessaryparens', 1.1)]
    >>> parse_emphasis('a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).')  # doctest: +NORMALIZE_WHITESPACE
    [('a ', 1.0), ('house', 1.5730000000000004), (' ', 1.1), ('on', 1.0), (' a ', 1.1),
     ('hill', 0.55), (', sun, ', 1.1), ('sky', 1.4641000000000006), ('.', 1.1)]
    >>> parse_emphasis('a cat BREAK a dog')
    [('a cat', 1.0), ('BREAK', -1.0), ('a dog', 1.0)]

    Ours:

    >>> parse_emphasis('')
    [('', 1.0)]
    >>> parse_emphasis('a) b] c:')
    [('a) b] c:', 1.0)]
    >>> parse_emphasis('{cat}'), parse_emphasis('{cat}', novelai=True)
    ([('{cat}', 1.0)], [('cat', 1.05)])

    A malformed explicit weight (A1111 raises ``ValueError`` from ``float``) is kept as text and
    its bracket stays open:

    >>> parse_emphasis('(a:1.2.3) b')
    [('a:1.2.3) b', 1.1)]
    """
    pattern = _ATTENTION_NOVELAI if novelai else _ATTENTION
    # Mutable [text, weight] pairs: brackets multiply every piece from their opening position on,
    # in the order A1111 does it, so the float results match A1111's bit for bit.
    pieces: list[list] = []
    open_round: list[int] = []
    open_square: list[int] = []
    open_curly: list[int] = []

    def multiply_from(start: int, multiplier: float) -> None:
        for piece in pieces[start:]:
            piece[1] *= multiplier

    for match in pattern.finditer(text):
        token, explicit_weight = match.group(0), match.group(1)
        weight = _float_or_none(explicit_weight) if explicit_weight is not None else None
        if token.startswith("\\"):
            pieces.append([token[1:], 1.0])
        elif token == "(":
            open_round.append(len(pieces))
        elif token == "[":
            open_square.append(len(pieces))
        elif novelai and token == "{":
            open_curly.append(len(pieces))
        elif weight is not None and open_round:
            multiply_from(open_round.pop(), weight)
        elif token == ")" and open_round:
            multiply_from(open_round.pop(), ROUND_BRACKET_MULTIPLIER)
        elif token == "]" and open_square:
            multiply_from(open_square.pop(), SQUARE_BRACKET_MULTIPLIER)
        elif novelai and token == "}" and open_curly:
            multiply_from(open_curly.pop(), CURLY_BRACKET_MULTIPLIER)
        else:
            for index, part in enumerate(_BREAK.split(token)):
                if index > 0:
                    pieces.append(["BREAK", BREAK_WEIGHT])
                pieces.append([part, 1.0])

    for start in open_round:
        multiply_from(start, ROUND_BRACKET_MULTIPLIER)
    for start in open_square:
        multiply_from(start, SQUARE_BRACKET_MULTIPLIER)
    for start in open_curly:
        multiply_from(start, CURLY_BRACKET_MULTIPLIER)

    if not pieces:
        pieces = [["", 1.0]]

    index = 0
    while index + 1 < len(pieces):
        if pieces[index][1] == pieces[index + 1][1]:
            pieces[index][0] += pieces[index + 1][0]
            pieces.pop(index + 1)
        else:
            index += 1

    return [(piece_text, piece_weight) for piece_text, piece_weight in pieces]


def _float_or_none(number: str) -> float | None:
    # The weight pattern [+-]?[.\d]+ also admits "." and "1.2.3", on which A1111 raises.
    try:
        return float(number)
    except ValueError:
        return None


# --- scheduling: A1111's get_learned_conditioning_prompt_schedules -----------------------------

# A1111's grammar, verbatim.
_SCHEDULE_GRAMMAR = r"""
!start: (prompt | /[][():]/+)*
prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
!emphasized: "(" prompt ")"
        | "(" prompt ":" prompt ")"
        | "[" prompt "]"
scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
alternate: "[" prompt ("|" [prompt])+ "]"
WHITESPACE: /\s+/
plain: /([^\\\[\]():|]|\\.)+/
%import common.SIGNED_NUMBER -> NUMBER
"""


@functools.cache
def _schedule_parser() -> lark.Lark:
    """The Earley parser A1111 builds (lark's defaults), made on first use rather than at import."""
    return lark.Lark(_SCHEDULE_GRAMMAR)


def prompt_schedule(prompt: str, steps: int) -> list[tuple[int, str]]:
    """``[(end_step, text), ...]``: the text to use up to and including each end step.

    A1111's ``get_learned_conditioning_prompt_schedules([prompt], steps)[0]`` with its v1.10
    defaults (no hires pass, new scheduling). ``[from:to:when]``, ``[to:when]`` and
    ``[from::when]`` switch after step ``when`` (a number with a ``.`` is a fraction of ``steps``);
    ``[a|b]`` alternates every step. A prompt the grammar cannot parse is used literally.

    A1111's examples:

    >>> g = lambda p: prompt_schedule(p, 10)
    >>> g("test")
    [(10, 'test')]
    >>> g("a [b:3]")
    [(3, 'a '), (10, 'a b')]
    >>> g("a [b: 3]")
    [(3, 'a '), (10, 'a b')]
    >>> g("a [[[b]]:2]")
    [(2, 'a '), (10, 'a [[b]]')]
    >>> g("[(a:2):3]")
    [(3, ''), (10, '(a:2)')]
    >>> g("a [b : c : 1] d")
    [(1, 'a b  d'), (10, 'a  c  d')]
    >>> g("a[b:[c:d:2]:1]e")
    [(1, 'abe'), (2, 'ace'), (10, 'ade')]
    >>> g("a [unbalanced")
    [(10, 'a [unbalanced')]
    >>> g("a [b:.5] c")
    [(5, 'a  c'), (10, 'a b c')]
    >>> g("((a][:b:c [d:3]")
    [(3, '((a][:b:c '), (10, '((a][:b:c d')]
    >>> g("[a|(b:1.1)]")  # doctest: +NORMALIZE_WHITESPACE
    [(1, 'a'), (2, '(b:1.1)'), (3, 'a'), (4, '(b:1.1)'), (5, 'a'),
     (6, '(b:1.1)'), (7, 'a'), (8, '(b:1.1)'), (9, 'a'), (10, '(b:1.1)')]
    >>> g("[fe|]male")  # doctest: +NORMALIZE_WHITESPACE
    [(1, 'female'), (2, 'male'), (3, 'female'), (4, 'male'), (5, 'female'),
     (6, 'male'), (7, 'female'), (8, 'male'), (9, 'female'), (10, 'male')]
    >>> g("[fe|||]male")  # doctest: +NORMALIZE_WHITESPACE
    [(1, 'female'), (2, 'male'), (3, 'male'), (4, 'male'), (5, 'female'),
     (6, 'male'), (7, 'male'), (8, 'male'), (9, 'female'), (10, 'male')]

    Ours: end steps are clamped to ``steps``; with ``when`` below 1 the ``to`` part is used from step 1.

    >>> g("[a:b:15]"), g("[a:b:0]"), g("[a:b:-0.5]")
    ([(10, 'a')], [(10, 'b')], [(10, 'b')])
    """
    used_literally = [(steps, prompt)]
    try:
        tree = _schedule_parser().parse(prompt)
    except (lark.exceptions.LarkError, RecursionError):
        return used_literally
    # Hundreds of nested brackets exhaust Python's stack in lark's recursive transformer, which
    # A1111 does not survive; such a prompt is used literally, like one the grammar rejects.
    try:
        return [(step, _TextAtStep(step, steps).transform(tree)) for step in _end_steps(tree, steps)]
    except RecursionError:
        return used_literally
    except lark.exceptions.VisitError as error:  # lark wraps errors raised inside a rule's method
        if isinstance(error.orig_exc, RecursionError):
            return used_literally
        raise


def _end_step(number: str, steps: int) -> int:
    """The step a ``scheduled`` node switches after: A1111's ``min(steps, int(v))``.

    A1111 turns ``inf`` (``1e999``) into an ``OverflowError``; here it clamps like any big number.
    """
    value = float(number)
    if "." in number:
        value = value * steps
    if value >= steps:
        return steps
    if not math.isfinite(value):  # -inf, or nan from inf * 0 steps: never "before"
        return min(steps, -1)
    return min(steps, int(value))


def _end_steps(tree: lark.Tree, steps: int) -> list[int]:
    """Every step where some part of the prompt changes, sorted, always ending with ``steps``."""
    found = {steps}
    for node in tree.iter_subtrees():
        if node.data == "scheduled":
            end = _end_step(node.children[-2], steps)
            if end >= 1:
                found.add(end)
        elif node.data == "alternate":
            found.update(range(1, steps + 1))
    return sorted(found)


class _TextAtStep(lark.Transformer):
    """The prompt text in effect at one step: A1111's ``AtStep`` transformer, returning strings."""

    def __init__(self, step: int, steps: int) -> None:
        super().__init__()
        self.step = step
        self.steps = steps

    def scheduled(self, children: list) -> str:
        before, after, _, number, _ = children
        # A1111: `before or () if step <= when else after`; a missing "from" part is empty.
        if self.step <= _end_step(number, self.steps):
            return before or ""
        return after

    def alternate(self, children: list) -> str:
        options = [option or "" for option in children]  # [a|] has an empty (None) option
        return options[(self.step - 1) % len(options)]

    def plain(self, children: list) -> str:
        return children[0].value

    def __default__(self, data: str, children: list, meta: object) -> str:
        # start, prompt, emphasized: the texts and kept tokens (brackets, WHITESPACE) in order.
        return "".join(children)


# --- AND: A1111's get_multicond_prompt_list -----------------------------------------------------

_AND = re.compile(r"\bAND\b")
_SUBPROMPT_WEIGHT = re.compile(r"^((?:\s|.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$")


def split_and(prompt: str) -> list[tuple[str, float]]:
    """Split ``prompt`` on the word ``AND`` into ``(sub-prompt, weight)``; ``text :0.5`` sets a weight.

    A1111's ``get_multicond_prompt_list`` for one prompt, without its de-duplication: the parts
    come back in order, repeated texts included. Text keeps its leading whitespace, as in A1111.

    A1111's outputs (``tests/data/a1111_prompt_examples.json``):

    >>> split_and("photo AND (oil painting:1.2) :0.5")
    [('photo', 1.0), (' (oil painting:1.2)', 0.5)]
    >>> split_and("a cat :1.2 AND a dog")
    [('a cat', 1.2), (' a dog', 1.0)]

    Ours:

    >>> split_and("ANDROID AND a:-0.5")
    [('ANDROID', 1.0), (' a', -0.5)]
    """
    parts: list[tuple[str, float]] = []
    for subprompt in _AND.split(prompt):
        match = _SUBPROMPT_WEIGHT.search(subprompt)
        text, weight = match.groups() if match is not None else (subprompt, None)
        parts.append((text, float(weight) if weight is not None else 1.0))
    return parts


# --- extra networks: A1111's extra_networks.parse_prompt ----------------------------------------

_EXTRA_NETWORK = re.compile(r"<(\w+):([^>]+)>")

# Kinds whose weights A1111's built-in networks read, and how.
_LORA_KINDS = frozenset({"lora", "lyco"})  # "lyco" is A1111's alias of the Lora network
_HYPERNET_KIND = "hypernet"


@dataclass(frozen=True)
class NetworkRef:
    """One ``<kind:name:...>`` tag taken out of a prompt.

    ``args`` are all ``:``-separated items after the kind, name first (A1111's
    ``ExtraNetworkParams.items``), so items this module does not interpret (LoRA ``dyn``, ...)
    are not lost. ``te_weight``/``unet_weight`` are the text-encoder and UNet multipliers.
    """

    kind: str
    name: str
    te_weight: float
    unet_weight: float
    args: tuple[str, ...]


def extract_networks(prompt: str) -> tuple[str, list[NetworkRef]]:
    """Remove ``<kind:args>`` tags from ``prompt``; return the text left and the tags in order.

    A1111's ``extra_networks.parse_prompt``: each tag is replaced by nothing (the spaces around
    it stay). Weights follow A1111's networks: ``lora``/``lyco`` take ``name:te:unet`` with te
    defaulting to 1.0 and unet to te, and ``te=``/``unet=`` items override (an item with exactly
    one ``=`` is named, as in ``ExtraNetworkParams``); ``hypernet`` takes ``name:weight`` for
    both. Other kinds get weight 1.0.

    A1111 raises inside the network code on a weight that is not a number; here the tag is kept
    with both weights 1.0, so the caller can still report it.

    >>> extract_networks("a <lora:x:1>, b")
    ('a , b', [NetworkRef(kind='lora', name='x', te_weight=1.0, unet_weight=1.0, args=('x', '1'))])
    >>> extract_networks("<lora:x:0.5:1>")[1][0].te_weight, extract_networks("<lora:x:0.5:1>")[1][0].unet_weight
    (0.5, 1.0)
    >>> extract_networks("<lora:x:te=0.3:unet=0.7>")[1][0]
    NetworkRef(kind='lora', name='x', te_weight=0.3, unet_weight=0.7, args=('x', 'te=0.3', 'unet=0.7'))
    >>> extract_networks("<hypernet:h:0.6>")[1][0]
    NetworkRef(kind='hypernet', name='h', te_weight=0.6, unet_weight=0.6, args=('h', '0.6'))
    >>> extract_networks("<lora:bad:abc>")[1][0]
    NetworkRef(kind='lora', name='bad', te_weight=1.0, unet_weight=1.0, args=('bad', 'abc'))
    """
    networks: list[NetworkRef] = []

    def take(match: re.Match[str]) -> str:
        networks.append(_network_ref(match.group(1), tuple(match.group(2).split(":"))))
        return ""

    return _EXTRA_NETWORK.sub(take, prompt), networks


def _network_ref(kind: str, items: tuple[str, ...]) -> NetworkRef:
    if kind in _LORA_KINDS:
        positional = [item for item in items if len(item.split("=", 2)) != 2]
        named = dict(item.split("=", 2) for item in items if len(item.split("=", 2)) == 2)
        # A1111 indexes positional[0] and fails without one (<lora:te=1>); we name it "".
        name = positional[0] if positional else ""
        try:
            te_weight = float(positional[1]) if len(positional) > 1 else 1.0
            te_weight = float(named.get("te", te_weight))
            unet_weight = float(positional[2]) if len(positional) > 2 else te_weight
            unet_weight = float(named.get("unet", unet_weight))
        except ValueError:
            te_weight = unet_weight = 1.0
        return NetworkRef(kind, name, te_weight, unet_weight, items)
    if kind == _HYPERNET_KIND:
        # A1111's hypernet reads items, not positional ones: "name:weight".
        try:
            weight = float(items[1]) if len(items) > 1 else 1.0
        except ValueError:
            weight = 1.0
        return NetworkRef(kind, items[0], weight, weight, items)
    return NetworkRef(kind, items[0], 1.0, 1.0, items)
