"""alliance-qa: cited-passage question answering over a folder of documents.

The public API; these names stay importable from `qa` whatever moves inside the package:

    from qa import Assistant, Settings

    assistant = Assistant(Settings(corpus_dir="corpus", index_dir="index"))
    assistant.reindex()                       # build, or bring in line with the corpus
    answer = assistant.ask("What is Article II of the 1960 treaty about?", k=3)
    answer.answer, answer.passages[0].doc_id  # answer.to_dict() is the /ask body

The package is laid out by the stage a question's data passes through: `reading/` (files into
documents and chunks), `indexing/` (vectors, BM25, generations on disk), `answering/` (retrieval,
evidence, the answer and its confidence), `serving/` (HTTP API, web pages, library), with
`service.Assistant` tying them together for the CLI (`cli.py`) and the server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qa.answering.answers import Answer, Passage
    from qa.config import Settings
    from qa.errors import (
        BuildInProgress,
        CorpusMissing,
        DocumentError,
        IndexMismatch,
        IndexMissing,
        ModelError,
        NameTaken,
        NotFound,
        QAError,
    )
    from qa.indexing.build import BuildSummary
    from qa.service import Assistant, InvalidRequest, UnsupportedType

__version__ = "0.1.0"

__all__ = [
    "Answer", "Assistant", "BuildInProgress", "BuildSummary", "CorpusMissing", "DocumentError", "IndexMismatch",
    "IndexMissing", "InvalidRequest", "ModelError", "NameTaken", "NotFound", "Passage", "QAError", "Settings",
    "UnsupportedType",
]

# Where each public name lives. Imported on first use (PEP 562), so `import qa.config` in a worker or
# `qa --help` does not load the model runtime and every stage.
_HOMES = {
    "Answer": "qa.answering.answers", "Passage": "qa.answering.answers", "Settings": "qa.config",
    "BuildSummary": "qa.indexing.build", "Assistant": "qa.service", "InvalidRequest": "qa.service",
    "UnsupportedType": "qa.service",
    **dict.fromkeys(["BuildInProgress", "CorpusMissing", "DocumentError", "IndexMismatch", "IndexMissing",
                     "ModelError", "NameTaken", "NotFound", "QAError"], "qa.errors"),
}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'qa' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
