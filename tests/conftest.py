"""Shared fixtures. The real model is loaded once per test session; no test touches ./corpus or ./index."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qa.config import Settings
from qa.indexing.embedding import Encoder
from qa.service import Assistant

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "corpus" / "article-ii-mandate.txt"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path, monkeypatch):
    """Point the default corpus and index at a temp folder so a stray Settings() is harmless."""
    monkeypatch.setenv("QA_CORPUS_DIR", str(tmp_path / "default-corpus"))
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "default-index"))
    monkeypatch.delenv("QA_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("QA_MODEL", raising=False)


@pytest.fixture(scope="session")
def encoder() -> Encoder:
    return Encoder()


def make_settings(root: Path, **overrides) -> Settings:
    return Settings(corpus_dir=root / "corpus", index_dir=root / "index", **overrides)


def indexed_assistant(root: Path, encoder: Encoder, files: list[Path], **overrides) -> Assistant:
    """An Assistant over copies of `files` in root/corpus, indexed, for tests that write to it."""
    (root / "corpus").mkdir()
    for f in files:
        shutil.copy(f, root / "corpus")
    assistant = Assistant(make_settings(root, **overrides), encoder=encoder)
    assistant.reindex()
    return assistant


@pytest.fixture(scope="session")
def report_assistant(tmp_path_factory, encoder) -> Assistant:
    """The report alone, indexed once for the whole session. Read-only: tests must not write to it."""
    root = tmp_path_factory.mktemp("report")
    (root / "corpus").mkdir()
    shutil.copy(REPORT, root / "corpus" / REPORT.name)
    assistant = Assistant(make_settings(root), encoder=encoder)
    assistant.reindex()
    return assistant


@pytest.fixture(scope="session")
def web_assistant(tmp_path_factory, encoder) -> Assistant:
    """The web fixtures (tests/fixtures/web-corpus) and the report, indexed once for the session, for
    the server-rendered page tests. Read-only: tests must not write to it."""
    root = tmp_path_factory.mktemp("web")
    shutil.copytree(FIXTURES / "web-corpus", root / "corpus")
    shutil.copy(REPORT, root / "corpus" / REPORT.name)
    assistant = Assistant(make_settings(root), encoder=encoder)
    assistant.reindex()
    return assistant


@pytest.fixture
def fresh_assistant(tmp_path, encoder) -> Assistant:
    """An empty corpus and no index, for tests that write."""
    (tmp_path / "corpus").mkdir()
    return Assistant(make_settings(tmp_path), encoder=encoder)
