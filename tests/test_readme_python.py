"""The README's "From Python" example runs as written, from a project folder holding the report."""

from __future__ import annotations

import re
import shutil

from conftest import REPORT, ROOT


def from_python_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.S)
    return code


def test_the_from_python_example_runs_and_prints_a_cited_answer(tmp_path, monkeypatch, capsys, report_assistant):
    (tmp_path / "corpus").mkdir()
    shutil.copy(REPORT, tmp_path / "corpus" / REPORT.name)
    # The session's index of the same corpus: the example's reindex() finds it up to date.
    shutil.copytree(report_assistant.settings.index_dir, tmp_path / "index")
    monkeypatch.chdir(tmp_path)
    exec(compile(from_python_example(), "README.md (From Python)", "exec"), {})
    out = capsys.readouterr().out
    assert "1 kept" in out and "abstained: False" in out
    assert re.search(r"\[1\] The Article II Mandate.*\(article-ii-mandate\.txt, characters \d+-\d+\)", out)
    assert "[1]" in out.splitlines()[1]  # the answer cites
    assert out.rstrip().endswith("question: must not be empty")
