"""Fusion and evidence weights chosen by leaving one benchmark out: choose on the others, report on it.

    .venv/bin/python bench/research/fusion_loo.py [--squad ../shared/bench/squad/squad-v2.0-16-articles.json]
                                         [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv]

Three benchmarks: WikiQA-test (document hit@1; dense wins), SQuAD 2.0's shared questions (passage
hit@1; BM25 wins) and the report's two dev sets (passage hit@1). For every answerable question the
candidates retrieval sees (top 80 by cosine and top 80 by BM25, as `retrieve` takes them) are
recorded once with both scores and the share of the question's IDF each holds; each setting is then
replayed as `retrieve` ranks (`fuse` for passages and for documents, then the document boost on the
best 20; the numbered-part lookup aside). A setting's score on a set of benchmarks is its *worst*
margin over the best single method (BM25 alone or dense alone) among them: the aim is to be at least
as good as the best single method everywhere, not to win big on one.

Best sentences (the last retrieval table): with the passages' fusion fixed at the shipped weights, each
of the best 20 gains a x its best sentence's cosine + b x the largest share of the question's IDF one
sentence holds (`retrieval.add_best_sentences`), chosen the same way, by hit@1 (hit@3 shown).

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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))  # the product benches' data helpers (wikiqa, squad)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import squad  # noqa: E402
import wikiqa  # noqa: E402
from qa.answering.evaluation import Case, load_cases, normalise  # noqa: E402
from qa.answering.evidence import best_sentence, highlight_order, sentence_scores, term_coverage  # noqa: E402
from qa.answering.retrieval import (  # noqa: E402
    CANDIDATES,
    DOCUMENT_WEIGHT,
    LEXICAL_WEIGHT,
    RERANK_DEPTH,
    SENTENCE_COSINE_WEIGHT,
    SENTENCE_TERM_WEIGHT,
    TERM_WEIGHT,
    fuse,
)
from qa.config import Settings  # noqa: E402
from qa.indexing import lexical  # noqa: E402
from qa.service import Assistant  # noqa: E402

METHODS = ("minmax", "zscore", "rrf")
LEXICAL_WEIGHTS = tuple(round(float(x), 2) for x in np.arange(0.0, 0.61, 0.1))
COVERAGE_WEIGHTS = (0.0, 0.1, 0.2, 0.3)
DOCUMENT_FUSIONS = ((0.0, 0.0), (0.1, 0.0), (0.0, 0.1), (0.1, 0.1), (0.1, 0.2), (0.2, 0.1), (0.2, 0.2), (0.0, 0.2))
TERM_WEIGHTS = tuple(round(float(x), 2) for x in np.arange(0.0, 1.01, 0.1))
SENTENCE_WEIGHTS = tuple(product((0.0, 0.1, 0.2, 0.3, 0.4, 0.5), (0.0, 0.1, 0.2, 0.3, 0.4)))  # (cosine, terms)


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
    sentence_cosine: dict[int, float]  # candidate -> its best sentence's cosine (title line aside)
    sentence_terms: dict[int, float]  # candidate -> the largest share of the question's IDF one sentence holds


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
        best = {i: best_sentence(s, query, weights) for i, s in stored.items()}
        out.append(Question(dense, lex, docs, hit, coverage_of, cos, cov, gold,
                            {i: b[0] for i, b in best.items()}, {i: b[1] for i, b in best.items()}))
    return out


def document_order(q: Question, passages: dict[int, float], documents: dict[int, float], weight: float) -> list[int]:
    """`retrieval._by_document` replayed: the best 20 passages by `passages`, each gaining `weight` x
    the best `documents` score of its document."""
    ranking = sorted(passages, key=lambda i: (-passages[i], i))[:RERANK_DEPTH]
    best: dict[str, float] = {}
    for i in ranking:
        best[q.doc[i]] = max(best.get(q.doc[i], documents[i]), documents[i])
    return sorted(ranking, key=lambda i: (-(passages[i] + weight * best[q.doc[i]]), i))


def top_hit(q: Question, passages: dict[int, float], documents: dict[int, float], doc_weight: float) -> bool:
    """Whether the first passage `retrieve` would return is a hit."""
    return document_order(q, passages, documents, doc_weight)[0] in q.hit


def sentence_ranking(q: Question, cosine_weight: float, term_weight: float) -> list[int]:
    """The first passages `retrieve` returns with the shipped fusion and these best-sentence weights."""
    fused = fuse(q.dense, q.lexical, q.coverage_of, LEXICAL_WEIGHT, TERM_WEIGHT)
    ranking = sorted(fused, key=lambda i: (-fused[i], i))[:RERANK_DEPTH]
    score = {i: fused[i] + cosine_weight * q.sentence_cosine[i] + term_weight * q.sentence_terms[i] for i in ranking}
    return document_order(q, score, score, DOCUMENT_WEIGHT)


def sentence_table(benchmarks: dict[str, list[Question]]) -> dict:
    """hit@1 and hit@3 of every SENTENCE_WEIGHTS setting on every benchmark."""
    out = {}
    for s in SENTENCE_WEIGHTS:
        out[s] = {}
        for name, qs in benchmarks.items():
            ranked = [sentence_ranking(q, *s) for q in qs]
            out[s][name] = (np.mean([r[0] in q.hit for r, q in zip(ranked, qs, strict=True)]),
                            np.mean([any(i in q.hit for i in r[:3]) for r, q in zip(ranked, qs, strict=True)]))
    return out


def single(q: Question, scores: dict[int, float]) -> bool:
    return bool(scores) and min(scores, key=lambda i: (-scores[i], i)) in q.hit


def grid() -> list[tuple]:
    """(method, BM25 weight, term weight, document BM25 weight, document term weight, document weight):
    documents compared on the passages' own fusion (any method), or on a fusion of their own (minmax)."""
    flat = [(m, w, c, w, c, d) for m, w, c, d in product(METHODS, LEXICAL_WEIGHTS, COVERAGE_WEIGHTS, (0.0, 0.25, 1.0))]
    own = [("minmax", w, c, dw, dc, d) for w, c, (dw, dc), d in product(
        LEXICAL_WEIGHTS, COVERAGE_WEIGHTS, DOCUMENT_FUSIONS, (0.25, 1.0, 2.0)) if (dw, dc) != (w, c)]
    return flat + own


def retrieval_table(benchmarks: dict[str, list[Question]]) -> dict:
    singles = {name: {"BM25 alone": np.mean([single(q, q.lexical) for q in qs]),
                      "dense alone": np.mean([single(q, q.dense) for q in qs])} for name, qs in benchmarks.items()}
    settings = grid()
    scores: dict[tuple, dict[str, float]] = {s: {} for s in settings}
    for name, qs in benchmarks.items():
        hits = {s: 0 for s in settings}
        for q in qs:
            fused: dict[tuple, dict[int, float]] = {}
            for s in settings:
                m, w, c, dw, dc, d = s
                passages = fused.setdefault((m, w, c), fuse(q.dense, q.lexical, q.coverage_of, w, c, m))
                documents = fused.setdefault((m, dw, dc), fuse(q.dense, q.lexical, q.coverage_of, dw, dc, m))
                hits[s] += top_hit(q, passages, documents, d)
        for s in settings:
            scores[s][name] = hits[s] / len(qs)
    margin = {s: {n: v - max(singles[n].values()) for n, v in row.items()} for s, row in scores.items()}
    return {"singles": singles, "scores": scores, "margin": margin}


def choose(margins: dict, among: list[str]):
    """The setting whose worst margin over the best single method among `among` is largest (then mean)."""
    return max(margins, key=lambda s: (round(min(margins[s][n] for n in among), 4),
                                       np.mean([margins[s][n] for n in among])))


def leave_one_out(margins: dict, names: list[str], header: str, cells, chosen) -> None:
    """The leave-one-benchmark-out table: for each benchmark, the setting chosen on the others and
    `cells(setting, benchmark)` there; then `chosen(setting)` for the setting chosen on all."""
    print(header)
    for left in names:
        s = choose(margins, [n for n in names if n != left])
        print(f"| {left} | {s} | {cells(s, left)} |")
    print(chosen(choose(margins, names)))


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
    best_single = {n: max(table["singles"][n].values()) for n in names}
    leave_one_out(
        table["margin"], names,
        "\n| left out | chosen on the others (method, BM25, terms; documents: BM25, terms, weight) "
        "| hit@1 on the left-out | best single method there | margin |\n|---|---|---|---|---|",
        lambda s, left: f"{table['scores'][s][left]:.3f} | {best_single[left]:.3f} | {table['margin'][s][left]:+.3f}",
        lambda s: f"\nChosen on all three: {s}: " + ", ".join(f"{n} {table['scores'][s][n]:.3f}" for n in names))
    print("\nThe ten best settings by worst margin over all three:")
    ranked = sorted(table["margin"], key=lambda s: -min(table["margin"][s].values()))
    for s in ranked[:10]:
        print(f"  {s}: " + ", ".join(f"{n} {table['scores'][s][n]:.3f}" for n in names))
    for method in METHODS:
        print(f"\n{method}, documents on the passages' fusion, document weight 0.25, hit@1 by BM25 weight "
              "(rows) and term weight:")
        for w in LEXICAL_WEIGHTS:
            print(f"  {w:.1f}: " + "; ".join(
                f"{c:.1f} " + " ".join(f"{table['scores'][(method, w, c, w, c, 0.25)][n]:.3f}" for n in names)
                for c in COVERAGE_WEIGHTS))

    sentences = sentence_table(benchmarks)
    margins = {s: {n: row[n][0] - best_single[n] for n in names} for s, row in sentences.items()}
    shipped = (SENTENCE_COSINE_WEIGHT, SENTENCE_TERM_WEIGHT)
    print("\nBest sentences, with the shipped fusion: hit@1 / hit@3 by (cosine weight, term weight):")
    for s, row in sentences.items():
        print(f"  {s}{'  <- shipped' if s == shipped else ''}: " + ", ".join(
            f"{n} {row[n][0]:.3f} / {row[n][1]:.3f}" for n in names))
    leave_one_out(
        margins, names,
        "\n| left out | (cosine, terms) chosen on the others | hit@1 / hit@3 on the left-out "
        "| best single method there (hit@1) |\n|---|---|---|---|",
        lambda s, left: f"{sentences[s][left][0]:.3f} / {sentences[s][left][1]:.3f} | {best_single[left]:.3f}",
        lambda s: f"\nChosen on all three: {s}: " + ", ".join(f"{n} {sentences[s][n][0]:.3f}" for n in names))

    for top, pair in ((1, False), (2, False), (2, True)):
        ev = evidence_table(benchmarks, top, pair)
        alone = evidence_table(benchmarks, top, False) if pair else ev  # cosine alone (0.0), terms alone (1.0)
        best_single = {n: max(alone[0.0][n], alone[1.0][n]) for n in names}
        ev_margin = {w: {n: ev[w][n] - best_single[n] for n in names} for w in ev}
        how = "the best by score, then the best remaining by cosine" if pair else "the best by score"
        print(f"\nEvidence: one of {top} sentence(s) of the passage holding the answer holds it ({how}), "
              "by term weight:")
        for w, row in ev.items():
            print(f"  {w:.1f}: " + ", ".join(f"{n} {row[n]:.3f}" for n in names))
        leave_one_out(
            ev_margin, names,
            f"\n| left out | term weight chosen on the others | sentence@{top} on the left-out "
            "| best single signal (cosine or terms alone) |\n|---|---|---|---|",
            lambda w, left, ev=ev, best=best_single: f"{ev[w][left]:.3f} | {best[left]:.3f}",
            lambda w, ev=ev: f"\nChosen on all three: term weight {w}: "
            + ", ".join(f"{n} {ev[w][n]:.3f}" for n in names))


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
