"""The prompt editor widget: highlighting in the right places and colours, Cmd+Up/Down as one undo
step, the debounced token counter that drops stale answers, name completion, and a screenshot."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from PySide6.QtCore import Qt, QThreadPool
from PySide6.QtGui import QColor, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QVBoxLayout, QWidget

from desktop.core.prompt_tokens import SpanKind
from desktop.ui.prompt_editor import MIN_CONTRAST, PromptEditor, contrast_ratio, span_formats

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts"
COLOURFUL_PROMPT = (
    "masterpiece, (best quality:1.2), a [cat:dog:0.5] in a [red|blue] hat, (((smiling))), [blurry],\n"
    "<lora:cute_style:0.8> easynegative, (sunset:0.7), (glow:1.0) BREAK\n"
    "unclosed (bracket, a stray ] here, \\(escaped\\) AND city lights :0.5"
)


@pytest.fixture
def editor(qtbot) -> PromptEditor:
    widget = PromptEditor(debounce_ms=20)
    qtbot.addWidget(widget)
    widget.resize(560, 160)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def place_cursor(editor: PromptEditor, start: int, end: int | None = None) -> None:
    cursor = editor.text_edit.textCursor()
    cursor.setPosition(start)
    if end is not None:
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
    editor.text_edit.setTextCursor(cursor)


def formats_of_block(editor: PromptEditor, number: int) -> dict[tuple[int, int], QColor]:
    """``{(start, length): foreground}`` as Qt laid the block out."""
    block = editor.text_edit.document().findBlockByNumber(number)
    return {(r.start, r.length): r.format.foreground().color() for r in block.layout().formats()}


def colour(editor: PromptEditor, kind: SpanKind) -> QColor:
    return editor.highlighter.format_for(kind).foreground().color()


# --- highlighting ---


def test_highlighting_formats_land_on_the_right_ranges(editor: PromptEditor):
    text = "a (cat:1.2) [dog|fox] (x:0.5) ((y"
    editor.set_text(text)
    formats = formats_of_block(editor, 0)
    assert formats[(text.index("("), 1)] == colour(editor, SpanKind.EMPHASIS)
    assert formats[(text.index(":1.2"), 4)] == colour(editor, SpanKind.WEIGHT_UP)
    assert formats[(text.index(":0.5"), 4)] == colour(editor, SpanKind.WEIGHT_DOWN)
    assert formats[(text.index("["), 1)] == colour(editor, SpanKind.ALTERNATION)
    assert formats[(text.index("|"), 1)] == colour(editor, SpanKind.ALTERNATION)
    # The two unclosed "((" are one error range (same-kind neighbours are merged).
    assert formats[(text.index("(("), 2)] == colour(editor, SpanKind.ERROR)
    last_range = editor.text_edit.document().firstBlock().layout().formats()[-1]
    assert last_range.format.underlineStyle() == QTextCharFormat.UnderlineStyle.WaveUnderline
    # Plain words get no format at all.
    assert not any(start <= text.index("cat") < start + length for start, length in formats)


def test_weight_colours_differ_for_up_and_down(editor: PromptEditor):
    assert colour(editor, SpanKind.WEIGHT_UP) != colour(editor, SpanKind.WEIGHT_DOWN)
    assert colour(editor, SpanKind.ERROR) not in (colour(editor, SpanKind.EMPHASIS), colour(editor, SpanKind.NETWORK))


def test_a_closing_bracket_on_a_later_line_fixes_the_earlier_line(editor: PromptEditor, qtbot):
    editor.set_text("(cat\ndog")
    assert formats_of_block(editor, 0)[(0, 1)] == colour(editor, SpanKind.ERROR)
    cursor = editor.text_edit.textCursor()
    cursor.movePosition(QTextCursor.MoveOperation.End)
    editor.text_edit.setTextCursor(cursor)
    qtbot.keyClicks(editor.text_edit, ")")
    qtbot.waitUntil(lambda: formats_of_block(editor, 0).get((0, 1)) == colour(editor, SpanKind.EMPHASIS), timeout=2000)
    assert formats_of_block(editor, 1)[(3, 1)] == colour(editor, SpanKind.EMPHASIS)


def test_positions_after_an_emoji_are_counted_in_utf16_units(editor: PromptEditor):
    text = "🐱 (cat:1.2)"  # the cat is one Python character and two UTF-16 units
    editor.set_text(text)
    formats = formats_of_block(editor, 0)
    assert formats[(3, 1)] == colour(editor, SpanKind.EMPHASIS)
    assert formats[(7, 4)] == colour(editor, SpanKind.WEIGHT_UP)


def test_embedding_names_are_highlighted_once_known(editor: PromptEditor):
    editor.set_text("a cat, EasyNegative")
    assert formats_of_block(editor, 0) == {}
    editor.set_completion_names([], ["easynegative"], [])
    assert formats_of_block(editor, 0) == {(7, 12): colour(editor, SpanKind.EMBEDDING)}


@pytest.mark.parametrize("base", ["#ffffff", "#f2f2f2", "#1e1e1e", "#000000"])
def test_colours_are_readable_on_light_and_dark_bases(base: str):
    palette = QPalette()
    palette.setColor(QPalette.ColorRole.Base, QColor(base))
    palette.setColor(QPalette.ColorRole.Text, QColor("#000000" if QColor(base).lightness() > 128 else "#ffffff"))
    formats = span_formats(palette)
    for kind in SpanKind:
        foreground = formats[kind].foreground().color()
        if kind in (SpanKind.WEIGHT_NEUTRAL, SpanKind.ESCAPE):
            continue  # deliberately quiet: the text colour mixed into the base
        assert contrast_ratio(foreground, QColor(base)) >= MIN_CONTRAST, (kind, foreground.name(), base)


def test_a_palette_change_recolours_the_text(editor: PromptEditor):
    editor.set_text("(cat:1.2)")
    light = formats_of_block(editor, 0)[(4, 4)]
    dark = QPalette(editor.palette())
    dark.setColor(QPalette.ColorRole.Base, QColor("#1e1e1e"))
    dark.setColor(QPalette.ColorRole.Text, QColor("#eeeeee"))
    editor.text_edit.setPalette(dark)
    editor.setPalette(dark)
    recoloured = formats_of_block(editor, 0)[(4, 4)]
    assert recoloured != light
    assert contrast_ratio(recoloured, QColor("#1e1e1e")) >= MIN_CONTRAST


# --- Cmd+Up / Cmd+Down ---


def test_cmd_up_on_a_word_weights_it_and_keeps_it_selected(editor: PromptEditor, qtbot):
    editor.set_text("a cat on a mat")
    place_cursor(editor, 3)
    qtbot.keyClick(editor.text_edit, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert editor.text() == "a (cat:1.1) on a mat"
    assert editor.text_edit.textCursor().selectedText() == "cat"
    qtbot.keyClick(editor.text_edit, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert editor.text() == "a (cat:1.2) on a mat"
    for _ in range(2):
        qtbot.keyClick(editor.text_edit, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert editor.text() == "a cat on a mat"  # back at 1.0: the parentheses go
    assert editor.text_edit.textCursor().selectedText() == "cat"


def test_meta_works_too_and_plain_arrows_still_move(editor: PromptEditor, qtbot):
    editor.set_text("a cat")
    place_cursor(editor, 3)
    qtbot.keyClick(editor.text_edit, Qt.Key.Key_Down, Qt.KeyboardModifier.MetaModifier)
    assert editor.text() == "a (cat:0.9)"
    qtbot.keyClick(editor.text_edit, Qt.Key.Key_Up)
    assert editor.text() == "a (cat:0.9)"


def test_a_selection_is_weighted_as_a_whole(editor: PromptEditor, qtbot):
    editor.set_text("a red cat on a mat")
    place_cursor(editor, 2, 10)  # "red cat "
    qtbot.keyClick(editor.text_edit, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert editor.text() == "a (red cat:1.1) on a mat"
    assert editor.text_edit.textCursor().selectedText() == "red cat"


def test_one_undo_restores_the_text_before_the_weight_edit(editor: PromptEditor, qtbot):
    editor.set_text("")
    qtbot.keyClicks(editor.text_edit, "a cat on a mat")
    place_cursor(editor, 3)
    qtbot.keyClick(editor.text_edit, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert editor.text() == "a (cat:1.1) on a mat"
    editor.text_edit.undo()
    assert editor.text() == "a cat on a mat"
    editor.text_edit.redo()
    assert editor.text() == "a (cat:1.1) on a mat"
    qtbot.keyClick(editor.text_edit, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert editor.text() == "a cat on a mat"


def test_weight_edit_after_an_emoji(editor: PromptEditor, qtbot):
    editor.set_text("🐱 cat")
    place_cursor(editor, 4)  # UTF-16: the emoji is two units, then the space
    qtbot.keyClick(editor.text_edit, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert editor.text() == "🐱 (cat:1.1)"
    assert editor.text_edit.textCursor().selectedText() == "cat"


# --- the token counter ---


def test_no_counter_no_label(editor: PromptEditor, qtbot):
    qtbot.keyClicks(editor.text_edit, "a cat")
    qtbot.wait(60)
    assert editor.token_label.isHidden()


def test_counter_shows_used_over_limit_after_the_debounce(qtbot):
    calls: list[str] = []

    def count(text: str) -> tuple[int, int]:
        calls.append(text)
        used = len(text.split())
        return used, max(75, -(-used // 75) * 75)

    editor = PromptEditor(count_tokens=count, debounce_ms=50)
    qtbot.addWidget(editor)
    editor.show()
    with qtbot.waitSignal(editor.token_count_changed, timeout=3000) as shown:
        qtbot.keyClicks(editor.text_edit, "a cat on a mat")
    assert shown.args == [5, 75]
    assert editor.token_label.text() == "5/75" and editor.token_label.isVisible()
    assert calls == ["a cat on a mat"]  # debounced: one count for fourteen keystrokes
    with qtbot.waitSignal(editor.token_count_changed, timeout=3000):
        editor.set_text("word " * 80)
    assert editor.token_label.text() == "80/150"


def test_stale_counts_are_dropped(qtbot):
    release_first = threading.Event()
    shown: list[tuple[int, int]] = []

    def count(text: str) -> tuple[int, int]:
        if text == "first":
            release_first.wait(5)
            return 111, 150
        return 2, 75

    pool = QThreadPool()
    pool.setMaxThreadCount(2)
    editor = PromptEditor(count_tokens=count, debounce_ms=10, thread_pool=pool)
    qtbot.addWidget(editor)
    editor.token_count_changed.connect(lambda used, limit: shown.append((used, limit)))
    editor.set_text("first")
    qtbot.wait(100)  # the first count is now running, blocked
    with qtbot.waitSignal(editor.token_count_changed, timeout=3000):
        editor.set_text("second text")
    release_first.set()
    pool.waitForDone(5000)
    qtbot.wait(100)  # let the late answer for "first" arrive
    assert shown == [(2, 75)]
    assert editor.token_label.text() == "2/75"


def test_a_failing_counter_hides_the_label(qtbot):
    def count(text: str) -> tuple[int, int]:
        if "boom" in text:
            raise RuntimeError("tokenizer missing")
        return 1, 75

    editor = PromptEditor(count_tokens=count, debounce_ms=10)
    qtbot.addWidget(editor)
    editor.show()
    with qtbot.waitSignal(editor.token_count_changed, timeout=3000):
        editor.set_text("ok")
    editor.set_text("boom")
    qtbot.waitUntil(editor.token_label.isHidden, timeout=3000)


# --- completion ---


def test_completer_offers_lora_names_after_lora_tag(editor: PromptEditor, qtbot):
    editor.set_completion_names(["cute_style", "detail_tweaker", "Add_Detail"], ["easynegative"], ["anime_hn"])
    qtbot.keyClicks(editor.text_edit, "a cat <lora:")
    popup = editor.completer.popup()
    assert popup.isVisible()
    offered = [editor.completer.completionModel().index(row, 0).data() for row in range(editor.completer.completionCount())]
    assert offered == ["Add_Detail", "cute_style", "detail_tweaker"]
    qtbot.keyClicks(editor.text_edit, "tweak")  # part of a name narrows the list
    assert editor.completer.completionCount() == 1
    qtbot.keyClick(popup, Qt.Key.Key_Return)
    assert editor.text() == "a cat <lora:detail_tweaker:1>"
    editor.text_edit.undo()
    assert editor.text() == "a cat <lora:tweak"  # the completion was one undo step


def test_completer_offers_hypernetworks_and_embeddings(editor: PromptEditor, qtbot):
    editor.set_completion_names(["cute_style"], ["easynegative", "bad-hands-5"], ["anime_hn"])
    qtbot.keyClicks(editor.text_edit, "<hypernet:")
    assert editor.completer.currentCompletion() == "anime_hn"
    editor.completer.popup().hide()
    editor.set_text("")
    qtbot.keyClicks(editor.text_edit, "photo, Eas")
    assert editor.completer.popup().isVisible()
    assert editor.completer.currentCompletion() == "easynegative"
    qtbot.keyClick(editor.completer.popup(), Qt.Key.Key_Return)
    assert editor.text() == "photo, easynegative"


def test_no_popup_for_ordinary_words(editor: PromptEditor, qtbot):
    editor.set_completion_names(["cute_style"], ["easynegative"], [])
    qtbot.keyClicks(editor.text_edit, "a cat e")
    assert not editor.completer.popup().isVisible()


# --- the rest ---


def test_text_changed_signal_carries_the_text(editor: PromptEditor, qtbot):
    with qtbot.waitSignal(editor.text_changed, timeout=1000) as changed:
        qtbot.keyClicks(editor.text_edit, "x")
    assert changed.args == ["x"]


def test_placeholder_and_undoable_set_text(editor: PromptEditor):
    assert editor.text_edit.placeholderText() == "Prompt"
    editor.set_text("a cat")
    editor.set_text("a cat, in a hat", undoable=True)
    editor.text_edit.undo()
    assert editor.text() == "a cat"


def test_the_editor_module_does_not_import_torch():
    code = textwrap.dedent(
        """
        import sys
        import desktop.ui.prompt_editor
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers", "diffusers")
                     or m.startswith("desktop.engine")))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_screenshot_of_a_colourful_prompt(qtbot):
    """Light above, dark below: saved for a human to look at (tests/artifacts/prompt_editor.png)."""
    window = QWidget()
    qtbot.addWidget(window)
    layout = QVBoxLayout(window)
    dark = QPalette(window.palette())
    for role, value in ((QPalette.ColorRole.Base, "#1e1e1e"), (QPalette.ColorRole.Text, "#e8e8e8"),
                        (QPalette.ColorRole.Window, "#2b2b2b"), (QPalette.ColorRole.WindowText, "#e8e8e8")):
        dark.setColor(role, QColor(value))
    light = QPalette(window.palette())
    for role, value in ((QPalette.ColorRole.Base, "#ffffff"), (QPalette.ColorRole.Text, "#1d1d1f"),
                        (QPalette.ColorRole.Window, "#ececec"), (QPalette.ColorRole.WindowText, "#1d1d1f")):
        light.setColor(role, QColor(value))
    for palette in (light, dark):
        editor = PromptEditor(count_tokens=lambda text: (58, 75), debounce_ms=0)
        editor.setPalette(palette)
        editor.text_edit.setPalette(palette)
        editor.set_completion_names(["cute_style"], ["easynegative"], [])
        editor.set_text(COLOURFUL_PROMPT)
        font = editor.text_edit.font()
        font.setPointSize(12)
        editor.text_edit.setFont(font)
        layout.addWidget(editor)
        with qtbot.waitSignal(editor.token_count_changed, timeout=3000):
            pass
    window.resize(820, 300)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "prompt_editor.png"
    assert window.grab().save(str(path))
    assert path.stat().st_size > 10_000
