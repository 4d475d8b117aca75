"""Questions about a document itself (who wrote it, who published it, when), with and without the
metadata answers, in one run; and how often other questions are mistaken for them.

    .venv/bin/python bench/document_questions.py [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv] [--workdir DIR]

Question set: tests/data/document_questions.jsonl (20 phrasings about the report; the evidence is
the byline or the copyright line, which must be highlighted). It runs on the report alone and on the
report with the 619 WikiQA-test documents (bench/wikiqa.py writes them), once through the product
and once with document questions switched off (the ordinary answer: the baseline).
False routing: which of the report's dev-set questions (report alone) and of the WikiQA questions
(with WikiQA) are answered from metadata instead of the passages; "recognised" counts those that
look like a question about a document, most of which name no document and get the ordinary answer.
Metadata found: how many WikiQA documents (plain title + prose, no bylines) get authors, a publisher
or a date, with examples: every one is a reading error.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import wikiqa
from qa import service
from qa.answering.document_questions import recognise
from qa.answering.evaluation import load_cases, run_eval
from qa.config import Settings
from qa.service import Assistant

QUESTIONS = wikiqa.ROOT / "tests" / "data" / "document_questions.jsonl"
KEYS = ("evidence@1", "evidence@3", "hit@1", "false_abstentions")


def routed(assistant: Assistant, questions: list[str]) -> dict:
    """Which of `questions` (none of them about a document itself, unless its set says so) are
    answered from metadata, and how many only look like such a question (recognised, then left to
    the ordinary answer because they name no document of the corpus)."""
    answered: list[str] = []
    original = service.answer_about_document

    def recording(question, *args, **kwargs):
        answer = original(question, *args, **kwargs)
        if answer is not None:
            answered.append(question)
        return answer

    service.answer_about_document = recording
    try:
        for question in questions:
            assistant.ask(question, 5)
    finally:
        service.answer_about_document = original
    return {"questions": len(questions), "recognised": sum(recognise(q) is not None for q in questions),
            "answered from metadata": answered}


def run(tsv: Path, workdir: Path) -> dict:
    data = wikiqa.load(tsv)
    out: dict = {}
    encoder = None
    for name, with_wikiqa in (("report alone", False), ("report + 619 WikiQA documents", True)):
        settings = Settings(corpus_dir=workdir / f"docq-{int(with_wikiqa)}" / "corpus",
                            index_dir=workdir / f"docq-{int(with_wikiqa)}" / "index")
        settings.corpus_dir.mkdir(parents=True, exist_ok=True)
        (settings.corpus_dir / wikiqa.REPORT.name).write_bytes(wikiqa.REPORT.read_bytes())
        if with_wikiqa:
            wikiqa.write_corpus(data, settings.corpus_dir)
        assistant = Assistant(settings, encoder=encoder)
        print(assistant.reindex(show_progress=sys.stderr.isatty()).describe().splitlines()[0], file=sys.stderr)
        encoder = assistant.encoder
        with_metadata = run_eval(assistant, QUESTIONS)
        original = service.answer_about_document
        service.answer_about_document = lambda *args, **kwargs: None  # the ordinary answer only
        try:
            baseline = run_eval(assistant, QUESTIONS)
        finally:
            service.answer_about_document = original
        out[name] = {"metadata answers": {k: with_metadata[k] for k in KEYS},
                     "baseline (ordinary answer)": {k: baseline[k] for k in KEYS}}
        others = [q for q, _, _ in data.questions] if with_wikiqa else [
            c.question for path in wikiqa.DEV_SETS.values() for c in load_cases(path)]
        out[name]["answered from metadata"] = routed(assistant, others)
        if with_wikiqa:
            documents = assistant.documents()
            found = [d for d in documents if d.doc_id.startswith("wikiqa/")
                     and (d.metadata.authors or d.metadata.publisher or d.metadata.date)]
            out["wikiqa documents with metadata"] = {
                "count": len(found), "of": sum(d.doc_id.startswith("wikiqa/") for d in documents),
                "examples": [{"doc_id": d.doc_id, "title": d.title, "authors": d.metadata.authors,
                              "publisher": d.metadata.publisher, "date": d.metadata.date} for d in found[:10]],
            }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wikiqa", type=Path, default=wikiqa.DEFAULT_TSV, help="WikiQA-test.tsv")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-wikiqa")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args()
    if not args.wikiqa.is_file():
        sys.exit(f"{args.wikiqa}: not found; pass --wikiqa PATH/TO/WikiQA-test.tsv")
    out = run(args.wikiqa, args.workdir)
    print(json.dumps(out, indent=2, ensure_ascii=False))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
