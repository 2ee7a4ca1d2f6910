"""The interface language: English, Simplified Chinese, or both side by side, switched while running.

Qt looks every text up through the translators installed on the application; installing or
removing one sends ``LanguageChange`` to every widget, and each re-reads its texts. Ours are
children of the application object, found again by object name, so switching keeps no state here.

Bilingual mode is what Chinese A1111 users get from the "bilingual localization" extension: the
Chinese text with the English original beside it, because tutorials, civitai and error searches
are in English. Labels read "采样方法 Sampler"; tooltips and sentences put the English on a line
of its own. Model names, prompts and infotext keys never go through ``tr()``, so they never change.

Numbers, dates and file sizes follow the language too (``format_size``, ``format_datetime``).
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import datetime
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QDateTime, QLibraryInfo, QLocale, Qt, QTranslator

__all__ = [
    "BILINGUAL_ONE_LINE",
    "BILINGUAL_TWO_LINES",
    "BilingualTranslator",
    "apply_language",
    "bilingual_text",
    "format_datetime",
    "format_number",
    "format_size",
    "installed_language",
    "resolve_language",
    "translations_dir",
]

log = logging.getLogger(__name__)

CHINESE = "zh_CN"
ENGLISH = "en"
BILINGUAL = "bilingual"
SYSTEM = "system"

APP_CATALOGUE = "desktop"  # desktop_zh_CN.qm, compiled from i18n/desktop_zh_CN.ts
QT_CATALOGUE = "qtbase"  # Qt's own texts: standard buttons, file and message dialogs

# Disambiguation comments (the second argument of tr()) that choose the bilingual layout when the
# length rule below guesses wrong: a short tooltip still gets two lines, a long combo item one.
BILINGUAL_TWO_LINES = "tooltip"
BILINGUAL_ONE_LINE = "label"
# From this many words (outside brackets) on, a text is a sentence (tooltip, message), not a label.
SENTENCE_WORDS = 5
_BRACKETS = re.compile(r"\([^()]*\)")
_FILE_FILTER = re.compile(r"\(\*")
_NO_BREAK = "\u00a0"

_OBJECT_NAME = "desktop.i18n.{}"  # translators we installed, as children of the application
_LANGUAGE_PROPERTY = "desktop_language"  # the resolved language, on the application object


def resolve_language(choice: str, system: QLocale | None = None) -> str:
    """The language a setting means: "system" is Chinese on any Chinese system locale, else English.

    >>> resolve_language("system", QLocale("zh_TW")), resolve_language("system", QLocale("fr_FR"))
    ('zh_CN', 'en')
    >>> resolve_language("bilingual"), resolve_language("nonsense")
    ('bilingual', 'en')
    """
    if choice == SYSTEM:
        system = system if system is not None else QLocale.system()
        return CHINESE if system.language() == QLocale.Language.Chinese else ENGLISH
    return choice if choice in (CHINESE, BILINGUAL) else ENGLISH


def translations_dir() -> Path:
    """Where the compiled ``.qm`` files are: inside the app bundle, or the source tree's build folder.

    ``scripts/translations.py compile`` (run by ``test.sh`` and ``build_app.py``) fills it; when it
    is missing the app runs in English and says why.
    """
    if getattr(sys, "frozen", False):
        bundle = Path(getattr(sys, "_MEIPASS", Path(sys.executable).resolve().parent))
        return bundle / "i18n"
    return Path(__file__).resolve().parents[2] / "i18n" / "build"


def apply_language(app: QCoreApplication, choice: str, qm_dir: Path) -> list[str]:
    """Install the translators for ``choice`` (a ``settings.LANGUAGE`` value) in place of ours.

    Every window updates at once (Qt posts ``LanguageChange``). Returns warnings for the user, in
    the language that is now showing: a missing or unreadable ``.qm`` leaves the app in English.
    """
    language = resolve_language(choice)
    _remove_translators(app)
    warnings: list[str] = []
    if language != ENGLISH:
        chinese = QTranslator()
        app_file = Path(qm_dir) / f"{APP_CATALOGUE}_{CHINESE}.qm"
        if chinese.load(str(app_file)):
            qt_texts = _load_qt_translations(Path(qm_dir))
            if qt_texts is not None:
                _install(app, qt_texts, QT_CATALOGUE)
            _install(app, BilingualTranslator(chinese) if language == BILINGUAL else chinese, APP_CATALOGUE)
            if qt_texts is None:  # said in Chinese: ours is installed by now
                warnings.append(
                    QCoreApplication.translate(
                        "Language", "Qt's Chinese texts ({file}) were not found; standard buttons stay in English."
                    ).replace("{file}", f"{QT_CATALOGUE}_{CHINESE}.qm")
                )
        else:
            language = ENGLISH
            warnings.append(
                QCoreApplication.translate(
                    "Language", "The Chinese translation could not be loaded ({file}); the interface stays in English."
                ).replace("{file}", str(app_file))
            )
    app.setProperty(_LANGUAGE_PROPERTY, language)
    QLocale.setDefault(_locale_for(language, choice))
    for warning in warnings:
        log.warning("%s", warning)
    return warnings


def installed_language(app: QCoreApplication) -> str:
    """The language ``apply_language`` last installed: "en", "zh_CN" or "bilingual"."""
    value = app.property(_LANGUAGE_PROPERTY)
    return value if isinstance(value, str) and value else ENGLISH


class BilingualTranslator(QTranslator):
    """Wraps the Chinese translator: each text it knows becomes Chinese plus the English original."""

    def __init__(self, chinese: QTranslator) -> None:
        super().__init__()
        self._chinese = chinese
        chinese.setParent(self)  # lives and dies with the wrapper

    def translate(self, context: str, source_text: str, disambiguation: str | None = None, n: int = -1) -> str | None:
        chinese = self._chinese.translate(context, source_text, disambiguation, n)
        # None (a null QString) means "not mine": Qt asks the next translator, then shows the
        # source. An empty string would be taken as the translation and blank the text.
        return bilingual_text(chinese, source_text, disambiguation) if chinese else None

    def isEmpty(self) -> bool:  # noqa: N802 - Qt's name
        return self._chinese.isEmpty()

    def language(self) -> str:
        return CHINESE


def bilingual_text(chinese: str, english: str, disambiguation: str | None = None) -> str:
    """Chinese and English in one text: "中文 English" for labels, the English below for sentences.

    The English loses its mnemonic (the Chinese keeps "(&F)"), a menu's tab-separated shortcut
    stays at the end, placeholders such as ``{count}`` appear in both halves (both get replaced),
    and a text that is the same in both languages is shown once. Inside a one-line text each
    half's spaces are no-break spaces, so a wrapping label puts the English on its own line.

    >>> bilingual_text("采样方法", "Sampler")
    '采样方法 Sampler'
    >>> bilingual_text("文件(&F)", "&File")
    '文件(&F) File'
    >>> bilingual_text("交换宽高", "Swap width and height", "tooltip")
    '交换宽高\\nSwap width and height'
    >>> bilingual_text("已安装 {name}", "Installed {name}").replace("\\u00a0", "_")
    '已安装_{name} Installed_{name}'
    >>> bilingual_text("模型 (*.safetensors *.ckpt)", "Models (*.safetensors *.ckpt)")
    '模型 (*.safetensors *.ckpt) Models (*.safetensors *.ckpt)'
    >>> bilingual_text("请先选择模型。", "Choose a checkpoint first.")
    '请先选择模型。\\nChoose a checkpoint first.'
    >>> bilingual_text("VAE", "VAE")
    'VAE'
    """
    if chinese == english:
        return chinese
    chinese_text, tab, shortcut = chinese.partition("\t")
    english_text = _without_mnemonic(english.partition("\t")[0])
    if "\n\n" in english_text or "\n\n" in chinese_text:
        separator = "\n\n"  # paragraphs: all the Chinese, then all the English
    elif _is_sentence(english_text, disambiguation):
        separator = "\n"
    else:
        separator = " "
        if not _FILE_FILTER.search(english_text):
            # A label that has to wrap breaks between the languages, never inside one of them.
            chinese_text, english_text = chinese_text.replace(" ", _NO_BREAK), english_text.replace(" ", _NO_BREAK)
    return f"{chinese_text}{separator}{english_text}{tab}{shortcut}"


def _is_sentence(english: str, disambiguation: str | None) -> bool:
    """Tooltips and messages get two lines; labels, menu items, combo items and file filters one.

    >>> _is_sentence("Automatic (Apple GPU when available)", None), _is_sentence("Move up", "tooltip")
    (False, True)
    >>> _is_sentence("How strongly the image follows the prompt", None), _is_sentence("Choose one first.", None)
    (True, True)
    """
    if disambiguation in (BILINGUAL_ONE_LINE, BILINGUAL_TWO_LINES):
        return disambiguation == BILINGUAL_TWO_LINES
    if "\n" in english:
        return True
    if _FILE_FILTER.search(english):
        return False  # "Models (*.safetensors)": a file dialog reads the patterns off one line
    if english.rstrip().endswith((".", "?", "!")):
        return True
    # "Automatic (Apple GPU when available)" is still a label: count the words outside brackets.
    return len(_BRACKETS.sub(" ", english).split()) >= SENTENCE_WORDS


# --- locale-aware formatting -------------------------------------------------------------------


def format_size(size: int, decimals: int = 2) -> str:
    """A file size as the language writes it, in the decimal units macOS Finder uses: "2.13 GB"."""
    return QLocale().formattedDataSize(size, decimals, QLocale.DataSizeFormat.DataSizeSIFormat)


def format_number(value: float, decimals: int = 0) -> str:
    """A number with the language's grouping and decimal separator: "1,234,567"."""
    if decimals == 0:
        return QLocale().toString(int(round(value)))
    return QLocale().toString(float(value), "f", decimals)


def format_datetime(moment: datetime | float) -> str:
    """A date and time in the language's short format; ``moment`` is a datetime or Unix seconds."""
    seconds = moment.timestamp() if isinstance(moment, datetime) else float(moment)
    return QLocale().toString(QDateTime.fromMSecsSinceEpoch(int(seconds * 1000)), QLocale.FormatType.ShortFormat)


# --- helpers -----------------------------------------------------------------------------------


def _install(app: QCoreApplication, translator: QTranslator, catalogue: str) -> None:
    translator.setObjectName(_OBJECT_NAME.format(catalogue))
    translator.setParent(app)  # the application keeps it alive; no module-level references
    app.installTranslator(translator)


def _remove_translators(app: QCoreApplication) -> None:
    prefix = _OBJECT_NAME.format("")
    for translator in app.findChildren(QTranslator, options=Qt.FindChildOption.FindDirectChildrenOnly):
        if translator.objectName().startswith(prefix):
            app.removeTranslator(translator)
            translator.setObjectName("")  # not found again before deleteLater runs
            translator.deleteLater()


def _load_qt_translations(qm_dir: Path) -> QTranslator | None:
    """``qtbase_zh_CN.qm``: the copy next to ours (the app bundle), else Qt's own installation."""
    name = f"{QT_CATALOGUE}_{CHINESE}"
    for folder in (qm_dir, Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath))):
        translator = QTranslator()
        if translator.load(name, str(folder)):
            return translator
    return None


def _locale_for(language: str, choice: str) -> QLocale:
    if choice == SYSTEM:
        return QLocale.system()
    if language == ENGLISH:
        return QLocale(QLocale.Language.English, QLocale.system().territory())
    return QLocale(QLocale.Language.Chinese, QLocale.Script.SimplifiedHanScript, QLocale.Country.China)


def _without_mnemonic(text: str) -> str:
    """The text without its mnemonic marker ("&File" reads "File"); a literal "&&" stays."""
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&&")
