"""Read and write AUTOMATIC1111's image metadata text ("infotext", the PNG ``parameters`` chunk).

The layout is prompt lines, then ``Negative prompt: ...`` lines (only when there is a negative
prompt), then one line of ``Key: value, Key: value, ...``. A value holding ``,``, ``:`` or a
newline is written as a JSON string. Reading follows A1111's ``parse_generation_parameters``
before it fills in defaults, except that sizes stay whole (``"512x768"``, not ``Size-1``/``Size-2``).

>>> text = format_infotext("a cat, (red hat:1.2)", "blurry", {"Steps": 20, "Sampler": "Euler a",
...                        "Seed": 1, "Size": "512x768", "Lora hashes": "cat: 0123abcd"})
>>> print(text)
a cat, (red hat:1.2)
Negative prompt: blurry
Steps: 20, Sampler: Euler a, Seed: 1, Size: 512x768, Lora hashes: "cat: 0123abcd"
>>> parse_infotext(text)  # doctest: +NORMALIZE_WHITESPACE
('a cat, (red hat:1.2)', 'blurry',
 {'Steps': '20', 'Sampler': 'Euler a', 'Seed': '1', 'Size': '512x768', 'Lora hashes': 'cat: 0123abcd'})
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

NEGATIVE_PROMPT_PREFIX = "Negative prompt:"

# A1111's re_param, character for character: what counts as a key and where a value ends.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_KEY_CHARS_RUN = re.compile(r"[\w \-/]+")
_WORD_CHAR = re.compile(r"\w")

# A1111 reads the last line as parameters only when it holds at least this many pairs.
_MIN_PARAMS_ON_LAST_LINE = 3


def quote(value: object) -> str:
    """Write ``value`` as A1111 does: as is, or as a JSON string when it holds ``,``, ``:`` or a newline.

    >>> quote(7.5)
    '7.5'
    >>> quote("Euler a")
    'Euler a'
    >>> print(quote('add_detail: 7c6bad76eb54, "x"'))
    "add_detail: 7c6bad76eb54, \\"x\\""
    >>> print(quote("猫:1.2"))
    "猫:1.2"
    """
    text = str(value)
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def unquote(text: str) -> str:
    """Undo :func:`quote`: decode a JSON string, and give anything else (broken JSON too) back as is.

    >>> unquote('"a, b: c"')
    'a, b: c'
    >>> unquote('plain')
    'plain'
    >>> unquote('"unterminated \\\\"')
    '"unterminated \\\\"'
    """
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        decoded = json.loads(text)
    except ValueError:  # json only raises ValueError (JSONDecodeError) on a str
        return text
    # Text between two quotes decodes to a str or fails; the check keeps the return type honest.
    return decoded if isinstance(decoded, str) else text


def format_infotext(prompt: str, negative_prompt: str, params: Mapping[str, object]) -> str:
    """Write an infotext exactly as A1111's ``create_infotext`` does.

    Parameters whose value is None are left out; a parameter whose value equals its key is
    written as the bare key (A1111 uses this for flags). The order of ``params`` is kept.

    >>> format_infotext("a dog", "", {"Steps": 20, "VAE": None, "Seed": 3})
    'a dog\\nSteps: 20, Seed: 3'
    >>> format_infotext("a dog", "", {})
    'a dog'
    """
    params_text = ", ".join(
        key if key == value else f"{key}: {quote(value)}"
        for key, value in params.items()
        if value is not None
    )
    negative_prompt_text = f"\n{NEGATIVE_PROMPT_PREFIX} {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative_prompt_text}\n{params_text}".strip()


def parse_infotext(text: str) -> tuple[str, str, dict[str, str]]:
    """Read an infotext into ``(prompt, negative_prompt, params)``, as A1111 does; never raises.

    The last line counts as parameters only when it holds at least three ``Key: value`` pairs;
    otherwise it is part of the prompt (or of the negative prompt). Values stay strings.

    >>> parse_infotext("a dog\\nSteps: 20, Seed: 3")
    ('a dog\\nSteps: 20, Seed: 3', '', {})
    >>> parse_infotext("a dog\\nNegative prompt: cat\\nSteps: 20, Seed: 3, Size: 512x768")
    ('a dog', 'cat', {'Steps': '20', 'Seed': '3', 'Size': '512x768'})
    >>> parse_infotext("")
    ('', '', {})
    """
    *text_lines, last_line = text.strip().split("\n")
    param_pairs = list(_find_params(last_line))
    if len(param_pairs) < _MIN_PARAMS_ON_LAST_LINE:
        text_lines.append(last_line)
        param_pairs = []

    prompt_lines: list[str] = []
    negative_lines: list[str] = []
    lines_in_progress = prompt_lines
    for line in text_lines:
        line = line.strip()
        # A1111 checks every line, so a later "Negative prompt:" line loses its prefix too.
        if line.startswith(NEGATIVE_PROMPT_PREFIX):
            lines_in_progress = negative_lines
            line = line[len(NEGATIVE_PROMPT_PREFIX) :].strip()
        lines_in_progress.append(line)

    params: dict[str, str] = {}
    for key, value in param_pairs:
        if not value:
            # A1111 indexes value[0], fails on an empty value and drops that key.
            continue
        params[key] = unquote(value)
    return _join_like_a1111(prompt_lines), _join_like_a1111(negative_lines), params


def _join_like_a1111(lines: list[str]) -> str:
    # A1111 adds "\n" only once the text so far is non-empty, so leading empty lines vanish.
    for first_non_empty, line in enumerate(lines):
        if line:
            return "\n".join(lines[first_non_empty:])
    return ""


def _find_params(line: str) -> Iterator[tuple[str, str]]:
    """Yield what ``_PARAM.findall(line)`` gives, in linear time.

    findall retries the pattern at every position, and each try inside a long run of key
    characters scans to the end of the run: quadratic on a long prompt line, which A1111 also
    feeds to the pattern. A key must end at a ":" right after a run of key characters and start
    with a word character of that run, so the scan jumps from run to run and only tries the
    pattern where it will match (a value always matches once its key has).
    """
    position = 0
    while True:
        run = _KEY_CHARS_RUN.search(line, position)
        if run is None:
            return
        run_start, run_end = run.span()
        position = run_end
        if not line.startswith(":", run_end):
            continue
        # The key needs a word character with at least one key character after it.
        key_start = _WORD_CHAR.search(line, run_start, run_end - 1)
        if key_start is None:
            continue
        match = _PARAM.match(line, key_start.start())
        if match is None:  # cannot happen (see above); findall would move on the same way
            continue
        position = match.end()
        key, value = match.groups()
        yield key, value


@dataclass(frozen=True)
class Infotext:
    """A parsed infotext; ``params`` values are strings after :meth:`parse`.

    >>> info = Infotext.parse("a cat\\nNegative prompt: dog\\nSteps: 20, Seed: 1, Size: 512x512")
    >>> info.negative_prompt, info.params["Size"]
    ('dog', '512x512')
    >>> info.format()
    'a cat\\nNegative prompt: dog\\nSteps: 20, Seed: 1, Size: 512x512'
    """

    prompt: str = ""
    negative_prompt: str = ""
    # A dict cannot be hashed; leaving it out of the hash keeps the dataclass hashable.
    params: Mapping[str, object] = field(default_factory=dict, hash=False)

    @classmethod
    def parse(cls, text: str) -> Infotext:
        return cls(*parse_infotext(text))

    def format(self) -> str:
        return format_infotext(self.prompt, self.negative_prompt, self.params)
