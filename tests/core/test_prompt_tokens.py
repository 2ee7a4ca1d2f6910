"""Tests for desktop.core.prompt_tokens: spans well formed, A1111's reading of the prompt
(checked against desktop.core.prompt_syntax, which reproduces A1111's parser), and speed."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from desktop.core.prompt_syntax import parse_emphasis, prompt_schedule, split_and
from desktop.core.prompt_tokens import Span, SpanKind, highlight_spans, labelled

DYNAMIC = (SpanKind.SCHEDULE, SpanKind.ALTERNATION)


def kinds(text: str) -> set[SpanKind]:
    return {span.kind for span in highlight_spans(text)}


# --- shape of the result ---

SYNTAX_SOUP = st.text(alphabet="ab ()[]:|\\<>,.1-AND BREAK\n🐱", max_size=60)


@given(SYNTAX_SOUP)
@settings(max_examples=400, deadline=None)
def test_spans_are_sorted_disjoint_non_empty_and_inside_the_text(text):
    spans = highlight_spans(text, embeddings={"ab", "b"})
    position = 0
    for span in spans:
        assert isinstance(span, Span) and isinstance(span.kind, SpanKind)
        assert span.length > 0
        assert span.start >= position
        position = span.end
    assert position <= len(text)


def test_a_tag_that_cuts_a_keyword_is_taken_out_first():
    """A1111 removes <lora:...> before looking for AND: "AN<lora:x:1>D" is an AND to it."""
    assert labelled("a AN<lora:x:1>D b") == [
        ("and", "AN"), ("network", "<lora:"), ("network_name", "x"), ("network", ":1>"), ("and", "D"),
    ]
    assert split_and("a AN" + "D b")[1] == (" b", 1.0)


def test_positions_are_python_indices():
    text = "🐱 (cat:1.2)"
    assert highlight_spans(text)[0] == Span(2, 1, SpanKind.EMPHASIS)


def test_whole_words_only_for_keywords():
    assert kinds("ANDROID BREAKFAST band") == set()
    assert labelled("x\nBREAK\ny AND\nz") == [("break", "BREAK"), ("and", "AND")]


def test_escapes_and_a_lone_backslash():
    assert labelled(r"\\(a)") == [("escape", "\\\\"), ("emphasis", "("), ("emphasis", ")")]
    # "\:" is a lone backslash (dropped) and a live colon to A1111's emphasis parser
    assert labelled(r"(a\:1.5)") == [("emphasis", "("), ("weight_up", ":1.5"), ("emphasis", ")")]
    assert parse_emphasis(r"(a\:1.5)") == [("a", 1.5)]


def test_subprompt_weight_is_found_as_a1111_finds_it():
    assert labelled("a cat :1.2") == [("and_weight", ":1.2")]
    assert labelled("a cat:1.2:2 AND b") == [("and_weight", ":2"), ("and", "AND")]
    assert split_and("a cat:1.2:2 AND b")[0] == ("a cat:1.2", 2.0)
    assert labelled("a cat :1.2 more") == []


def test_embeddings_are_matched_in_any_case_as_whole_words():
    names = {"EasyNegative", "verybadimagenegative_v1.3"}
    assert labelled("easynegative, verybadimagenegative_v1.3.", embeddings=names) == [
        ("embedding", "easynegative"), ("embedding", "verybadimagenegative_v1.3"),
    ]
    assert labelled("easynegatives <lora:easynegative:1>", embeddings=names) == [
        ("network", "<lora:"), ("network_name", "easynegative"), ("network", ":1>"),
    ]


# --- agreement with A1111's parser (desktop.core.prompt_syntax) ---

# Well-formed pieces, nested a little; a stray "|" is thrown in now and then.
_LEAF = st.sampled_from(["cat", "a dog", " ", ", ", "1girl", "red hat", "(x)", "[y]", "(z:1.3)", "\\(w\\)"])


def _wrap(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        inner.map(lambda a: f"({a})"),
        inner.map(lambda a: f"[{a}]"),
        inner.map(lambda a: f"({a}:0.8)"),
        pair.map(lambda ab: f"[{ab[0]}:{ab[1]}:0.5]"),
        inner.map(lambda a: f"[{a}:3]"),
        inner.map(lambda a: f"[{a}::2]"),
        pair.map(lambda ab: f"[{ab[0]}|{ab[1]}]"),
        inner.map(lambda a: f"[{a}|]"),
    )


WELL_FORMED = st.recursive(_LEAF, lambda inner: st.one_of(_wrap(inner), st.tuples(inner, inner).map("".join)), max_leaves=6)


@given(st.lists(st.one_of(WELL_FORMED, st.just(" | ")), min_size=1, max_size=4).map(" ".join))
@settings(max_examples=300, deadline=None)
def test_schedules_are_found_exactly_where_a1111_schedules(prompt):
    """Our one-pass reading and A1111's Earley parse agree on every well-formed prompt, stray "|" included."""
    a1111_schedules = len(prompt_schedule(prompt, 1000)) > 1
    spans = highlight_spans(prompt)
    assert any(span.kind in DYNAMIC for span in spans) == a1111_schedules
    assert not any(span.kind == SpanKind.ERROR and prompt[span.start] != "|" for span in spans)


@pytest.mark.parametrize(
    "prompt",
    ["a [b:3]", "a [b: 3]", "a [[[b]]:2]", "[(a:2):3]", "a [b : c : 1] d", "a[b:[c:d:2]:1]e", "a [unbalanced",
     "a [b:.5] c", "((a][:b:c [d:3]", "[a|(b:1.1)]", "[fe|]male", "[fe|||]male", "[a:b:1e1]", "[a:b:+2]",
     "[a:b]", "[a:b:c]", "[a:b:c:1]", "[a|b:1]", "(a|b)", "[a|b] c|d", "[[a|b]:2]", "[a:(b|c):1]"],
)
def test_a1111_parser_examples(prompt):
    assert any(kind in DYNAMIC for kind in kinds(prompt)) == (len(prompt_schedule(prompt, 100)) > 1)


@given(st.text(alphabet="ab ()[]", max_size=30))
@settings(max_examples=400, deadline=None)
def test_stray_closers_are_errors_exactly_when_a1111_keeps_them_as_text(prompt):
    """Without ":" and "|" nothing is scheduled, and A1111 keeps a closer as text only when it closes nothing."""
    kept_as_text = sum(piece.count(")") + piece.count("]") for piece, _ in parse_emphasis(prompt))
    error_closers = [span for span in highlight_spans(prompt) if span.kind == SpanKind.ERROR and prompt[span.start] in ")]"]
    assert len(error_closers) == kept_as_text


@given(st.text(alphabet="ab ()[]", max_size=30))
@settings(max_examples=400, deadline=None)
def test_unclosed_openers_are_errors_exactly_when_a1111_closes_them_at_the_end(prompt):
    expected_unclosed = _unclosed_openers(prompt)
    error_openers = {span.start for span in highlight_spans(prompt) if span.kind == SpanKind.ERROR and prompt[span.start] in "(["}
    assert error_openers == expected_unclosed


def _unclosed_openers(prompt: str) -> set[int]:
    # A1111's rule, written out: one stack per bracket kind; what is left at the end is unclosed.
    stacks: dict[str, list[int]] = {"(": [], "[": []}
    for position, char in enumerate(prompt):
        if char in stacks:
            stacks[char].append(position)
        elif char in ")]":
            stack = stacks["(" if char == ")" else "["]
            if stack:
                stack.pop()
    return set(stacks["("] + stacks["["])


def test_weights_up_down_and_neutral_follow_the_number():
    assert [kind for kind, _ in labelled("(a:1.01)(b:0.99)(c:1.0)(d:-1)") if kind.startswith("weight")] == [
        "weight_up", "weight_down", "weight_neutral", "weight_down",
    ]
    assert parse_emphasis("(a:1.01)") == [("a", 1.01)]


# --- speed: it runs on the GUI thread on every keystroke ---

PATHOLOGICAL = {
    "openers": "(" * 10_000,
    "mixed openers": "([" * 5_000,
    "closers": ")]" * 5_000,
    "crossed": "(" * 5_000 + "]" * 5_000,
    "deep emphasis": "[" * 5_000 + "a:b:0.5" + "]" * 5_000,
    "nested schedules": "[a:" * 1_500 + "x" + ":0.5]" * 1_500,
    "alternations": "[a|" * 2_500 + "]" * 2_500,
    "weights": "(a:1.2)" * 1_430,
    "colons": ":" * 10_000,
    "pipes": "[a:b:1]" + "|" * 10_000,
    "unfinished tags": "<lora:" * 1_700,
    "tags and brackets": "<lora:x:1>(" * 1_000,
    "AND weights": "a AND :1" * 1_250,
    "spaces before a weight": " " * 10_000 + ":1",
    "BREAKs in brackets": "(BREAK " * 1_430,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_ten_kilobytes_of_pathological_brackets_highlight_fast(name):
    text = PATHOLOGICAL[name]
    assert len(text) >= 9_000
    # CPU time of this thread, best of three: other processes on a shared machine do not count.
    best = min(_cpu_seconds(lambda: highlight_spans(text, embeddings={"a"})) for _ in range(3))
    assert best < 0.050, f"{name}: {best * 1000:.1f} ms"


def _cpu_seconds(call) -> float:
    started = time.thread_time()
    call()
    return time.thread_time() - started
