"""The README's examples as written: the "From Python" code runs, the MCP client configuration is valid."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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


def test_the_mcp_client_configuration_is_json_that_starts_qa_mcp_on_a_corpus_and_an_index():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## From an AI assistant: MCP\n", 1)[1].split("\n## ", 1)[0]
    (snippet,) = re.findall(r"```json\n(.*?)```", section, re.S)
    server = json.loads(snippet)["mcpServers"]["alliance-qa"]
    assert server["command"].endswith("/bin/qa") and server["args"][0] == "mcp"
    assert {"--corpus", "--index"} <= set(server["args"])
    assert all(Path(a).is_absolute() for a in [server["command"], *server["args"][2::2]])
