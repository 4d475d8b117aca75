"""Fusion and evidence weights chosen by leaving one benchmark out: choose on the others, report on it.

    .venv/bin/python bench/fusion_loo.py [--squad ../shared/bench/squad/squad-v2.0-16-articles.json]
                                         [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv]

Three benchmarks: WikiQA-test (document hit@1; dense wins), SQuAD 2.0's shared questions (passage
hit@1; BM25 wins) and the report's two dev sets (passage hit@1). For every answerable question the
candidates retrieval sees (top 80 by cosine and top 80 by BM25, as `retrieve` takes them) are
recorded once with both scores; each setting is then replayed exactly as `retrieve` ranks (`fuse`,
then the document boost on the best 20). A setting's score on a set of benchmarks is its *worst*
margin over the best single method (BM25 alone or dense alone) among them: the aim is to be at least
as good as the best single method everywhere, not to win big on one.

Evidence: for each answerable question, the best-ranked candidate passage that holds the answer;
its sentences (the title line aside) are scored by `evidence.sentence_scores` for each term weight,
and one of the best 1 (the first highlight) or 2 (the two the contract allows) must hold the answer.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import squad  # noqa: E402
import wikiqa  # noqa: E402
from qa import lexical  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.evaluation import Case, load_cases, normalise  # noqa: E402
from qa.evidence import highlight_order, sentence_scores, term_coverage  # noqa: E402
from qa.retrieval import CANDIDATES, RERANK_DEPTH, fuse  # noqa: E402
from qa.service import Assistant  # noqa: E402

METHODS = ("minmax", "zscore", "rrf")
LEXICAL_WEIGHTS = tuple(round(float(x), 2) for x in np.arange(0.0, 0.61, 0.1))
COVERAGE_WEIGHTS = (0.0, 0.1, 0.2, 0.3)
DOCUMENT_WEIGHTS = (0.0, 0.25)
TERM_WEIGHTS = tuple(round(float(x), 2) for x in np.arange(0.0, 1.01, 0.1))


@dataclass
class Question:
    dense: dict[int, float]
    lexical: dict[int, float]
    doc: dict[int, str]  # candidate -> doc_id
    hit: set[int]  # candidates that count as a hit
    coverage_of: dict[int, float]  # candidate -> share of the question's IDF its text holds
    cosines: np.ndarray  # sentences of the best-ranked hitting passage (None when no candidate hits)
    coverage: np.ndarray
    gold: np.ndarray  # bool, a sentence holds the answer


def record(assistant: Assistant, cases: list[Case], by_document: bool) -> list[Question]:
    """The candidates and evidence sentences of every answerable case (see the module docstring)."""
    gen = assistant.generation()
    answerable = [c for c in cases if c.evidence]
    queries = assistant.encoder.encode([c.question for c in answerable])
    out = []
    for case, query in zip(answerable, queries, strict=True):
        dense = dict(gen.dense(query, CANDIDATES))
        lex = dict(gen.lexical(case.question, CANDIDATES))
        missing = [i for i in lex if i not in dense]
        if missing:
            dense.update(zip(missing, (gen.chunk_vectors(missing) @ query).tolist(), strict=True))
        stored = gen.chunks(list(dense))
        wanted = [normalise(e) for e in case.evidence]

        def holds(start: int, end: int, text: str, doc_id: str, case: Case = case, wanted: list = wanted) -> bool:
            if case.spans:
                return doc_id == case.doc_id and any(start <= a and b <= end for a, b in case.spans)
            return any(w in normalise(text) for w in wanted)

        hit = {i for i, s in stored.items() if (s.chunk.doc_id == case.doc_id if by_document
                                                  else holds(s.chunk.start, s.chunk.end, s.chunk.text, s.chunk.doc_id))}
        holding = [i for i, s in stored.items() if holds(s.chunk.start, s.chunk.end, s.chunk.text, s.chunk.doc_id)]
        weights = gen.words.idf(lexical.terms(case.question))
        ids = list(stored)
        coverage_of = dict(zip(ids, term_coverage(weights, [stored[i].chunk.text for i in ids]).tolist(), strict=True))
        cos = cov = gold = np.zeros(0)
        if holding:
            best = max(holding, key=lambda i: dense[i])
            c = stored[best].chunk
            spans = [(a, b) for a, b in c.sentences
                     if " ".join(c.text[a - c.start:b - c.start].split()) != stored[best].title]
            keep = [c.sentences.index(s) for s in spans]
            texts = [c.text[a - c.start:b - c.start] for a, b in spans]
            cos = stored[best].sentence_vectors[keep] @ query
            cov = term_coverage(weights, texts)
            gold = np.array([holds(a, b, t, c.doc_id) for (a, b), t in zip(spans, texts, strict=True)])
        docs = {i: s.chunk.doc_id for i, s in stored.items()}
        out.append(Question(dense, lex, docs, hit, coverage_of, cos, cov, gold))
    return out


def top_hit(q: Question, method: str, weight: float, term_weight: float, doc_weight: float) -> bool:
    fused = fuse(q.dense, q.lexical, q.coverage_of, weight, term_weight, method)
    ranking = sorted(fused, key=lambda i: (-fused[i], i))[:RERANK_DEPTH]
    best: dict[str, float] = {}
    for i in ranking:
        best[q.doc[i]] = max(best.get(q.doc[i], fused[i]), fused[i])
    first = min(ranking, key=lambda i: (-(fused[i] + doc_weight * best[q.doc[i]]), ranking.index(i)))
    return first in q.hit


def single(q: Question, scores: dict[int, float]) -> bool:
    return bool(scores) and min(scores, key=lambda i: (-scores[i], i)) in q.hit


def retrieval_table(benchmarks: dict[str, list[Question]]) -> dict:
    singles = {name: {"BM25 alone": np.mean([single(q, q.lexical) for q in qs]),
                      "dense alone": np.mean([single(q, q.dense) for q in qs])} for name, qs in benchmarks.items()}
    settings = list(product(METHODS, LEXICAL_WEIGHTS, COVERAGE_WEIGHTS, DOCUMENT_WEIGHTS))
    scores = {s: {name: float(np.mean([top_hit(q, *s) for q in qs])) for name, qs in benchmarks.items()}
              for s in settings}
    margin = {s: {n: v - max(singles[n].values()) for n, v in row.items()} for s, row in scores.items()}
    return {"singles": singles, "scores": scores, "margin": margin}


def choose(margins: dict, among: list[str]):
    """The setting whose worst margin over the best single method among `among` is largest (then mean)."""
    return max(margins, key=lambda s: (round(min(margins[s][n] for n in among), 4),
                                       np.mean([margins[s][n] for n in among])))


def evidence_table(benchmarks: dict[str, list[Question]], top: int, pair: bool) -> dict:
    """Per term weight and benchmark: does one of the `top` chosen sentences hold the answer? With
    `pair`, the second is the best remaining by cosine (`evidence.highlight_order`), else by score."""
    out = {}
    for w in TERM_WEIGHTS:
        row = {}
        for name, qs in benchmarks.items():
            found = []
            for q in qs:
                if len(q.gold):
                    order = highlight_order(q.cosines, q.coverage, w) if pair else list(
                        np.argsort(-sentence_scores(q.cosines, q.coverage, w), kind="stable"))
                    found.append(bool(q.gold[order[:top]].any()))
            row[name] = float(np.mean(found))
        out[w] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--squad", type=Path, default=squad.DEFAULT_DATA)
    parser.add_argument("--wikiqa", type=Path, default=wikiqa.DEFAULT_TSV)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-loo")
    parser.add_argument("--cache", type=Path, help="reuse the recorded candidates in this file (pickle)")
    args = parser.parse_args()
    for flag, path in (("--squad", args.squad), ("--wikiqa", args.wikiqa)):
        if not path.is_file():
            parser.error(f"{flag}: no file {path}")

    if args.cache and args.cache.is_file():
        benchmarks = pickle.loads(args.cache.read_bytes())
    else:
        benchmarks = record_all(args)
        if args.cache:
            args.cache.write_bytes(pickle.dumps(benchmarks))
    names = list(benchmarks)
    table = retrieval_table(benchmarks)
    print("Single methods, hit@1 (WikiQA: document hit@1):")
    for n in names:
        print(f"  {n}: BM25 {table['singles'][n]['BM25 alone']:.3f}, dense {table['singles'][n]['dense alone']:.3f}")
    print("\n| left out | chosen on the others (method, BM25 weight, term weight, document weight) "
          "| hit@1 on the left-out | best single method there | margin |\n|---|---|---|---|---|")
    for left in names:
        s = choose(table["margin"], [n for n in names if n != left])
        best = max(table["singles"][left].values())
        print(f"| {left} | {s} | {table['scores'][s][left]:.3f} | {best:.3f} | {table['margin'][s][left]:+.3f} |")
    s = choose(table["margin"], names)
    print(f"\nChosen on all three: {s}: " + ", ".join(f"{n} {table['scores'][s][n]:.3f}" for n in names))
    for method in METHODS:
        print(f"\n{method}, document weight 0.25, hit@1 by BM25 weight (rows) and term weight:")
        for w in LEXICAL_WEIGHTS:
            print(f"  {w:.1f}: " + "; ".join(
                f"{c:.1f} " + " ".join(f"{table['scores'][(method, w, c, 0.25)][n]:.3f}" for n in names)
                for c in COVERAGE_WEIGHTS))

    for top, pair in ((1, False), (2, False), (2, True)):
        ev = evidence_table(benchmarks, top, pair)
        best_single = {n: max(ev[0.0][n], ev[1.0][n]) for n in names} if not pair else {
            n: max(evidence_table(benchmarks, top, False)[w][n] for w in (0.0, 1.0)) for n in names}
        ev_margin = {w: {n: ev[w][n] - best_single[n] for n in names} for w in ev}
        how = "the best by score, then the best remaining by cosine" if pair else "the best by score"
        print(f"\nEvidence: one of {top} sentence(s) of the passage holding the answer holds it ({how}), "
              "by term weight:")
        for w, row in ev.items():
            print(f"  {w:.1f}: " + ", ".join(f"{n} {row[n]:.3f}" for n in names))
        print(f"\n| left out | term weight chosen on the others | sentence@{top} on the left-out "
              "| best single signal (cosine or terms alone) |\n|---|---|---|---|")
        for left in names:
            w = choose(ev_margin, [n for n in names if n != left])
            print(f"| {left} | {w} | {ev[w][left]:.3f} | {best_single[left]:.3f} |")
        w = choose(ev_margin, names)
        print(f"\nChosen on all three: term weight {w}: " + ", ".join(f"{n} {ev[w][n]:.3f}" for n in names))


def record_all(args) -> dict[str, list[Question]]:
    encoder = None
    work = args.workdir.resolve()
    squad_assistant, squad_cases = squad.prepare(args.squad, work / "squad")
    encoder = squad_assistant.encoder
    data = wikiqa.load(args.wikiqa)
    wiki = Settings(corpus_dir=work / "wikiqa" / "corpus", index_dir=work / "wikiqa" / "index")
    wikiqa.write_corpus(data, wiki.corpus_dir)
    wiki_assistant = Assistant(wiki, encoder=encoder)
    print(wiki_assistant.reindex().describe().splitlines()[0], file=sys.stderr)
    report = Settings(corpus_dir=work / "report" / "corpus", index_dir=work / "report" / "index")
    report.corpus_dir.mkdir(parents=True, exist_ok=True)
    (report.corpus_dir / wikiqa.REPORT.name).write_bytes(wikiqa.REPORT.read_bytes())
    report_assistant = Assistant(report, encoder=encoder)
    print(report_assistant.reindex().describe().splitlines()[0], file=sys.stderr)
    dev = [c for path in wikiqa.DEV_SETS.values() for c in load_cases(path)]
    return {
        "WikiQA": record(wiki_assistant, wikiqa.cases_of(data), by_document=True),
        "SQuAD": record(squad_assistant, squad_cases, by_document=False),
        "report dev sets": record(report_assistant, dev, by_document=False),
    }


if __name__ == "__main__":
    main()
