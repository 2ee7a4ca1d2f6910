"""Tests for desktop.core.prompt_weight: A1111's Ctrl/Cmd+Up/Down attention editing."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from desktop.core.prompt_weight import adjust_weight

JS_REFERENCE = Path(__file__).resolve().parents[1] / "data" / "a1111_edit_attention.js"


def press(text: str, start: int, end: int, *keys: str) -> tuple[str, int, int]:
    """Apply a sequence of "up"/"down" presses, keeping the selection between them as A1111 does."""
    for key in keys:
        text, start, end = adjust_weight(text, start, end, increase=key == "up")
    return text, start, end


@pytest.mark.parametrize(
    ("text", "start", "end", "keys", "expected"),
    [
        # a word under the cursor, up and down, through 1.0 where the parentheses go
        ("a cat", 3, 3, ["up"], ("a (cat:1.1)", 3, 6)),
        ("a cat", 3, 3, ["up", "up", "up"], ("a (cat:1.3)", 3, 6)),
        ("a cat", 3, 3, ["up", "down"], ("a cat", 2, 5)),
        ("a cat", 3, 3, ["down"] * 3, ("a (cat:0.7)", 3, 6)),
        # the cursor at either edge of the word still takes the word
        ("a cat, b", 2, 2, ["up"], ("a (cat:1.1), b", 3, 6)),
        ("a cat, b", 5, 5, ["up"], ("a (cat:1.1), b", 3, 6)),
        # words end at A1111's delimiters: "-" and "_" are inside words, "." and "/" are not
        ("a blue-eyed_cat.", 4, 4, ["up"], ("a (blue-eyed_cat:1.1).", 3, 16)),
        ("a/b", 0, 0, ["up"], ("(a:1.1)/b", 1, 2)),
        # multi-line: a line break ends a word
        ("one\ntwo", 5, 5, ["up"], ("one\n(two:1.1)", 5, 8)),
        # an existing weight edited in place, from inside its group
        ("x (red hat:1.25) y", 5, 5, ["up"], ("x (red hat:1.35) y", 3, 10)),
        ("(a:2)", 1, 1, ["down"], ("(a:1.9)", 1, 2)),
        ("(a:-0.05)", 1, 1, ["up"], ("(a:0.05)", 1, 2)),
        # old-style emphasis becomes a number
        ("(((house)))", 5, 5, ["up"], ("(house:1.4)", 1, 6)),
        ("[[house]]", 4, 4, ["down"], ("(house:0.7)", 1, 6)),
        ("[house]", 3, 3, ["up"], ("house", 0, 5)),
        # extra networks: 0.05 steps, never unwrapped
        ("<lora:x:1>", 2, 2, ["down"], ("<lora:x:0.95>", 1, 7)),
        ("<lora:x:0.95>", 2, 2, ["up"], ("<lora:x:1.0>", 1, 7)),
        # A1111 wraps a schedule's "from:to" part as a whole (its own quirk)
        ("[a:b:0.5]", 1, 1, ["up"], ("[(a:b:1.1):0.5]", 2, 5)),
        # nothing to do: the selection A1111 made is kept
        ("a, b", 2, 2, ["up"], ("a, b", 2, 2)),
        ("(a b)", 1, 2, ["up"], ("(a b)", 1, 2)),
        ("", 0, 0, ["up"], ("", 0, 0)),
    ],
)
def test_a1111_edit_attention(text, start, end, keys, expected):
    assert press(text, start, end, *keys) == expected


def test_non_ascii_words():
    assert adjust_weight("ein schöner Hund", 6, 6, increase=True) == ("ein (schöner:1.1) Hund", 5, 12)


WORD = st.text(alphabet="abcxyz_-'0123456789", min_size=1, max_size=6)


@given(words=st.lists(WORD, min_size=1, max_size=5), pick=st.integers(min_value=0), offset=st.integers(min_value=0))
def test_up_then_down_restores_a_plain_prompt(words, pick, offset):
    text = ", ".join(words)
    index = pick % len(words)
    word_start = sum(len(word) + 2 for word in words[:index])
    cursor = word_start + offset % (len(words[index]) + 1)
    raised, start, end = adjust_weight(text, cursor, cursor, increase=True)
    assert raised[start - 1 : end + 5] == f"({words[index]}:1.1)"[: end - start + 6]
    restored, start, end = adjust_weight(raised, start, end, increase=False)
    assert restored == text
    assert restored[start:end] == words[index]


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the JavaScript reference")
def test_matches_the_javascript_reference_on_random_prompts():
    """The port against A1111's function in JavaScript (tests/data/a1111_edit_attention.js, written
    from memory of A1111's source): the same text and selection for random prompts, keys, cursors."""
    rng = random.Random(1111)
    pieces = ["a", "cat", " ", ",", "(", ")", "[", "]", "<", ">", ":", "1.2", "0.9", "lora", "1.0",
              "-0.5", "\n", "x:2.0", "\\", "0.05", "1e3", "."]
    cases = []
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 9)))
        start = rng.randint(0, len(text))
        end = start if rng.random() < 0.7 else rng.randint(start, len(text))
        cases.append({"text": text, "start": start, "end": end, "plus": rng.random() < 0.5})
    result = subprocess.run(
        ["node", str(JS_REFERENCE)],
        input="\n".join(json.dumps(case) for case in cases),
        capture_output=True, text=True, timeout=120, check=True,
    )
    for case, line in zip(cases, result.stdout.splitlines(), strict=True):
        expected = tuple(json.loads(line))
        assert adjust_weight(case["text"], case["start"], case["end"], increase=case["plus"]) == expected, case
