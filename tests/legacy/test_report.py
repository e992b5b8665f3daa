"""The import report file: written piece by piece, the same text as ImportReport.to_json."""

from __future__ import annotations

import json
from pathlib import Path

from convostore.legacy.reader import Problem
from convostore.legacy.report import ImportReport


def a_report(files: int) -> ImportReport:
    report = ImportReport(data_dirs=["/srv/bot/data"], dry_run=False, legacy_tz="Europe/Berlin")
    report.bot("sage", "sqlite:///data/sage.db", True).records["imported"] = 3 * files
    for n in range(files):
        report.files.append(
            {"path": f"multi_bot_conversations/sage/{n}_ünï 🐍.json", "status": "imported"}
        )
    report.problems.append(Problem('bad "quoted".json', "unreadable", "not JSON: line 1"))
    report.warnings.append(Problem("x.json", "timezone", "naive → Europe/Berlin", 4))
    report.notes.append("a note with a tab\tand a newline\n")
    return report


def test_the_file_is_the_text_of_to_json(tmp_path: Path) -> None:
    for files in (0, 1, 2_000):
        report = a_report(files)
        path = tmp_path / f"report-{files}.json"
        report.write(path)
        written = path.read_text(encoding="utf-8")
        assert written == report.to_json()
        assert written.endswith("}\n")
        assert ("ünï 🐍" in written) == (files > 0)  # written as is, not escaped
        loaded = json.loads(written)
        assert len(loaded["files"]) == files
        assert loaded["totals"]["files_imported"] == files
        assert loaded["unreadable_and_invalid"][0]["path"] == 'bad "quoted".json'


def test_a_report_path_given_as_text_works_too(tmp_path: Path) -> None:
    report = a_report(3)
    report.write(str(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["notes"] == report.notes
