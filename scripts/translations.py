#!/usr/bin/env python3
"""The Qt Linguist workflow for the interface texts: extract, translate, check, compile.

    .venv/bin/python scripts/translations.py update          # sources -> i18n/desktop_zh_CN.ts
    .venv/bin/python scripts/translations.py todo > todo.json   # what still needs a translation
    .venv/bin/python scripts/translations.py fill todo.json  # write the translations in, finished
    .venv/bin/python scripts/translations.py check           # exit 1: .ts stale, unfinished or broken
    .venv/bin/python scripts/translations.py compile         # i18n/*.ts -> i18n/build/*.qm

``update`` runs ``lupdate`` over ``desktop/ui`` and ``desktop/app.py``, drops entries whose text
left the code (``-no-obsolete``) and writes no line numbers (``-locations none``), so moving code
does not churn the file. A new entry whose English text is already translated elsewhere in the
file is pre-filled with that translation but left unfinished, for a person to confirm. It refuses
to write anything when ``lupdate`` cannot tell which class a text belongs to (``tr = self.tr``
aliases, or ``self.tr`` after ``QCoreApplication.translate`` in one function): at run time such a
text would never be found, and writing the file would throw away its translation.

``compile`` also copies Qt's own ``qtbase_zh_CN.qm`` next to ours, so the app bundle has it. The
compiled files are build output (``i18n/build/`` is ignored by git).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
I18N = ROOT / "i18n"
BUILD = I18N / "build"
SOURCES = ("desktop/ui", "desktop/app.py")  # relative to ROOT
TS_FILES = (I18N / "desktop_zh_CN.ts",)
QT_CATALOGUES = ("qtbase",)  # Qt's own texts the app shows: standard buttons, file and message dialogs
LUPDATE_OPTIONS = ("-extensions", "py", "-locations", "none", "-no-obsolete", "-source-language", "en", "-silent")
_CONTEXT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a class name, or translate()'s explicit context


@dataclass(frozen=True)
class Message:
    context: str
    source: str
    comment: str  # the disambiguation ("" when none)
    translation: str  # numerus forms joined with "\n"
    state: str  # "finished", "unfinished", "obsolete" or "vanished"

    @property
    def key(self) -> tuple[str, str, str]:
        return self.context, self.source, self.comment


# --- reading ------------------------------------------------------------------------------------


def read_messages(ts: Path) -> list[Message]:
    messages = []
    for context in ET.parse(ts).getroot().iter("context"):
        name = context.findtext("name") or ""
        for message in context.iter("message"):
            translation = message.find("translation")
            forms = translation.findall("numerusform") if translation is not None else []
            text = "\n".join(form.text or "" for form in forms) if forms else (translation.text or "" if translation is not None else "")
            state = (translation.get("type") if translation is not None else None) or "finished"
            messages.append(Message(name, message.findtext("source") or "", message.findtext("comment") or "", text, state))
    return messages


def problems(messages: list[Message], locations: dict[str, str] | None = None) -> list[str]:
    """Everything that stops the file from being complete and usable, one line each."""
    found = []
    for message in messages:
        where = f"{message.context or '(no context)'}: {message.source!r}"
        if not _CONTEXT.fullmatch(message.context):
            at = f" ({locations[message.source]})" if locations and message.source in locations else ""
            found.append(f"{where}{at}: lupdate could not tell its class; call self.tr(...) directly, not through an alias")
        elif message.state in ("obsolete", "vanished"):
            found.append(f"{where}: {message.state} (no longer in the code)")
        elif message.state != "finished" or not message.translation.strip():
            found.append(f"{where}: not translated yet")
    return found


# --- the Qt tools -------------------------------------------------------------------------------


def qt_tool(name: str) -> Path:
    """lupdate / lrelease as shipped inside the PySide6 wheel (what pyside6-lupdate runs)."""
    import PySide6

    folder = Path(PySide6.__file__).resolve().parent
    for candidate in (folder / name, folder / f"{name}.exe", folder / "Qt" / "libexec" / name):
        if candidate.exists():
            return candidate
    raise SystemExit(f"{name} not found in {folder}; is PySide6 installed in this Python?")


def run_lupdate(ts: Path) -> None:
    language = ts.stem.split("_", 1)[1]
    command = [str(qt_tool("lupdate")), *LUPDATE_OPTIONS, "-target-language", language, *SOURCES, "-ts", str(ts)]
    subprocess.run(command, cwd=ROOT, check=True)


def unplaced_texts(ts: Path) -> list[str]:
    """Problem lines for texts lupdate could not give a class, each with the file and line it is on."""
    messages = read_messages(ts)
    if all(_CONTEXT.fullmatch(message.context) for message in messages):
        return []
    with tempfile.TemporaryDirectory() as folder:
        located = Path(folder) / ts.name  # a fresh extraction, with line numbers this time
        language = ts.stem.split("_", 1)[1]
        options = [option for option in LUPDATE_OPTIONS if option not in ("-locations", "none")]
        command = [str(qt_tool("lupdate")), *options, "-locations", "absolute", "-target-language", language, *SOURCES, "-ts", str(located)]
        subprocess.run(command, cwd=ROOT, check=True)
        locations = {}
        for context in ET.parse(located).getroot().iter("context"):
            for message in context.iter("message"):
                where = message.find("location")
                if where is not None:
                    file = (located.parent / where.get("filename", "")).resolve()
                    shown = file.relative_to(ROOT) if file.is_relative_to(ROOT) else where.get("filename", "")
                    locations.setdefault(message.findtext("source") or "", f"{shown}:{where.get('line')}")
    return [line for line in problems(messages, locations) if "could not tell its class" in line]


def run_lrelease(ts: Path, qm: Path) -> None:
    subprocess.run([str(qt_tool("lrelease")), "-silent", str(ts), "-qm", str(qm)], check=True)


# --- commands ------------------------------------------------------------------------------------


def update(ts: Path) -> int:
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / ts.name
        if ts.exists():
            shutil.copy2(ts, draft)
        run_lupdate(draft)
        lost = unplaced_texts(draft)
        if lost:
            print(f"{ts.relative_to(ROOT)} not written:", *lost, sep="\n  ", file=sys.stderr)
            return 1
        prefilled = _prefill_from_identical_texts(draft)
        if prefilled:
            run_lupdate(draft)  # back to lupdate's own layout, so that check finds nothing to change
        changed = not ts.exists() or draft.read_bytes() != ts.read_bytes()
        if changed:
            shutil.copyfile(draft, ts)
    messages = read_messages(ts)
    todo = [message for message in messages if message.state != "finished"]
    print(f"{ts.relative_to(ROOT)}: {len(messages)} texts, {len(todo)} to translate"
          f"{f' ({prefilled} pre-filled from identical texts, to confirm)' if prefilled else ''}"
          f"{'' if changed else '; unchanged'}")
    return 0


def todo(ts: Path) -> int:
    """Print the unfinished entries as JSON for ``fill``: translate the "translation" values."""
    entries = [
        {"context": m.context, "source": m.source, **({"comment": m.comment} if m.comment else {}), "translation": m.translation}
        for m in read_messages(ts)
        if m.state == "unfinished"
    ]
    json.dump(entries, sys.stdout, ensure_ascii=False, indent=1)
    print()
    return 0


def fill(ts: Path, translations: Path) -> int:
    """Write translations from a JSON list (``todo``'s output) into the .ts, marked finished."""
    entries = json.loads(translations.read_text(encoding="utf-8"))
    wanted = {(e["context"], e["source"], e.get("comment", "")): e["translation"] for e in entries if e.get("translation")}
    tree = ET.parse(ts)
    done = 0
    for context in tree.getroot().iter("context"):
        name = context.findtext("name") or ""
        for message in context.iter("message"):
            key = (name, message.findtext("source") or "", message.findtext("comment") or "")
            if key in wanted:
                _set_translation(message, wanted.pop(key), finished=True)
                done += 1
    _write(tree, ts)
    run_lupdate(ts)
    for context, source, _comment in wanted:
        print(f"not in {ts.name} (a text that changed since todo?): {context}: {source!r}", file=sys.stderr)
    print(f"{ts.relative_to(ROOT) if ts.is_relative_to(ROOT) else ts}: {done} translations written")
    return 1 if wanted else 0


def check(ts: Path) -> int:
    """Exit 1 when ``update`` would change the file, or it holds unfinished or broken entries."""
    if not ts.exists():
        print(f"{ts} is missing; run: scripts/translations.py update", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as folder:
        draft = Path(folder) / ts.name
        shutil.copy2(ts, draft)
        run_lupdate(draft)
        stale = draft.read_bytes() != ts.read_bytes()
        current, fresh = read_messages(ts), read_messages(draft)
        # Texts lupdate cannot place first: fixing those usually makes the rest of the list go away.
        unplaced = unplaced_texts(draft) if stale else []
    found = problems(current)
    if stale:
        old, new = {m.key for m in current}, {m.key for m in fresh}
        found[0:0] = [
            *unplaced,
            f"{ts.name} is out of date with the code; run: scripts/translations.py update",
            *(f"  gone from the code: {c}: {s!r}" for c, s, _ in sorted(old - new)),
            *(f"  new in the code: {c or '(no context)'}: {s!r}" for c, s, _ in sorted(new - old)),
        ]
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"{ts.relative_to(ROOT) if ts.is_relative_to(ROOT) else ts}: up to date, {len(current)} texts, all translated")
    return 1 if found else 0


def compile_translations(out: Path = BUILD, *, force: bool = False, ts_files: tuple[Path, ...] = TS_FILES) -> list[Path]:
    """Compile each .ts to ``out/<name>.qm`` (skipped when up to date) and copy Qt's own catalogues."""
    from PySide6.QtCore import QLibraryInfo

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for ts in ts_files:
        qm = out / f"{ts.stem}.qm"
        if force or _stale(qm, ts):
            run_lrelease(ts, qm)
            written.append(qm)
        for catalogue in QT_CATALOGUES:
            language = ts.stem.split("_", 1)[1]
            qt_qm = Path(QLibraryInfo.path(QLibraryInfo.LibraryPath.TranslationsPath)) / f"{catalogue}_{language}.qm"
            if qt_qm.exists() and (force or _stale(out / qt_qm.name, qt_qm)):
                shutil.copy2(qt_qm, out / qt_qm.name)
                written.append(out / qt_qm.name)
    return written


# --- helpers -------------------------------------------------------------------------------------


def _prefill_from_identical_texts(ts: Path) -> int:
    """Suggest, for each empty unfinished entry, a finished translation of the same English text."""
    tree = ET.parse(ts)
    known: dict[tuple[str, str], str] = {}
    for message in read_messages(ts):
        if message.state == "finished" and message.translation:
            known.setdefault((message.source, message.comment), message.translation)
            known.setdefault((message.source, ""), message.translation)  # for the same text without a comment
    filled = 0
    for message in tree.getroot().iter("message"):
        translation = message.find("translation")
        if translation is None or translation.get("type") != "unfinished" or (translation.text or "").strip():
            continue
        source = message.findtext("source") or ""
        suggestion = known.get((source, message.findtext("comment") or ""), known.get((source, "")))
        if suggestion is not None and message.get("numerus") != "yes":
            _set_translation(message, suggestion, finished=False)
            filled += 1
    if filled:
        _write(tree, ts)
    return filled


def _set_translation(message: ET.Element, text: str, *, finished: bool) -> None:
    translation = message.find("translation")
    if translation is None:
        translation = ET.SubElement(message, "translation")
    forms = translation.findall("numerusform")
    if forms:
        for form, value in zip(forms, text.split("\n") if message.get("numerus") == "yes" else [text] * len(forms)):
            form.text = value
    else:
        translation.text = text
    if finished:
        translation.attrib.pop("type", None)
    else:
        translation.set("type", "unfinished")


def _write(tree: ET.ElementTree, ts: Path) -> None:
    tree.write(ts, encoding="utf-8", xml_declaration=True)


def _stale(target: Path, source: Path) -> bool:
    return not target.exists() or target.stat().st_mtime < source.stat().st_mtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("update", help="regenerate the .ts from the sources")
    commands.add_parser("todo", help="print the unfinished entries as JSON, for fill")
    fill_parser = commands.add_parser("fill", help="write translations from a JSON file (todo's format)")
    fill_parser.add_argument("json", type=Path)
    commands.add_parser("check", help="exit 1 if the .ts is stale, unfinished or broken")
    compile_parser = commands.add_parser("compile", help="build the .qm files")
    compile_parser.add_argument("--out", type=Path, default=BUILD, help=f"folder for the .qm files (default {BUILD.relative_to(ROOT)})")
    compile_parser.add_argument("--force", action="store_true", help="compile even when up to date")
    args = parser.parse_args(argv)

    if args.command == "compile":
        for qm in compile_translations(args.out, force=args.force):
            print(f"wrote {qm}")
        return 0
    status = 0
    for ts in TS_FILES:
        if args.command == "update":
            status |= update(ts)
        elif args.command == "todo":
            status |= todo(ts)
        elif args.command == "fill":
            status |= fill(ts, args.json)
        else:
            status |= check(ts)
    return status


if __name__ == "__main__":
    sys.exit(main())
