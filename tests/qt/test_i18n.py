"""Issue 10: English, 简体中文 and a bilingual interface, switched while the app runs (BAD_INPUTS 39).

The .qm files are compiled from the .ts in the tree into a temporary folder, so these tests never
read a stale build. Every test leaves the app in English for the tests that run after it.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from PySide6.QtCore import QCoreApplication, QLocale
from PySide6.QtWidgets import QApplication, QCheckBox, QLabel, QMessageBox, QPushButton, QScrollArea, QWidget

from desktop.core import settings as keys
from desktop.core.sampling_names import SAMPLER_NAMES, SCHEDULE_NAMES
from desktop.ui.i18n import apply_language, format_datetime, format_number, format_size, installed_language
from desktop.ui.preferences import PreferencesDialog
from desktop.ui.settings_store import SettingsStore
from tests.qt.test_main_window import close_window, open_window, paths  # noqa: F401 - paths is the window's fixture

ROOT = Path(__file__).resolve().parents[2]
TS_FILE = ROOT / "i18n" / "desktop_zh_CN.ts"
ARTIFACTS = ROOT / "tests" / "artifacts"
# Words that are data or names in every language: a translation must keep them as they are.
KEPT_WORDS = ("LoRA", "VAE", "A1111", "ComfyUI", "civitai", "TAESD", "CLIP", "SHA-256", "AutoV2", "safetensors", "fp16", "fp32", "⌘")
PLACEHOLDER = re.compile(r"\{[a-z_]+\}|%n|%\d")


def translations_script():
    """scripts/translations.py as a module (scripts/ is not a package)."""
    name = "diffusion_desktop_translations_script"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "translations.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # its dataclasses look their module up while being defined
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.fixture(scope="module")
def qm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("qm")
    translations_script().compile_translations(folder, force=True)
    return folder


@pytest.fixture
def switch(qapp, qm_dir: Path):
    """``switch(choice)`` installs a language as Preferences does and delivers the LanguageChange events."""
    locale = QLocale()

    def apply(choice: str, folder: Path | None = None) -> list[str]:
        warnings = apply_language(qapp, choice, qm_dir if folder is None else folder)
        for _ in range(2):  # Qt posts LanguageChange to each window, which passes it on to its children
            QApplication.processEvents()
        return warnings

    yield apply
    apply("en")
    QLocale.setDefault(locale)


# --- the catalogue ------------------------------------------------------------------------------


def test_every_text_has_a_finished_translation_and_none_is_obsolete():
    """The .ts parses, each entry is finished, nothing obsolete or vanished, every context a class."""
    script = translations_script()
    messages = script.read_messages(TS_FILE)
    assert len(messages) > 100
    assert script.problems(messages) == []


def test_translations_keep_placeholders_shortcuts_and_names():
    """{count}, %n, ⌘ shortcuts and names such as LoRA or VAE survive translation unchanged."""
    for message in translations_script().read_messages(TS_FILE):
        where = f"{message.context}: {message.source!r}"
        assert sorted(PLACEHOLDER.findall(message.source)) == sorted(PLACEHOLDER.findall(message.translation)), where
        for word in KEPT_WORDS:
            assert message.source.count(word) <= message.translation.count(word), f"{where} lost {word!r}"
        assert message.translation.count("\n") >= message.source.count("\n"), where


def test_the_ts_file_is_up_to_date_with_the_code():
    """lupdate in check mode would change nothing: no new, changed or vanished texts."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "translations.py"), "check"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr


def test_texts_lupdate_cannot_place_are_reported():
    """``tr = self.tr`` aliases give lupdate no class: such a text would never be found at run time."""
    script = translations_script()
    alias = script.Message("", "File", "", "文件", "finished")
    confused = script.Message("QCoreApplication.self", "Undo", "", "撤销", "finished")
    unfinished = script.Message("MainWindow", "Redo", "", "", "unfinished")
    obsolete = script.Message("MainWindow", "Old", "", "旧", "vanished")
    found = script.problems([alias, confused, unfinished, obsolete])
    assert len(found) == 4
    assert "could not tell its class" in found[0] and "could not tell its class" in found[1]
    assert "not translated" in found[2] and "vanished" in found[3]


# --- switching at run time ----------------------------------------------------------------------


def test_switching_updates_the_main_window_menus_tooltips_and_parameters_at_once(qtbot, paths, switch):  # noqa: F811
    """BAD_INPUTS 39: menus, dock titles, buttons, tooltips, form labels and queue rows all follow."""
    window = open_window(qtbot, paths)
    window.queue.set_paused(True)
    window.prompt.set_text("Generate")  # a prompt that happens to be a UI word stays the user's text
    window.generate()
    row = window.queue.index(0)
    assert "waiting" in window.queue.data(row)

    with qtbot.waitSignal(window.queue.dataChanged, timeout=2000):  # the queue view is told to repaint
        assert switch("zh_CN") == []
    assert installed_language(QCoreApplication.instance()) == "zh_CN"
    assert [action.text() for action in window.menuBar().actions()] == [
        "Diffusion Desktop", "文件", "编辑", "显示", "生成", "训练", "窗口", "帮助"
    ]
    assert window.windowTitle() == "Diffusion Desktop"  # a product name, the same in every language
    assert window.queue_dock.windowTitle() == "队列" and window.gallery_dock.windowTitle() == "图库"
    assert window.generate_button.text() == "生成" and window.forever_box.text() == "无限生成"
    assert window.cancel_button.toolTip() == "中止正在运行的任务 (⌘.)"
    assert window.preferences_action.text() == "设置…"
    labels = window.parameters._labels
    assert labels["sampler"].text() == "采样方法" and labels["steps"].text() == "迭代步数"
    assert labels["cfg"].text() == "提示词引导系数" and labels["seed"].text() == "随机种子"
    assert window.parameters.cfg_scale.toolTip() == "图像与提示词的贴合程度"
    assert "等待中" in window.queue.data(row) and "Euler a" in window.queue.data(row)

    # Data is never translated: sampler and schedule names, model names, the prompt.
    parameters = window.parameters
    assert [parameters.sampler.itemText(i) for i in range(parameters.sampler.count())] == list(SAMPLER_NAMES)
    assert [parameters.schedule.itemText(i) for i in range(parameters.schedule.count())] == list(SCHEDULE_NAMES)
    assert parameters.checkpoint.currentText() == "tiny-sd1"
    assert window.prompt.text() == "Generate"
    assert window.generate_action.shortcut().toString() == "Ctrl+Return"

    switch("en")
    assert window.file_menu.title() == "File" and labels["sampler"].text() == "Sampler"
    assert window.cancel_button.toolTip() == "Stop the running job (⌘.)"
    assert "waiting" in window.queue.data(row)
    close_window(window)


def test_an_open_preferences_dialog_switches_with_the_language_chosen_in_it(qtbot, paths, qm_dir, switch):  # noqa: F811
    """BAD_INPUTS 39: choosing a language in Preferences changes everything at once, the dialog
    included; Cancel goes back to the language it was opened with, OK keeps the new one."""
    window = open_window(qtbot, paths)
    dialog = PreferencesDialog(window.store, str(paths.default_output_dir), window, qm_dir=qm_dir)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.windowTitle() == "Preferences" and dialog.buttons.button(dialog.buttons.StandardButton.Cancel).text() == "Cancel"

    dialog.language.setCurrentIndex(dialog.language.findData("zh_CN"))
    QApplication.processEvents()
    QApplication.processEvents()
    assert dialog.isVisible()
    assert dialog.windowTitle() == "设置" and dialog._labels["language"].text() == "语言"
    assert dialog.device.itemText(0) == "自动（可用时使用 Apple GPU）" and dialog.device.itemText(3) == "CPU"
    assert dialog.language.itemText(dialog.language.findData("en")) == "English"  # names stay in their own language
    ok, cancel = (dialog.buttons.button(button) for button in (dialog.buttons.StandardButton.Ok, dialog.buttons.StandardButton.Cancel))
    assert (ok.text(), cancel.text()) == ("确定", "取消")  # Qt's own qtbase_zh_CN.qm
    assert window.file_menu.title() == "文件"  # the window behind it too
    assert dialog.language_warning.isHidden()

    dialog.reject()
    QApplication.processEvents()
    QApplication.processEvents()
    assert installed_language(QCoreApplication.instance()) == "en" and window.file_menu.title() == "File"
    assert window.store.get(keys.LANGUAGE) == "system"

    again = PreferencesDialog(window.store, str(paths.default_output_dir), window, qm_dir=qm_dir)
    qtbot.addWidget(again)
    again.language.setCurrentIndex(again.language.findData("bilingual"))
    again.accept()
    assert window.store.get(keys.LANGUAGE) == "bilingual" and SettingsStore(paths.settings_file).get(keys.LANGUAGE) == "bilingual"
    assert installed_language(QCoreApplication.instance()) == "bilingual"
    close_window(window)


def test_bilingual_mode_shows_chinese_with_the_english_original(qtbot, paths, switch):  # noqa: F811
    """Labels read "采样方法 Sampler"; tooltips and sentences put the English on a second line;
    placeholders still fill in; a text that is the same in both languages shows once."""
    window = open_window(qtbot, paths)
    switch("bilingual")
    parameters = window.parameters
    assert parameters._labels["sampler"].text() == "采样方法 Sampler"
    # no-break spaces inside each half: a label that wraps breaks between the languages
    assert parameters._labels["cfg"].text() == "提示词引导系数 CFG\u00a0scale"
    assert parameters._labels["size"].text() == "宽度\u00a0×\u00a0高度 Width\u00a0×\u00a0height"
    assert window.file_menu.title() == "文件 File" and window.generate_button.text() == "生成 Generate"
    assert parameters.random_seed_button.toolTip() == "随机种子 (-1)\nRandom seed (-1)"  # marked "tooltip"
    assert parameters.cfg_scale.toolTip() == "图像与提示词的贴合程度\nHow strongly the image follows the prompt"
    parameters.note_last_seed(1234)
    assert parameters.reuse_seed_button.toolTip() == "重用上一张图像的随机种子 (1234)\nReuse the seed of the last image (1234)"
    switch("zh_CN")
    assert parameters.reuse_seed_button.toolTip() == "重用上一张图像的随机种子 (1234)"  # the seed survives a switch
    switch("bilingual")
    assert window.windowTitle() == "Diffusion Desktop"  # identical in both: once
    assert parameters.sampler.currentText() in SAMPLER_NAMES
    assert window.generate_action.shortcut().toString() == "Ctrl+Return"
    box = QMessageBox(QMessageBox.Icon.Question, "", "", QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel)
    assert box.button(QMessageBox.StandardButton.Cancel).text() == "取消"  # Qt's buttons: Chinese only, as on a Chinese Mac
    close_window(window)


def test_qt_standard_buttons_are_chinese(qtbot, switch):
    """Qt's own qtbase_zh_CN.qm is installed with ours: message boxes and button boxes read 确定 / 取消."""
    switch("zh_CN")
    box = QMessageBox(QMessageBox.Icon.Warning, "", "", QMessageBox.StandardButton.Ok | QMessageBox.StandardButton.Cancel)
    qtbot.addWidget(box)
    assert box.button(QMessageBox.StandardButton.Ok).text() == "确定"
    assert box.button(QMessageBox.StandardButton.Cancel).text() == "取消"


@pytest.mark.parametrize("damage", ["missing", "garbage"])
def test_a_missing_or_damaged_qm_falls_back_to_english_with_a_warning(qtbot, paths, switch, tmp_path: Path, damage: str):  # noqa: F811
    """BAD_INPUTS 39: no usable desktop_zh_CN.qm -> the interface stays English and says why."""
    window = open_window(qtbot, paths)
    folder = tmp_path / "qm"
    folder.mkdir()
    if damage == "garbage":
        (folder / "desktop_zh_CN.qm").write_bytes(b"not a qm file at all" * 10)
    warnings = switch("zh_CN", folder)
    assert len(warnings) == 1 and "desktop_zh_CN.qm" in warnings[0] and "English" in warnings[0]
    assert installed_language(QCoreApplication.instance()) == "en"
    assert window.file_menu.title() == "File" and window.parameters._labels["sampler"].text() == "Sampler"
    box = QMessageBox(QMessageBox.Icon.Warning, "", "", QMessageBox.StandardButton.Cancel)
    assert box.button(QMessageBox.StandardButton.Cancel).text() == "Cancel"  # not half Chinese
    close_window(window)


def test_the_system_choice_follows_the_system_locale(switch):
    """"System" means Chinese on a zh_* system, else English (this test machine's locale decides)."""
    switch("system")
    expected = "zh_CN" if QLocale.system().language() == QLocale.Language.Chinese else "en"
    assert installed_language(QCoreApplication.instance()) == expected


def test_numbers_dates_and_sizes_follow_the_language(switch):
    moment = datetime(2024, 3, 5, 14, 7)
    switch("zh_CN")
    assert format_size(2_132_000_000) == "2.13 GB"
    assert format_number(1234567) == "1,234,567" and format_number(0.5, 2) == "0.50"
    chinese_date = format_datetime(moment)
    assert chinese_date.startswith("2024/3/5") and "14:07" in chinese_date
    assert format_datetime(moment.timestamp()) == chinese_date
    switch("en")
    assert format_datetime(moment) != chinese_date


# --- screenshots ----------------------------------------------------------------------------------


def clipped_texts(root: QWidget) -> list[str]:
    """Visible labels and buttons whose text does not fit the space the layout gave them, and panes
    that have to scroll sideways."""
    clipped = []
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisible() or widget.width() <= 0:
            continue
        if isinstance(widget, QLabel) and widget.text():
            if widget.wordWrap():
                fits = widget.height() >= widget.heightForWidth(widget.width())
            else:
                fits = widget.width() >= widget.minimumSizeHint().width()
        elif isinstance(widget, (QPushButton, QCheckBox)) and widget.text():
            fits = widget.width() >= widget.sizeHint().width() - 1
        elif isinstance(widget, QScrollArea):  # the parameters: wider than their pane once the labels grow
            if widget.horizontalScrollBar().isVisible():
                clipped.append(f"{widget.widget().objectName() or type(widget.widget()).__name__} scrolls sideways")
            continue
        else:
            continue
        if not fits:
            clipped.append(f"{type(widget).__name__} {widget.text()!r}: {widget.width()}x{widget.height()}")
    return clipped


def test_screenshots_in_english_chinese_and_bilingual_have_no_clipped_text(qtbot, paths, qm_dir, switch):  # noqa: F811
    """Saved to tests/artifacts/ for a person to look at; the test itself checks for squeezed texts."""
    ARTIFACTS.mkdir(exist_ok=True)
    window = open_window(qtbot, paths)
    window.resize(1280, 820)
    dialog = PreferencesDialog(window.store, str(paths.default_output_dir), window, qm_dir=qm_dir)
    qtbot.addWidget(dialog)
    problems = []
    for choice in ("en", "zh_CN", "bilingual"):
        switch(choice)
        qtbot.wait(50)  # layouts settle after the new texts
        assert window.grab().save(str(ARTIFACTS / f"main_window_{choice}.png"))
        problems += [f"{choice} window: {text}" for text in clipped_texts(window)]
        dialog.show()
        dialog.adjustSize()
        qtbot.wait(50)
        assert dialog.grab().save(str(ARTIFACTS / f"preferences_{choice}.png"))
        problems += [f"{choice} preferences: {text}" for text in clipped_texts(dialog)]
        dialog.hide()
    assert problems == []
    close_window(window)

