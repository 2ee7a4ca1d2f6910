"""The prompt editor: A1111's prompt box as a native widget.

Syntax highlighting of the prompt language (:mod:`desktop.core.prompt_tokens`), A1111's "37/75"
token counter, Ctrl/Cmd+Up/Down to change a weight (:mod:`desktop.core.prompt_weight`), completion
of LoRA, hypernetwork and embedding names, and the text edit's own undo/redo.

Counting tokens needs the CLIP tokenizer, which is slow to load and lives below the UI, so the
editor takes a ``count_tokens(text) -> (used, limit)`` callable and runs it on a thread pool,
300 ms after the last keystroke, keeping only the answer for the latest text.

Qt positions are UTF-16 code units and Python's are code points; they differ after an emoji, so
every position crossing between the two is converted here.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import os
import re
from collections.abc import Callable, Iterable

from PySide6.QtCore import QEvent, QObject, QRunnable, QStringListModel, Qt, QThreadPool, QTimer, Signal, Slot
from PySide6.QtGui import (
    QColor,
    QFont,
    QKeyEvent,
    QPalette,
    QSyntaxHighlighter,
    QTextCharFormat,
    QTextCursor,
    QTextDocument,
)
from PySide6.QtWidgets import QCompleter, QGridLayout, QLabel, QPlainTextEdit, QWidget

from desktop.core.prompt_tokens import Span, SpanKind, highlight_spans
from desktop.core.prompt_weight import adjust_weight

__all__ = ["PromptEditor", "PromptHighlighter", "TokenCounter"]

log = logging.getLogger(__name__)

TokenCounter = Callable[[str], tuple[int, int]]

DEBOUNCE_MS = 300
# A1111 inserts a network at its default multiplier (extra_networks_default_multiplier, 1.0).
NETWORK_COMPLETION_SUFFIX = ":1>"
# Free text asks for embedding names only once a word heads somewhere.
MIN_EMBEDDING_PREFIX = 2

_NETWORK_PREFIX = re.compile(r"<(lora|lyco|hypernet):([^:<>]*)$")
_WORD_PREFIX = re.compile(r"[^\s,()\[\]{}<>:|\\]+$")


# --- highlighting -------------------------------------------------------------------------------

# Hue (degrees) of each kind; the lightness is chosen against the palette's base colour.
_HUES: dict[SpanKind, int] = {
    SpanKind.EMPHASIS: 28,
    SpanKind.WEIGHT_UP: 18,
    SpanKind.DEEMPHASIS: 215,
    SpanKind.WEIGHT_DOWN: 205,
    SpanKind.SCHEDULE: 275,
    SpanKind.SCHEDULE_STEP: 275,
    SpanKind.ALTERNATION: 180,
    SpanKind.AND: 320,
    SpanKind.AND_WEIGHT: 320,
    SpanKind.BREAK: 320,
    SpanKind.NETWORK: 125,
    SpanKind.NETWORK_NAME: 125,
    SpanKind.EMBEDDING: 45,
    SpanKind.ERROR: 0,
}
_BOLD = frozenset({SpanKind.WEIGHT_UP, SpanKind.WEIGHT_DOWN, SpanKind.SCHEDULE_STEP, SpanKind.AND, SpanKind.BREAK,
                   SpanKind.NETWORK_NAME, SpanKind.EMBEDDING, SpanKind.ERROR})
MIN_CONTRAST = 4.5  # WCAG AA for normal text


def span_formats(palette: QPalette) -> dict[SpanKind, QTextCharFormat]:
    """A text format per kind, readable on ``palette``'s base colour, light or dark."""
    base = palette.color(QPalette.ColorRole.Base)
    text = palette.color(QPalette.ColorRole.Text)
    formats: dict[SpanKind, QTextCharFormat] = {}
    for kind in SpanKind:
        fmt = QTextCharFormat()
        hue = _HUES.get(kind)
        if hue is not None:
            fmt.setForeground(readable_colour(hue, base))
        if kind in _BOLD:
            fmt.setFontWeight(QFont.Weight.Bold)
        formats[kind] = fmt
    # Weight exactly 1 and escapes are syntax without effect: quieter than the text (an opaque
    # mix: a translucent foreground loses thin glyphs such as "(" on dark backgrounds).
    quiet = _tint(text, base, 0.6)
    formats[SpanKind.WEIGHT_NEUTRAL].setForeground(quiet)
    formats[SpanKind.ESCAPE].setForeground(quiet)
    formats[SpanKind.EMBEDDING].setFontItalic(True)
    formats[SpanKind.BREAK].setBackground(_tint(readable_colour(320, base), base, 0.15))
    error = formats[SpanKind.ERROR]
    error.setUnderlineStyle(QTextCharFormat.UnderlineStyle.WaveUnderline)
    error.setUnderlineColor(readable_colour(0, base))
    error.setBackground(_tint(readable_colour(0, base), base, 0.15))
    return formats


def readable_colour(hue: int, base: QColor, saturation: float = 0.8) -> QColor:
    """The colour of ``hue`` nearest to mid-lightness that still reads on ``base`` (WCAG AA)."""
    dark_base = base.lightnessF() < 0.5
    lightness = 0.6 if dark_base else 0.45
    step = 0.02 if dark_base else -0.02
    colour = QColor.fromHslF(hue / 360, saturation, lightness)
    while contrast_ratio(colour, base) < MIN_CONTRAST and 0.0 < lightness + step < 1.0:
        lightness += step
        colour = QColor.fromHslF(hue / 360, saturation, lightness)
    return colour


def contrast_ratio(first: QColor, second: QColor) -> float:
    """WCAG 2 contrast ratio of two opaque colours (1 to 21)."""
    lighter, darker = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _luminance(colour: QColor) -> float:
    def channel(value: float) -> float:
        return value / 12.92 if value <= 0.03928 else ((value + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(colour.redF()) + 0.7152 * channel(colour.greenF()) + 0.0722 * channel(colour.blueF())


def _tint(colour: QColor, base: QColor, amount: float) -> QColor:
    return QColor.fromRgbF(
        base.redF() + (colour.redF() - base.redF()) * amount,
        base.greenF() + (colour.greenF() - base.greenF()) * amount,
        base.blueF() + (colour.blueF() - base.blueF()) * amount,
    )


class PromptHighlighter(QSyntaxHighlighter):
    """Applies :func:`highlight_spans` of the whole document to each block.

    Brackets pair across lines, so a keystroke in one line can change another's colours: spans
    are computed once per text, each block's state is a fingerprint of its spans (Qt then
    re-highlights following blocks whose fingerprint changed by itself), and earlier blocks are
    checked once the event loop is back.
    """

    def __init__(self, document: QTextDocument, palette: QPalette) -> None:
        super().__init__(document)
        self._formats = span_formats(palette)
        self._embeddings: frozenset[str] = frozenset()
        self._text: str | None = None
        # Spans of self._text in UTF-16 positions, same-kind neighbours merged, with their ends
        # kept apart for bisecting.
        self._spans: list[tuple[int, int, SpanKind]] = []
        self._ends: list[int] = []
        self._check_scheduled = False

    def set_palette(self, palette: QPalette) -> None:
        self._formats = span_formats(palette)
        self.rehighlight()

    def set_embeddings(self, names: Iterable[str]) -> None:
        names = frozenset(names)
        if names != self._embeddings:
            self._embeddings = names
            self._text = None
            self.rehighlight()

    def format_for(self, kind: SpanKind) -> QTextCharFormat:
        return QTextCharFormat(self._formats[kind])

    def highlightBlock(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._update_spans()
        block = self.currentBlock()
        start, end = block.position(), block.position() + block.length()
        signature = []
        for span_start, span_end, kind in self._block_spans(start, end):
            self.setFormat(span_start - start, span_end - span_start, self._formats[kind])
            signature.append((span_start - start, span_end - span_start, kind.value))
        self.setCurrentBlockState(_fingerprint(signature))

    def _block_spans(self, start: int, end: int) -> Iterable[tuple[int, int, SpanKind]]:
        index = bisect.bisect_right(self._ends, start)
        while index < len(self._spans) and self._spans[index][0] < end:
            span_start, span_end, kind = self._spans[index]
            yield max(span_start, start), min(span_end, end), kind
            index += 1

    def _update_spans(self) -> None:
        text = self.document().toPlainText()
        if text == self._text:
            return
        self._text = text
        self._spans = _merged(_to_utf16_spans(text, highlight_spans(text, embeddings=self._embeddings)))
        self._ends = [end for _, end, _ in self._spans]
        if not self._check_scheduled and self.document().blockCount() > 1:
            self._check_scheduled = True
            QTimer.singleShot(0, self._rehighlight_stale_blocks)

    @Slot()
    def _rehighlight_stale_blocks(self) -> None:
        self._check_scheduled = False
        self._update_spans()
        block = self.document().firstBlock()
        while block.isValid():
            start, end = block.position(), block.position() + block.length()
            signature = [(s - start, e - s, kind.value) for s, e, kind in self._block_spans(start, end)]
            if block.userState() != _fingerprint(signature):
                self.rehighlightBlock(block)
            block = block.next()


def _fingerprint(signature: list[tuple[int, int, str]]) -> int:
    return hash(tuple(signature)) & 0x3FFFFFFF  # a non-negative C int; -1 is Qt's "no state"


def _to_utf16_spans(text: str, spans: list[Span]) -> list[tuple[int, int, SpanKind]]:
    if text.isascii() or len(text.encode("utf-16-le")) == 2 * len(text):
        return [(span.start, span.end, span.kind) for span in spans]
    offsets = list(itertools.accumulate((2 if ord(char) > 0xFFFF else 1 for char in text), initial=0))
    return [(offsets[span.start], offsets[span.end], span.kind) for span in spans]


def _merged(spans: list[tuple[int, int, SpanKind]]) -> list[tuple[int, int, SpanKind]]:
    """Neighbouring spans of one kind as one: "((((" costs one format change, not four."""
    merged: list[tuple[int, int, SpanKind]] = []
    for start, end, kind in spans:
        if merged and merged[-1][1] == start and merged[-1][2] == kind:
            merged[-1] = (merged[-1][0], end, kind)
        else:
            merged.append((start, end, kind))
    return merged


# --- UTF-16 positions ----------------------------------------------------------------------------


def _utf16_position(text: str, index: int) -> int:
    return len(text[:index].encode("utf-16-le")) // 2


def _python_index(text: str, position: int) -> int:
    return len(text.encode("utf-16-le")[: 2 * position].decode("utf-16-le", errors="ignore"))


# --- token counting off the GUI thread -----------------------------------------------------------


class _CountSignals(QObject):
    # request number, used, limit; used is -1 when there is no answer (skipped as stale, or failed)
    counted = Signal(int, int, int)


class _LatestRequest:
    """The number of the latest count request, shared with the jobs so they need no editor reference."""

    def __init__(self) -> None:
        self.number = 0


class _CountJob(QRunnable):
    """Counts one text on a pool thread; skipped if a newer text is waiting by the time it starts."""

    def __init__(self, count_tokens: TokenCounter, text: str, number: int, latest: _LatestRequest) -> None:
        super().__init__()
        self._count_tokens = count_tokens
        self._text = text
        self._number = number
        self._latest = latest
        # Created on the GUI thread and connected there: delivery to the editor is queued.
        self.signals = _CountSignals()

    def run(self) -> None:
        used = limit = -1
        if self._number == self._latest.number:
            try:
                used, limit = self._count_tokens(self._text)
            except Exception:  # the counter is injected code: report it, keep the editor alive
                log.exception("counting prompt tokens failed")
        self.signals.counted.emit(self._number, int(used), int(limit))


# --- the widget ----------------------------------------------------------------------------------


class _PromptTextEdit(QPlainTextEdit):
    """The text box: routes Ctrl/Cmd+Up/Down and the completer's keys, keeps the counter in its corner.

    It calls its editor back directly: plain callbacks are all a private child needs.
    """

    def __init__(self, corner: QLabel, on_weight_key: Callable[[bool], None], on_typed: Callable[[], None]) -> None:
        super().__init__()
        self.corner = corner
        self.completer: QCompleter | None = None
        self._on_weight_key = on_weight_key  # True: up
        self._on_typed = on_typed

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        popup = self.completer.popup() if self.completer is not None else None
        if popup is not None and popup.isVisible() and event.key() in (
            Qt.Key.Key_Enter, Qt.Key.Key_Return, Qt.Key.Key_Escape, Qt.Key.Key_Tab, Qt.Key.Key_Backtab
        ):
            event.ignore()  # the completer takes these
            return
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down) and _is_weight_modifier(event.modifiers()):
            # Qt reports macOS's Command as Control; A1111 accepts Ctrl or Meta (Cmd) as well.
            self._on_weight_key(event.key() == Qt.Key.Key_Up)
            event.accept()
            return
        super().keyPressEvent(event)
        if event.text():
            self._on_typed()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self.place_corner()

    def place_corner(self) -> None:
        """Top right of the text area, clear of a scroll bar."""
        self.corner.adjustSize()
        viewport = self.viewport().geometry()
        self.corner.move(viewport.right() - self.corner.width() - 3, viewport.top() + 3)


def _is_weight_modifier(modifiers: Qt.KeyboardModifier) -> bool:
    command = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.MetaModifier
    other = Qt.KeyboardModifier.ShiftModifier | Qt.KeyboardModifier.AltModifier
    return bool(modifiers & command) and not modifiers & other


class PromptEditor(QWidget):
    """A prompt box that knows A1111's prompt language.

    ``count_tokens(text) -> (used, limit)`` may be slow (it may load a tokenizer) and is called on
    ``thread_pool`` (Qt's global pool by default), so it must be thread-safe; without one the
    counter stays empty.
    """

    text_changed = Signal(str)
    token_count_changed = Signal(int, int)  # used, limit: each fresh count shown

    def __init__(
        self,
        parent: QWidget | None = None,
        *,
        count_tokens: TokenCounter | None = None,
        placeholder: str | None = None,
        debounce_ms: int = DEBOUNCE_MS,
        thread_pool: QThreadPool | None = None,
    ) -> None:
        super().__init__(parent)
        self._count_tokens = count_tokens
        self._thread_pool = thread_pool or QThreadPool.globalInstance()
        self._latest_count = _LatestRequest()  # answers for older texts are dropped
        # Each job's signals, kept until its answer arrives so they are deleted on this thread.
        self._pending_counts: dict[int, _CountSignals] = {}
        self._loras: list[str] = []
        self._embeddings: list[str] = []
        self._hypernetworks: list[str] = []
        self._completion_start = 0  # UTF-16 position where the word being completed starts
        self._completing_network = False

        self.token_label = QLabel()
        self.token_label.setObjectName("token_counter")
        self.token_label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.token_label.setContentsMargins(5, 1, 5, 1)
        self.token_label.hide()

        self.text_edit = _PromptTextEdit(self.token_label, self.adjust_weight, self._update_completion)
        self.token_label.setParent(self.text_edit)
        self.text_edit.setTabChangesFocus(True)  # Tab moves on, as in a form
        self._own_placeholder = placeholder is None  # ours follows the language; a caller's is the caller's
        self.text_edit.setPlaceholderText(placeholder if placeholder is not None else self.tr("Prompt"))
        self.highlighter = PromptHighlighter(self.text_edit.document(), self.text_edit.palette())

        self._completion_model = QStringListModel(self)
        self.completer = QCompleter(self._completion_model, self)
        self.completer.setWidget(self.text_edit)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setCompletionMode(QCompleter.CompletionMode.PopupCompletion)
        self.completer.activated[str].connect(self._insert_completion)
        self.text_edit.completer = self.completer

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self._count_now)

        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.text_edit, 0, 0)

        self.text_edit.textChanged.connect(self._on_text_change)
        self._style_token_label()
        self.setFocusProxy(self.text_edit)

    # --- public API ---

    def text(self) -> str:
        return self.text_edit.toPlainText()

    def set_text(self, text: str, *, undoable: bool = False) -> None:
        """Replace the text; ``undoable`` makes it one undo step instead of a fresh start (loading a prompt)."""
        if not undoable:
            self.text_edit.setPlainText(text)
            return
        cursor = QTextCursor(self.text_edit.document())
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text)
        cursor.endEditBlock()
        self.text_edit.setTextCursor(cursor)

    def set_placeholder_text(self, text: str) -> None:
        self._own_placeholder = False
        self.text_edit.setPlaceholderText(text)

    def set_token_counter(self, count_tokens: TokenCounter | None) -> None:
        self._count_tokens = count_tokens
        self._latest_count.number += 1  # whatever is in flight belongs to the old counter
        if count_tokens is None:
            self.token_label.hide()
        else:
            self._count_now()

    def set_completion_names(self, loras: Iterable[str], embeddings: Iterable[str], hypernetworks: Iterable[str]) -> None:
        """Names offered after ``<lora:`` (and ``<lyco:``), after ``<hypernet:``, and for words (embeddings)."""
        self._loras = sorted(set(loras), key=str.lower)
        self._embeddings = sorted(set(embeddings), key=str.lower)
        self._hypernetworks = sorted(set(hypernetworks), key=str.lower)
        self.highlighter.set_embeddings(self._embeddings)

    @Slot(bool)
    def adjust_weight(self, increase: bool) -> None:
        """A1111's Ctrl/Cmd+Up/Down on the selection, or the group or word at the cursor: one undo step."""
        cursor = self.text_edit.textCursor()
        old = self.text()
        start = _python_index(old, cursor.selectionStart())
        end = _python_index(old, cursor.selectionEnd())
        new, new_start, new_end = adjust_weight(old, start, end, increase=increase)
        if new != old:
            prefix, old_end, new_changed_end = _changed_range(old, new)
            edit = QTextCursor(self.text_edit.document())
            edit.beginEditBlock()
            edit.setPosition(_utf16_position(old, prefix))
            edit.setPosition(_utf16_position(old, old_end), QTextCursor.MoveMode.KeepAnchor)
            edit.insertText(new[prefix:new_changed_end])
            edit.endEditBlock()
        selection = QTextCursor(self.text_edit.document())
        selection.setPosition(_utf16_position(new, new_start))
        selection.setPosition(_utf16_position(new, new_end), QTextCursor.MoveMode.KeepAnchor)
        self.text_edit.setTextCursor(selection)

    # --- events ---

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 - Qt's name
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange, QEvent.Type.StyleChange):
            # Light/dark switch: colours are derived from the palette, so derive them again.
            self.highlighter.set_palette(self.text_edit.palette())
            self._style_token_label()
        elif event.type() == QEvent.Type.LanguageChange:
            self._retranslate()

    def _retranslate(self) -> None:
        if self._own_placeholder:
            self.text_edit.setPlaceholderText(self.tr("Prompt"))
        self.token_label.setToolTip(self._token_tooltip())

    def _token_tooltip(self) -> str:
        return self.tr("Tokens used, of what the prompt's 75-token chunks hold")

    def _style_token_label(self) -> None:
        palette = self.text_edit.palette()
        base = palette.color(QPalette.ColorRole.Base)
        text = palette.color(QPalette.ColorRole.Text)
        backdrop = _tint(text, base, 0.08)
        self.token_label.setStyleSheet(
            f"QLabel#token_counter {{ color: {_tint(text, base, 0.7).name()}; background: {backdrop.name()};"
            " border-radius: 4px; font-size: 11px; }"
        )

    @Slot()
    def _on_text_change(self) -> None:
        self.text_changed.emit(self.text())
        if self._count_tokens is not None:
            self._debounce.start()

    # --- token counting ---

    @Slot()
    def _count_now(self) -> None:
        if self._count_tokens is None:
            return
        self._latest_count.number += 1
        job = _CountJob(self._count_tokens, self.text(), self._latest_count.number, self._latest_count)
        job.signals.counted.connect(self._on_counted)
        self._pending_counts[self._latest_count.number] = job.signals
        self._thread_pool.start(job)

    @Slot(int, int, int)
    def _on_counted(self, number: int, used: int, limit: int) -> None:
        self._pending_counts.pop(number, None)
        if number != self._latest_count.number:
            return  # an answer for a text that has changed since
        if used < 0:
            self.token_label.hide()
            return
        self.token_label.setText(f"{used}/{limit}")  # numbers only: the same in every language
        self.token_label.setToolTip(self._token_tooltip())
        self.token_label.show()
        self.text_edit.place_corner()
        self.token_count_changed.emit(used, limit)

    # --- completion ---

    @Slot()
    def _update_completion(self) -> None:
        cursor = self.text_edit.textCursor()
        block_text = cursor.block().text()
        before = block_text[: _python_index(block_text, cursor.positionInBlock())]
        network = _NETWORK_PREFIX.search(before)
        if network is not None:
            names = self._hypernetworks if network.group(1) == "hypernet" else self._loras
            prefix, contains = network.group(2), True
        else:
            word = _WORD_PREFIX.search(before)
            prefix = word.group() if word is not None else ""
            names, contains = self._embeddings, False
            if len(prefix) < MIN_EMBEDDING_PREFIX:
                names = []
        if not names:
            self.completer.popup().hide()
            return
        self._completing_network = network is not None
        self._completion_start = cursor.position() - _utf16_position(prefix, len(prefix))
        self._completion_model.setStringList(names)
        self.completer.setFilterMode(Qt.MatchFlag.MatchContains if contains else Qt.MatchFlag.MatchStartsWith)
        self.completer.setCompletionPrefix(prefix)
        only_exact = self.completer.completionCount() == 1 and self.completer.currentCompletion().lower() == prefix.lower()
        if self.completer.completionCount() == 0 or (only_exact and not self._completing_network):
            self.completer.popup().hide()
            return
        popup = self.completer.popup()
        popup.setCurrentIndex(self.completer.completionModel().index(0, 0))
        rect = self.text_edit.cursorRect()
        rect.setWidth(popup.sizeHintForColumn(0) + popup.verticalScrollBar().sizeHint().width() + 8)
        self.completer.complete(rect)

    @Slot(str)
    def _insert_completion(self, name: str) -> None:
        cursor = self.text_edit.textCursor()
        text = self.text()
        after = text[_python_index(text, cursor.position()) :][:1]
        insertion = name
        if self._completing_network and after not in (":", ">"):
            insertion += NETWORK_COMPLETION_SUFFIX
        cursor.beginEditBlock()
        cursor.setPosition(self._completion_start, QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(insertion)
        cursor.endEditBlock()
        self.text_edit.setTextCursor(cursor)
        self.completer.popup().hide()


def _changed_range(old: str, new: str) -> tuple[int, int, int]:
    """``(start, old_end, new_end)``: the one stretch where ``old`` and ``new`` differ."""
    start = len(os.path.commonprefix([old, new]))
    suffix = len(os.path.commonprefix([old[start:][::-1], new[start:][::-1]]))
    return start, len(old) - suffix, len(new) - suffix
