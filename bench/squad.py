"""SQuAD 2.0, 16 long articles: BM25 alone, dense alone, RRF and the pipeline, side by side in one run.

    .venv/bin/python bench/squad.py [--data ../shared/bench/squad/squad-v2.0-16-articles.json] [--http]

Every article is one document, built as the data's README says: the title (underscores as spaces),
a blank line, then each paragraph followed by a blank line; all 16 are indexed through the product's
own pipeline. Every shared question (the 8 articles whose `qas` are not empty) is asked with k=10.
A passage *hits* when it comes from the question's article and holds a gold answer's span;
*evidence* when a highlight holds one; the answer *has gold* when its text holds a gold answer
(SQuAD-normalised, whole words). Single methods rank the same index's chunks (the product's
passages): BM25 alone, dense alone, and their reciprocal-rank fusion (k=60, top 80 of each).
The held-out questions (empty `qas`) are never read: there is nothing in the file to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import wikiqa  # noqa: E402
from qa.answering.evaluation import RANKED, Case, evaluate, mrr, share, summarise  # noqa: E402
from qa.answering.retrieval import CANDIDATES  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.service import Assistant  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "bench" / "squad" / "squad-v2.0-16-articles.json"
SINGLE = ("BM25 alone", "dense alone", "RRF (k=60)")


@dataclass(frozen=True)
class Article:
    title: str
    paragraphs: list[str]
    questions: list[tuple[str, list[tuple[int, int, str]]]]  # (question, [(paragraph, answer_start, text)])


def load(path: Path) -> list[Article]:
    articles = []
    for item in json.loads(path.read_text(encoding="utf-8"))["data"]:
        paragraphs, questions = [], []
        for p, para in enumerate(item["paragraphs"]):
            paragraphs.append(para["context"])
            for qa in para["qas"]:
                answers = [] if qa.get("is_impossible") else [
                    (p, a["answer_start"], a["text"]) for a in qa["answers"]]
                questions.append((qa["question"], answers))
        articles.append(Article(item["title"].replace("_", " "), paragraphs, questions))
    return articles


def doc_id(article: Article) -> str:
    return f"squad/{article.title}.txt"


def document_text(article: Article) -> str:
    return f"{article.title}\n\n" + "".join(f"{p}\n\n" for p in article.paragraphs)


def write_corpus(articles: list[Article], corpus_dir: Path) -> None:
    (corpus_dir / "squad").mkdir(parents=True, exist_ok=True)
    for article in articles:
        path, text = corpus_dir / doc_id(article), document_text(article)
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def cases_of(articles: list[Article], assistant: Assistant) -> list[Case]:
    """The shared questions, gold spans taken in the text GET /documents/{doc_id} returns (each
    paragraph is found in it in order, so a reader that changed whitespace would still count right)."""
    cases = []
    for article in articles:
        if not article.questions:
            continue
        stored = assistant.document(doc_id(article)).text
        offsets, cursor = [], 0
        for paragraph in article.paragraphs:
            at = stored.find(paragraph, cursor)
            if at < 0:
                sys.exit(f"{doc_id(article)}: a paragraph is not in the indexed text; the reader changed it")
            offsets.append(at)
            cursor = at + len(paragraph)
        for question, answers in article.questions:
            if not answers:
                cases.append(Case(question, None, doc_id(article)))
                continue
            spans = tuple(dict.fromkeys((offsets[p] + a, offsets[p] + a + len(t)) for p, a, t in answers))
            golds = tuple(dict.fromkeys(t for _, _, t in answers))
            cases.append(Case(question, golds, doc_id(article), spans))
    return cases


# -- single methods at the product's passage level ------------------------------------------------
def single_method_ranks(assistant: Assistant, cases: list[Case]) -> dict[str, list[int | None]]:
    """Rank of the first chunk holding a gold span, for each answerable case and each method."""
    gen = assistant.generation()
    answerable = [c for c in cases if c.evidence]
    queries = assistant.encoder.encode([c.question for c in answerable])
    chunk_ids = [int(i) for i in gen.chunk_ids_of([d.doc_id for d in gen.documents()])]
    stored = gen.chunks(chunk_ids)
    ranks: dict[str, list[int | None]] = defaultdict(list)
    for case, query in zip(answerable, queries, strict=True):
        dense = gen.dense(query, CANDIDATES)
        lexical = gen.lexical(case.question, CANDIDATES)
        rrf: dict[int, float] = defaultdict(float)
        for ranked in (dense, lexical):
            for rank, (i, _) in enumerate(ranked, start=1):
                rrf[i] += 1 / (60 + rank)
        orders = (
            [i for i, _ in lexical], [i for i, _ in dense], sorted(rrf, key=lambda i: (-rrf[i], i)))
        for name, order in zip(SINGLE, orders, strict=True):
            ranks[name].append(first_holding(order[:RANKED], stored, case))
    return ranks


def first_holding(order: list[int], stored: dict, case: Case) -> int | None:
    for rank, i in enumerate(order, start=1):
        c = stored[i].chunk
        if c.doc_id == case.doc_id and any(c.start <= a and b <= c.end for a, b in case.spans):
            return rank
    return None


def rank_row(ranks: list[int | None]) -> dict:
    return {"hit@1": share(ranks, 1), "hit@3": share(ranks, 3), "hit@5": share(ranks, 5), "mrr@10": mrr(ranks)}


# -- the run ---------------------------------------------------------------------------------------
def prepare(data: Path, workdir: Path, assistant_encoder=None) -> tuple[Assistant, list[Case]]:
    """All 16 articles in workdir/corpus, indexed (reused when unchanged); the shared questions."""
    articles = load(data)
    settings = Settings(corpus_dir=workdir / "corpus", index_dir=workdir / "index")
    write_corpus(articles, settings.corpus_dir)
    assistant = Assistant(settings, encoder=assistant_encoder)
    print(assistant.reindex().describe().splitlines()[0], file=sys.stderr)
    return assistant, cases_of(articles, assistant)


def run(data: Path, workdir: Path, http: bool) -> dict:
    assistant, cases = prepare(data, workdir)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU; load average {load}",
                 "questions": len(cases), "answerable": sum(c.evidence is not None for c in cases)}
    out["rows"] = {name: rank_row(r) for name, r in single_method_ranks(assistant, cases).items()}
    assistant.ask("warm-up question", k=RANKED)
    began = time.perf_counter()
    m = summarise(evaluate(assistant, cases, RANKED), RANKED)
    out["pipeline_seconds"] = round(time.perf_counter() - began, 1)
    out["rows"]["pipeline (/ask)"] = {key: m[key] for key in (
        "hit@1", "hit@3", "hit@5", "mrr@10", "evidence@1", "evidence@3", "answer_has_gold",
        "false_abstention_rate", "abstention_rate")} | {"p50_ms": m["latency_ms"]["p50"]}
    if http:
        out["rows"]["pipeline (/ask)"]["http_p50_ms"] = wikiqa.http_p50(
            assistant.settings, [c.question for c in cases], RANKED)
    best = max(out["rows"][name]["hit@1"] for name in SINGLE)
    out["pipeline_hit@1_over_best_single"] = round(out["rows"]["pipeline (/ask)"]["hit@1"] - best, 4)
    return out


COLUMNS = ("hit@1", "hit@3", "hit@5", "mrr@10", "evidence@1", "evidence@3", "answer_has_gold",
           "false_abstention_rate", "abstention_rate", "p50_ms", "http_p50_ms")


def render(out: dict) -> str:
    lines = [f"Machine: {out['machine']}.", "",
             f"| SQuAD 2.0 shared ({out['answerable']} answerable, {out['questions'] - out['answerable']} "
             "unanswerable), k=10 | hit@1 | hit@3 | hit@5 | MRR@10 | evidence@1 | evidence@3 "
             "| answer has gold | false abstentions | unanswerable abstained | p50 ms in-process | p50 ms HTTP |",
             "|---" * (len(COLUMNS) + 1) + "|"]
    for name, row in out["rows"].items():
        lines.append(f"| {name} | " + " | ".join(wikiqa.cell(row.get(key)) for key in COLUMNS) + " |")
    lines.append(f"\npipeline hit@1 minus the best single method's: {out['pipeline_hit@1_over_best_single']:+.3f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="squad-v2.0-16-articles.json")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-squad",
                        help="corpus and index, reused between runs")
    parser.add_argument("--http", action="store_true", help="also time /ask over HTTP through `qa serve`")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"--data: no file {args.data}; pass the path of squad-v2.0-16-articles.json")
    out = run(args.data, args.workdir.resolve(), args.http)
    print(render(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
