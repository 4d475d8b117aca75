"""WikiQA benchmark: BM25 alone, dense alone and the product's pipeline, side by side in one run.

    .venv/bin/python bench/wikiqa.py [--tsv ../shared/bench/wikiqa/WikiQA-test.tsv] [--http]

The 619 documents of WikiQA-test (title + sentences in SentenceID order) are indexed through the
product's own pipeline. The 243 questions that have a Label 1 sentence are answerable: a document
hit is a passage from the question's document, evidence is a Label 1 sentence inside a highlighted
sentence. The 390 others are WikiQA's own unanswerable questions (their document is in the corpus).
Then the report's dev set runs on the report alone and with the 619 documents added as distractors.

Nothing here is tuned on WikiQA: the pipeline's weights and thresholds come from the dev set.
Indexes live in --workdir and are reused when the corpus is unchanged.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from qa.answering import answers as answering  # noqa: E402
from qa.answering.evaluation import Case, evaluate, normalise, run_eval, summarise  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.indexing.lexical import LexicalIndex, write  # noqa: E402
from qa.service import Assistant  # noqa: E402

DEFAULT_TSV = ROOT.parent / "shared" / "bench" / "wikiqa" / "WikiQA-test.tsv"
REPORT = ROOT / "corpus" / "article-ii-mandate.txt"
DEV_SETS = {  # natural user phrasing (the main dev set), and deliberately adversarial paraphrases
    "natural": ROOT / "tests" / "data" / "dev_questions.jsonl",
    "paraphrased": ROOT / "tests" / "data" / "dev_questions_paraphrased.jsonl",
}
RRF = "RRF of both (k=60), documents only"
DEV_ALONE, DEV_MIXED = "report alone", "report + 619 WikiQA documents"


@dataclass(frozen=True)
class WikiQA:
    documents: dict[str, tuple[str, list[str]]]  # DocumentID -> (title, sentences in SentenceID order)
    questions: list[tuple[str, str, list[str]]]  # (question, DocumentID, Label 1 sentences)


def load(tsv: Path) -> WikiQA:
    sentences: dict[str, dict[int, str]] = defaultdict(dict)
    titles: dict[str, str] = {}
    questions: dict[str, tuple[str, str, list[str]]] = {}
    with open(tsv, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            doc = row["DocumentID"]
            titles[doc] = row["DocumentTitle"]
            sentences[doc][int(row["SentenceID"].rsplit("-", 1)[1])] = row["Sentence"]
            question = questions.setdefault(row["QuestionID"], (row["Question"], doc, []))
            if row["Label"] == "1":
                question[2].append(row["Sentence"])
    documents = {doc: (titles[doc], [s[i] for i in sorted(s)]) for doc, s in sentences.items()}
    return WikiQA(documents, list(questions.values()))


def doc_id(document_id: str) -> str:
    return f"wikiqa/{document_id}.txt"


def write_corpus(data: WikiQA, corpus_dir: Path) -> None:
    """One .txt per document: the title line, a blank line, the sentences as one paragraph.

    Sentences are joined by spaces, as prose: the product's own splitter then recovers 290 of the
    293 Label 1 sentences as single sentences (the other 3 hold abbreviations it does not know).
    Files already holding the same text are left alone, so the index update is a no-op.
    """
    (corpus_dir / "wikiqa").mkdir(parents=True, exist_ok=True)
    for document_id, (title, sentences) in data.documents.items():
        path = corpus_dir / doc_id(document_id)
        text = f"{title}\n\n{' '.join(sentences)}\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def cases_of(data: WikiQA) -> list[Case]:
    return [Case(q, tuple(labels) if labels else None, doc_id(d)) for q, d, labels in data.questions]


# -- single-method baselines, over the same index ------------------------------------------------
def single_method_rows(assistant: Assistant, cases: list[Case]) -> dict[str, dict]:
    """Documents ranked by their best chunk; evidence by ranking every sentence of the corpus.

    The sentence baselines rank every sentence but the title lines (as the pipeline does); the dense
    one encodes each sentence on its own, not with the in-context vectors the pipeline stores.
    """
    gen = assistant.generation()
    stored = gen.chunks([int(i) for i in gen.chunk_ids_of([d.doc_id for d in gen.documents()])])
    sentences = [text for sc in stored.values() for a, b in sc.chunk.sentences
                 if (text := sc.chunk.text[a - sc.chunk.start : b - sc.chunk.start]) != sc.title]
    matrix = assistant.encoder.encode(sentences)
    with tempfile.TemporaryDirectory() as folder:  # the product's lexical scoring, one sentence a document
        write(Path(folder), np.arange(len(sentences), dtype=np.int64), sentences)
        sentence_bm25 = LexicalIndex(Path(folder))
    answerable = [c for c in cases if c.evidence]
    queries = assistant.encoder.encode([c.question for c in answerable])

    def lexical_sentences(question: str) -> list[int]:
        return [i for i, _ in sentence_bm25.search(question, 3)]

    def rrf(case: Case, query: np.ndarray) -> list[int]:
        score: dict[int, float] = defaultdict(float)
        for ranked in (gen.dense(query, 50), gen.lexical(case.question, 50)):
            for rank, (i, _) in enumerate(ranked, start=1):
                score[i] += 1 / (60 + rank)
        return sorted(score, key=lambda i: -score[i])

    rows = {}
    for name in ("BM25 alone", "dense alone", RRF):
        doc_ranks, found = [], []
        for case, query in zip(answerable, queries, strict=True):
            if name == "BM25 alone":
                chunks, top = [i for i, _ in gen.lexical(case.question, 50)], lexical_sentences(case.question)
            elif name == "dense alone":
                chunks = [i for i, _ in gen.dense(query, 50)]
                top = [int(i) for i in np.argsort(-(matrix @ query))[:3]]
            else:
                chunks, top = rrf(case, query), []
            docs = list(dict.fromkeys(stored[i].chunk.doc_id for i in chunks))
            doc_ranks.append(docs.index(case.doc_id) + 1 if case.doc_id in docs else None)
            wanted = [normalise(e) for e in case.evidence or ()]
            hits = [any(w in normalise(sentences[i]) for w in wanted) for i in top]
            found.append(next((n for n, h in enumerate(hits, start=1) if h), None))
        rows[name] = {"doc_hit@1": _share(doc_ranks, 1), "doc_hit@5": _share(doc_ranks, 5),
                      "doc_mrr@10": _mrr(doc_ranks)}
        if name != RRF:
            rows[name] |= {"evidence@1": _share(found, 1), "evidence@3": _share(found, 3)}
    return rows


def _share(ranks: list[int | None], n: int) -> float:
    return round(sum(r is not None and r <= n for r in ranks) / len(ranks), 4)


def _mrr(ranks: list[int | None]) -> float:
    return round(sum(1 / r for r in ranks if r is not None and r <= 10) / len(ranks), 4)


# -- the product over HTTP -------------------------------------------------------------------------
def http_p50(settings: Settings, questions: list[str], k: int) -> float | None:
    """p50 of GET /ask against `qa serve` on a free local port (None when no `qa` command exists)."""
    qa = shutil.which("qa", path=str(Path(sys.executable).parent)) or shutil.which("qa")
    if qa is None:
        return None
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, QA_CORPUS_DIR=str(settings.corpus_dir), QA_INDEX_DIR=str(settings.index_dir))
    server = subprocess.Popen([qa, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.5)
        times = []
        for q in questions:
            url = f"{base}/ask?" + urllib.parse.urlencode({"q": q, "k": k})
            began = time.perf_counter()
            with urllib.request.urlopen(url, timeout=60) as r:
                r.read()
            times.append((time.perf_counter() - began) * 1000)
        return round(float(np.percentile(times, 50)), 1)
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- the run ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tsv", type=Path, default=DEFAULT_TSV, help="WikiQA-test.tsv")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-wikiqa",
                        help="corpora and indexes, reused between runs")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--http", action="store_true", help="also time /ask over HTTP through `qa serve`")
    parser.add_argument("--json", type=Path, help="also write every number to this file")
    args = parser.parse_args()
    if not args.tsv.is_file():
        sys.exit(f"{args.tsv}: not found; pass --tsv PATH/TO/WikiQA-test.tsv")

    data = load(args.tsv)
    cases = cases_of(data)
    wikiqa, mixed, report = (
        Settings(corpus_dir=args.workdir / n / "corpus", index_dir=args.workdir / n / "index")
        for n in ("wikiqa", "mixed", "report")
    )
    for settings, with_wikiqa, with_report in ((wikiqa, 1, 0), (mixed, 1, 1), (report, 0, 1)):
        settings.corpus_dir.mkdir(parents=True, exist_ok=True)
        if with_wikiqa:
            write_corpus(data, settings.corpus_dir)
        if with_report:
            shutil.copy(REPORT, settings.corpus_dir / REPORT.name)

    assistant = Assistant(wikiqa)
    built = time.perf_counter()
    print(assistant.reindex(show_progress=sys.stderr.isatty()).describe().splitlines()[0], file=sys.stderr)
    build_s = time.perf_counter() - built
    machine = f"{platform.machine()}, {os.cpu_count()} cores, no GPU, backend {assistant.settings.backend}"
    results: dict = {"machine": machine, "build_seconds": build_s}
    results["rows"] = single_method_rows(assistant, cases)
    assistant.ask("warm-up question", k=args.k)
    pipeline = summarise(evaluate(assistant, cases, args.k), args.k)
    results["rows"]["pipeline"] = {key: pipeline[key] for key in (
        "doc_hit@1", "doc_hit@5", "doc_mrr@10", "evidence@1", "evidence@3", "abstention_rate",
        "false_abstention_rate")} | {"p50_ms": pipeline["latency_ms"]["p50"]}
    if args.http:
        results["rows"]["pipeline"]["http_p50_ms"] = http_p50(wikiqa, [c.question for c in cases], args.k)
    answering.MAX_HIGHLIGHTS = 1  # the lever: how much does the contract's second highlight bring?
    one = summarise(evaluate(assistant, cases, args.k), args.k)
    answering.MAX_HIGHLIGHTS = 2
    results["rows"]["pipeline, 1 highlight per passage"] = {k: one[k] for k in ("evidence@1", "evidence@3")}

    for name, settings in ((DEV_ALONE, report), (DEV_MIXED, mixed)):
        other = Assistant(settings, encoder=assistant.encoder)
        print(other.reindex().describe().splitlines()[0], file=sys.stderr)
        for set_name, path in DEV_SETS.items():
            results[f"{set_name} set, {name}"] = run_eval(other, path, args.k)

    print(render(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def cell(value) -> str:
    """A table cell: a share to 3 decimals, anything else as it is, "—" for nothing."""
    if value is None:
        return "—"
    return f"{value:.3f}" if isinstance(value, float) and value <= 1 else f"{value}"


def render(results: dict) -> str:
    lines = [f"Machine: {results['machine']}; WikiQA index build {results['build_seconds']:.0f} s.", "",
             "| WikiQA-test (243 answerable, 390 unanswerable) | doc hit@1 | doc hit@5 | doc MRR@10 "
             "| evidence@1 | evidence@3 | abstained (unanswerable) | abstained (answerable) "
             "| p50 ms in-process | p50 ms HTTP |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in results["rows"].items():
        lines.append(f"| {name} | " + " | ".join(cell(row.get(key)) for key in (
            "doc_hit@1", "doc_hit@5", "doc_mrr@10", "evidence@1", "evidence@3", "abstention_rate",
            "false_abstention_rate", "p50_ms", "http_p50_ms")) + " |")
    lines += ["", "| dev set | hit@1 | hit@3 | hit@5 | MRR@10 | evidence@1 | evidence@3 "
              "| abstained (unanswerable) | abstained (answerable) | p50 ms |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name in (f"{s} set, {c}" for s in DEV_SETS for c in (DEV_ALONE, DEV_MIXED)):
        m = results[name]
        lines.append(f"| {name} | " + " | ".join(cell(m[key]) for key in (
            "hit@1", "hit@3", "hit@5", "mrr@10", "evidence@1", "evidence@3")) + " | "
            f"{m['abstained_unanswerable']}/{m['unanswerable']} | "
            f"{m['false_abstentions']}/{m['answerable']} | {m['latency_ms']['p50']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
