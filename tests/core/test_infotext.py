"""Tests for desktop.core.infotext: A1111's worked examples, format, parse, round trip, hostile text."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from desktop.core.infotext import (
    Infotext,
    format_infotext,
    parse_infotext,
    quote,
    unquote,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES_NAME = "a1111_infotext_examples.json"
SHARED_EXAMPLES = REPO_ROOT.parent / "shared" / "examples" / EXAMPLES_NAME
# CI has no ../shared, so the repo keeps a copy; test_examples_copy_matches_shared catches drift.
LOCAL_EXAMPLES = REPO_ROOT / "tests" / "data" / EXAMPLES_NAME


def _load_cases(path: Path) -> list[Any]:
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{path} not present"))]
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    return [pytest.param(case, id=f"case{index}") for index, case in enumerate(cases)]


# --- A1111's own parser, copied as literally as possible, to check ours against ---------------
# Differences from modules/infotext_utils.py: no "Size-1"/"Size-2" split, no defaults filled in.

A1111_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def a1111_unquote(text: str) -> str:
    if len(text) == 0 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        return json.loads(text)
    except Exception:
        return text


def a1111_parse_generation_parameters(x: str) -> tuple[str, str, dict[str, str]]:
    res: dict[str, str] = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False
    *lines, lastline = x.strip().split("\n")
    if len(A1111_RE_PARAM.findall(lastline)) < 3:
        lines.append(lastline)
        lastline = ""
    for line in lines:
        line = line.strip()
        if line.startswith("Negative prompt:"):
            done_with_prompt = True
            line = line[16:].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line
    for k, v in A1111_RE_PARAM.findall(lastline):
        try:
            if v[0] == '"' and v[-1] == '"':
                v = a1111_unquote(v)
            res[k] = v
        except Exception:
            pass  # A1111 prints "Error parsing" and drops the key (an empty value lands here)
    return prompt, negative_prompt, res


# --- worked examples ------------------------------------------------------------------------


@pytest.mark.parametrize("case", _load_cases(LOCAL_EXAMPLES))
def test_parse_gives_a1111_result_for_repo_copy_of_examples(case: dict[str, Any]) -> None:
    assert parse_infotext(case["text"]) == (case["prompt"], case["negative"], case["params"])


@pytest.mark.parametrize("case", _load_cases(SHARED_EXAMPLES))
def test_parse_gives_a1111_result_for_shared_examples(case: dict[str, Any]) -> None:
    prompt, negative, params = parse_infotext(case["text"])
    assert prompt == case["prompt"]
    assert negative == case["negative"]
    assert params == case["params"]
    assert list(params) == list(case["params"])  # A1111 keeps the order of the text


@pytest.mark.skipif(not SHARED_EXAMPLES.is_file(), reason="../shared not present")
def test_examples_copy_matches_shared() -> None:
    shared = json.loads(SHARED_EXAMPLES.read_text(encoding="utf-8"))
    assert json.loads(LOCAL_EXAMPLES.read_text(encoding="utf-8")) == shared


def test_examples_copy_is_present() -> None:
    assert len(json.loads(LOCAL_EXAMPLES.read_text(encoding="utf-8"))["cases"]) >= 2


# --- format ---------------------------------------------------------------------------------

A1111_TXT2IMG_PARAMS: dict[str, object] = {
    "Steps": 20,
    "Sampler": "Euler a",
    "Schedule type": "Automatic",
    "CFG scale": 7,
    "Seed": 1,
    "Size": "512x512",
    "Model hash": "6ce0161689",
    "Model": "v1-5-pruned-emaonly",
    "Version": "v1.10.1",
}


def test_format_writes_a1111_layout() -> None:
    text = format_infotext("a cat", "blurry, lowres", A1111_TXT2IMG_PARAMS)
    assert text == (
        "a cat\n"
        "Negative prompt: blurry, lowres\n"
        "Steps: 20, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7, Seed: 1, "
        "Size: 512x512, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Version: v1.10.1"
    )


def test_format_without_negative_prompt_has_no_negative_line() -> None:
    text = format_infotext("a cat", "", A1111_TXT2IMG_PARAMS)
    prompt_line, params_line = text.split("\n")
    assert prompt_line == "a cat"
    assert params_line.startswith("Steps: 20, Sampler: Euler a, ")
    assert "Negative prompt" not in text


def test_format_with_empty_prompt_starts_with_negative_line() -> None:
    assert format_infotext("", "ugly", {"Steps": 20}) == "Negative prompt: ugly\nSteps: 20"


def test_format_with_nothing_is_empty() -> None:
    assert format_infotext("", "", {}) == ""
    assert format_infotext("a cat", "", {}) == "a cat"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("add_detail: 7c6bad76eb54", '"add_detail: 7c6bad76eb54"'),
        ("a, b", '"a, b"'),
        ("line one\nline two", '"line one\\nline two"'),
        ('say "hi", then', '"say \\"hi\\", then"'),
        ("back\\slash, too", '"back\\\\slash, too"'),
        ("猫: 1.2, 😀", '"猫: 1.2, 😀"'),  # ensure_ascii=False: Unicode stays readable
        ('no "separators" here', 'no "separators" here'),
        ("Euler a", "Euler a"),
        (7.5, "7.5"),
        (True, "True"),
    ],
)
def test_format_quotes_values_with_comma_colon_or_newline(value: object, written: str) -> None:
    assert quote(value) == written
    assert format_infotext("p", "", {"Key": value}) == f"p\nKey: {written}"


def test_format_skips_none_and_keeps_order() -> None:
    params = {"Seed": 5, "VAE": None, "Steps": 30, "Clip skip": None, "CFG scale": 6.5}
    assert format_infotext("p", "", params) == "p\nSeed: 5, Steps: 30, CFG scale: 6.5"


def test_format_writes_bare_key_when_value_equals_key() -> None:
    # A1111 writes flags such as "Tiling" this way; parse cannot see them (no colon).
    params = {"Steps": 20, "Tiling": "Tiling", "Seed": 1, "Size": "8x8"}
    text = format_infotext("p", "", params)
    assert text == "p\nSteps: 20, Tiling, Seed: 1, Size: 8x8"
    assert parse_infotext(text)[2] == {"Steps": "20", "Seed": "1", "Size": "8x8"}


# --- parse ----------------------------------------------------------------------------------


def test_last_line_with_fewer_than_three_pairs_is_prompt() -> None:
    # BAD_INPUTS 28: A1111 needs >= 3 "key: value" pairs to take the last line as parameters.
    assert parse_infotext("a cat\nSteps: 20, Seed: 1") == ("a cat\nSteps: 20, Seed: 1", "", {})
    assert parse_infotext("a cat\nNegative prompt: dog\nSteps: 20, Seed: 1") == (
        "a cat",
        "dog\nSteps: 20, Seed: 1",
        {},
    )
    assert parse_infotext("masterpiece, (cat:1.2), (dog:0.8)") == (
        "masterpiece, (cat:1.2), (dog:0.8)",
        "",
        {},
    )


def test_last_line_with_three_pairs_is_params() -> None:
    assert parse_infotext("a cat\nSteps: 20, Seed: 1, Size: 64x64") == (
        "a cat",
        "",
        {"Steps": "20", "Seed": "1", "Size": "64x64"},
    )


def test_prompt_line_with_three_pairs_is_params_when_it_is_the_only_line() -> None:
    # A1111 cannot tell a prompt like this from parameters; it takes it as parameters.
    assert parse_infotext("style: anime, mood: calm, light: soft") == (
        "",
        "",
        {"style": "anime", "mood": "calm", "light": "soft"},
    )


def test_sizes_stay_whole_strings() -> None:
    text = "p\nSize: 512x768, Hires resize: 1024x1536, Steps: 20"
    params = parse_infotext(text)[2]
    assert params == {"Size": "512x768", "Hires resize": "1024x1536", "Steps": "20"}
    assert "Size-1" not in params


def test_quoted_values_are_decoded() -> None:
    text = 'p\nSteps: 20, Lora hashes: "a: 1, b: 2", Prompt: "x\\ny \\"z\\"", Seed: 3'
    assert parse_infotext(text)[2] == {
        "Steps": "20",
        "Lora hashes": "a: 1, b: 2",
        "Prompt": 'x\ny "z"',
        "Seed": "3",
    }


def test_quoted_value_with_broken_json_is_kept_raw() -> None:
    text = 'p\nSteps: 20, Bad: "bad \\q escape", Seed: 3'
    assert parse_infotext(text)[2] == {"Steps": "20", "Bad": '"bad \\q escape"', "Seed": "3"}


def test_empty_value_is_dropped_like_a1111() -> None:
    # A1111 indexes value[0]; the IndexError is caught and the key dropped.
    assert parse_infotext("p\nSteps: 20, Empty: , Seed: 3, Size: 8x8")[2] == {
        "Steps": "20",
        "Seed": "3",
        "Size": "8x8",
    }


def test_later_key_overwrites_earlier_one() -> None:
    assert parse_infotext("p\nSeed: 1, Steps: 2, Seed: 3")[2] == {"Seed": "3", "Steps": "2"}


def test_negative_prompt_spans_lines_and_lines_are_stripped() -> None:
    text = "  line one  \n\tline two\nNegative prompt:   bad one \n bad two\nA b: 1, C d: 2, E f: 3"
    assert parse_infotext(text) == (
        "line one\nline two",
        "bad one\nbad two",
        {"A b": "1", "C d": "2", "E f": "3"},
    )


def test_every_negative_prompt_line_loses_its_prefix() -> None:
    text = "p\nNegative prompt: a\nNegative prompt: b\nSteps: 1, Seed: 2, Size: 8x8"
    assert parse_infotext(text)[:2] == ("p", "a\nb")


def test_leading_empty_lines_vanish_like_a1111() -> None:
    # A1111 adds "\n" only once the prompt so far is non-empty.
    text = "Negative prompt:\n\nneg\nSteps: 1, Seed: 2, Size: 8x8"
    assert parse_infotext(text)[:2] == ("", "neg")
    assert parse_infotext("a\n\n\nb\nSteps: 1, Seed: 2, Size: 8x8")[0] == "a\n\n\nb"


def test_one_character_key_is_not_a_key() -> None:
    # A1111's pattern wants two characters or more in a key.
    assert parse_infotext("p\nA: 1, Bc: 2, De: 3, Fg: 4")[2] == {"Bc": "2", "De": "3", "Fg": "4"}


def test_infotext_dataclass_parses_and_formats() -> None:
    text = format_infotext("a cat", "dog", A1111_TXT2IMG_PARAMS)
    info = Infotext.parse(text)
    assert info == Infotext(
        "a cat", "dog", {key: str(value) for key, value in A1111_TXT2IMG_PARAMS.items()}
    )
    assert info.format() == text
    assert hash(info) == hash(Infotext("a cat", "dog", {}))
    with pytest.raises(AttributeError):
        info.prompt = "changed"  # type: ignore[misc]


def test_unquote_leaves_non_json_alone() -> None:
    assert unquote("") == ""
    assert unquote('"') == '"'
    assert unquote('"a" "b"') == '"a" "b"'
    assert unquote('"a\\u00e9"') == "aé"


# --- hostile text ---------------------------------------------------------------------------

MEGABYTE = 1_000_000

HOSTILE_TEXTS = {
    "empty": "",
    "only newlines": "\n\n\n\n",
    "only whitespace": " \t\r\n\u3000\n",
    "lone quote": '"',
    "lone quotes": '"""""',
    "unterminated value": 'p\nKey: "unterminated',
    "unterminated values": 'Ab: "x, Cd: "y, Ef: "z',
    "trailing backslash": 'Ab: "x\\',
    "nul and controls": "\x00\x01\x1b[31m\x7f: \x00, \x00: \x00",
    "colons only": ":::,,,:::",
    "negative prefix only": "Negative prompt:",
    "surrogate": "\ud800: \udfff, Ab: \ud800, Cd: x, Ef: y",
}

HUGE_TEXTS = {
    "1 MB of words": "a " * (MEGABYTE // 2),
    "1 MB of spaces": " " * MEGABYTE,
    "1 MB of colons": ":" * MEGABYTE,
    "1 MB of quotes": '"' * MEGABYTE,
    "1 MB of backslashes": "\\" * MEGABYTE,
    "1 MB unterminated value": 'p\nKey: "' + "x" * MEGABYTE,
    "1 MB of params": "Steps: 20, " * (MEGABYTE // 11),
    "1 MB of unterminated values": 'Ab: "x, ' * (MEGABYTE // 8),
    "1 MB of newlines": "\n" * MEGABYTE,
    "1 MB of lines": "Negative prompt: a b\n" * (MEGABYTE // 21),
}


def _assert_well_formed(result: tuple[str, str, dict[str, str]]) -> None:
    prompt, negative, params = result
    assert isinstance(prompt, str)
    assert isinstance(negative, str)
    assert all(isinstance(key, str) and isinstance(value, str) for key, value in params.items())


@pytest.mark.parametrize("text", list(HOSTILE_TEXTS.values()), ids=list(HOSTILE_TEXTS))
def test_hostile_text_parses_like_a1111_without_raising(text: str) -> None:
    result = parse_infotext(text)
    _assert_well_formed(result)
    assert result == a1111_parse_generation_parameters(text)


def test_empty_and_blank_text_give_nothing() -> None:
    assert parse_infotext("") == ("", "", {})
    assert parse_infotext("\n\n\n") == ("", "", {})


def test_unterminated_quote_is_read_up_to_the_comma() -> None:
    assert parse_infotext('Ab: "x, Cd: "y, Ef: "z') == ("", "", {"Ab": '"x', "Cd": '"y', "Ef": '"z'})


@pytest.mark.parametrize("text", list(HUGE_TEXTS.values()), ids=list(HUGE_TEXTS))
def test_huge_hostile_text_parses(text: str) -> None:
    # A1111's findall is quadratic on a long line of key characters (hours for 1 MB of words), so
    # a regression to it shows up as this test never finishing; speed itself is not asserted here.
    _assert_well_formed(parse_infotext(text))


# --- properties -----------------------------------------------------------------------------

# Pieces that stress the format, plus any other Unicode that can be encoded (no lone surrogates).
# "\n" is left out: it is what separates the lines, so it gets a strategy of its own.
TRICKY_PIECES = list(',:"\\ \t\r-/_()<>') + ["猫", "中文", "é", "😀", "\u3000", "\u2028", "\x85"]
TRICKY_PIECES += ["Negative prompt:", "Negative prompt: ", "Steps: 20, ", '"a, b"', "\\n", '\\"']
tricky_piece = st.one_of(st.sampled_from(TRICKY_PIECES), st.characters(codec="utf-8", exclude_characters="\n"))
one_line_text = st.lists(tricky_piece, max_size=12).map("".join)
multi_line_value = st.lists(st.one_of(tricky_piece, st.just("\n")), max_size=12).map("".join)

prompt_line = (
    # The parser strips every prompt line, so edge whitespace cannot survive.
    one_line_text.map(str.strip)
    # A line starting with the prefix is read as the start of the negative prompt.
    .filter(lambda line: not line.startswith("Negative prompt:"))
)
# Prompts are written as they are, so their lines are exactly what the parser splits off.
multi_line_text = (
    st.lists(prompt_line, max_size=4)
    # A1111 adds "\n" only once the prompt so far is non-empty, so leading empty lines vanish.
    .filter(lambda lines: not lines or lines[0] != "")
    .map("\n".join)
)

param_key = (
    # Keys are what A1111's pattern reads before a colon: \w[\w \-/]+.
    st.from_regex(r"\w[\w \-/]+", fullmatch=True)
    # hypothesis's idea of \w may differ from re's on rare characters; re is what A1111 uses.
    .filter(lambda key: re.fullmatch(r"\w[\w \-/]+", key) is not None)
)


def _value_survives_unquoted(value: str) -> bool:
    if quote(value) != value:
        return True  # a JSON-quoted value round-trips whatever it holds
    # The pattern skips whitespace after the colon and the whole text is stripped.
    if value != value.strip():
        return False
    # A leading quote makes the pattern read a JSON string, possibly across later pairs.
    return not value.startswith('"')


param_value = (
    # A1111 drops a key whose value is empty.
    st.one_of(multi_line_value, st.text())
    .filter(bool)
    .filter(_value_survives_unquoted)
)
params_dict = (
    # A line with fewer than three pairs is read as prompt text.
    st.dictionaries(param_key, param_value, min_size=3, max_size=6)
    # A value equal to its key is written as the bare key, which has no colon to read back.
    .filter(lambda params: all(key != value for key, value in params.items()))
)


@settings(max_examples=300, deadline=None, database=None)
@given(prompt=multi_line_text, negative_prompt=multi_line_text, params=params_dict)
def test_format_then_parse_round_trips(
    prompt: str, negative_prompt: str, params: dict[str, str]
) -> None:
    # BAD_INPUTS 27.
    text = format_infotext(prompt, negative_prompt, params)
    parsed = parse_infotext(text)
    assert parsed == (prompt, negative_prompt, params)
    assert list(parsed[2]) == list(params)
    assert Infotext.parse(text).format() == text


@settings(max_examples=200, deadline=None, database=None)
@given(prompt=multi_line_text, negative_prompt=multi_line_text)
def test_format_then_parse_round_trips_without_params(prompt: str, negative_prompt: str) -> None:
    text = format_infotext(prompt, negative_prompt, {})
    # The whole text is stripped, so a trailing empty line cannot survive.
    last_part = negative_prompt or prompt
    assume(not last_part or not last_part.endswith("\n"))
    # A last line with three pairs or more would be read as parameters.
    assume(len(A1111_RE_PARAM.findall(text.split("\n")[-1])) < 3)
    assert parse_infotext(text) == (prompt, negative_prompt, {})


# Few characters, all of them meaningful to the parser, so hypothesis hits the edge cases.
parser_character = st.sampled_from(list('ab_1 -/:,"\\\n\t') + ["Negative prompt:", "猫", "\u3000"])
parser_text = st.lists(parser_character, max_size=60).map("".join)


@settings(max_examples=1000, deadline=None, database=None)
@given(text=parser_text)
def test_parse_matches_a1111_parser(text: str) -> None:
    assert parse_infotext(text) == a1111_parse_generation_parameters(text)


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.text(max_size=200))
def test_parse_matches_a1111_parser_on_any_text(text: str) -> None:
    assert parse_infotext(text) == a1111_parse_generation_parameters(text)
