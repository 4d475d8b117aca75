"""`qa eval`: run a question set through the same path as /ask and measure retrieval and evidence.

A question set is JSON Lines, one `{"question": str, "evidence": str | [str] | null}` per line;
null means the corpus does not answer the question. A passage is a *hit* when its text contains an
evidence string, and the evidence is *found* when an evidence string lies inside one highlighted
sentence; both comparisons ignore case and runs of whitespace. A case may instead carry gold
character spans in its document (SQuAD): a hit is then a passage of that document whose [start, end)
holds a span, evidence a highlight that holds one, and the answer *has gold* when its text, [n]
markers removed, holds a gold answer as whole words after SQuAD's normalisation.

Each question is asked once, with max(k, 10) passages so that MRR@10 is defined. That is the same
call /ask makes: retrieval ranks a candidate pool that does not depend on k, and the answer (and so
the abstention) reads only the top passages, so the first k passages of that call are exactly what
/ask returns for k. Latency is measured around that call.
"""

from __future__ import annotations

import json
import re
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qa.answering.answers import Answer
from qa.errors import QAError

RANKED = 10  # passages asked for, so MRR@10 has its ten


@dataclass(frozen=True)
class Case:
    question: str
    evidence: tuple[str, ...] | None  # None: the corpus does not answer it
    doc_id: str | None = None  # optional: the document that answers it (benchmarks)
    spans: tuple[tuple[int, int], ...] = ()  # optional: gold answers' [start, end) in doc_id's text


@dataclass(frozen=True)
class Outcome:
    case: Case
    hit_rank: int | None  # 1-based rank of the first passage that contains the evidence
    evidence_rank: int | None  # 1-based rank of the first passage whose highlights contain it
    doc_rank: int | None  # 1-based rank of the first passage from case.doc_id
    abstained: bool
    ms: float
    confidence: float | None = None  # the answer's
    answer_has_gold: bool | None = None  # judged only for cases with gold spans


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def load_cases(path: Path) -> list[Case]:
    """Read a question set; raises QAError naming the file and line of a malformed entry."""
    cases = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            question, evidence = item["question"], item["evidence"]
            if isinstance(evidence, str):
                evidence = [evidence]
            if not isinstance(question, str) or not (
                evidence is None or (isinstance(evidence, list) and all(isinstance(e, str) for e in evidence))
            ):
                raise TypeError
        except (ValueError, KeyError, TypeError) as exc:
            raise QAError(
                f"{path}:{number}: expected {{\"question\": str, \"evidence\": str | [str] | null}}"
            ) from exc
        cases.append(Case(question, None if evidence is None else tuple(evidence)))
    if not cases:
        raise QAError(f"{path}: no questions in the file")
    return cases


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKER = re.compile(r"\[\d+\]")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def squad_normalise(text: str) -> str:
    """SQuAD's answer normalisation: lower case, punctuation and a/an/the removed, spaces collapsed."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def has_gold(answer_text: str, golds: tuple[str, ...]) -> bool:
    """Whether the answer, its [n] markers removed, holds a gold answer as whole words."""
    said = f" {squad_normalise(_MARKER.sub(' ', answer_text))} "
    return any(f" {g} " in said for g in map(squad_normalise, golds) if g)


def _judge_spans(case: Case, answer: Answer, ms: float) -> Outcome:
    hit_rank = evidence_rank = doc_rank = None
    for p in answer.passages:
        if p.doc_id != case.doc_id:
            continue
        doc_rank = doc_rank or p.rank
        if hit_rank is None and any(p.start <= a and b <= p.end for a, b in case.spans):
            hit_rank = p.rank
        if evidence_rank is None and any(
            p.start + x <= a and b <= p.start + y for x, y in p.highlights for a, b in case.spans
        ):
            evidence_rank = p.rank
    gold = not answer.abstained and has_gold(answer.answer, case.evidence or ())
    return Outcome(case, hit_rank, evidence_rank, doc_rank, answer.abstained, ms, answer.confidence, gold)


def judge(case: Case, answer: Answer, ms: float) -> Outcome:
    """Where in the ranked passages the evidence (and the document) first appears."""
    if case.spans:
        return _judge_spans(case, answer, ms)
    hit_rank = evidence_rank = doc_rank = None
    wanted = [normalise(e) for e in case.evidence or ()]
    for p in answer.passages:
        text = normalise(p.text)
        if hit_rank is None and any(w in text for w in wanted):
            hit_rank = p.rank
        if evidence_rank is None and any(
            w in normalise(p.text[a:b]) for a, b in p.highlights for w in wanted
        ):
            evidence_rank = p.rank
        if doc_rank is None and p.doc_id == case.doc_id:
            doc_rank = p.rank
    return Outcome(case, hit_rank, evidence_rank, doc_rank, answer.abstained, ms, answer.confidence)


def evaluate(assistant, cases: Iterable[Case], k: int = 5) -> list[Outcome]:
    """Ask every case through `assistant.ask` (the /ask path) and judge the answer."""
    outcomes = []
    for case in cases:
        began = time.perf_counter()
        answer = assistant.ask(case.question, k=max(k, RANKED))
        ms = (time.perf_counter() - began) * 1000
        outcomes.append(judge(case, answer, ms))
    return outcomes


def share(ranks: list[int | None], n: int) -> float | None:
    """Share of the ranks that are at most n (None: not found)."""
    return round(sum(r is not None and r <= n for r in ranks) / len(ranks), 4) if ranks else None


def mrr(ranks: list[int | None]) -> float | None:
    """Mean reciprocal rank over the first RANKED (None or below: 0)."""
    if not ranks:
        return None
    return round(sum(1 / r for r in ranks if r is not None and r <= RANKED) / len(ranks), 4)


def summarise(outcomes: list[Outcome], k: int = 5) -> dict:
    """Metrics over answerable cases (hits, evidence, false abstention) and unanswerable ones."""
    answerable = [o for o in outcomes if o.case.evidence is not None]
    unanswerable = [o for o in outcomes if o.case.evidence is None]

    hits = [o.hit_rank for o in answerable]
    found = [o.evidence_rank for o in answerable]
    ms = np.array([o.ms for o in outcomes]) if outcomes else np.zeros(1)
    metrics = {
        "questions": len(outcomes),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "k": k,
        "hit@1": share(hits, 1),
        "hit@3": share(hits, 3),
        "hit@5": share(hits, 5),
        "mrr@10": mrr(hits),
        "evidence@1": share(found, 1),
        "evidence@3": share(found, 3),
        "abstained_unanswerable": sum(o.abstained for o in unanswerable),
        "abstention_rate": round(sum(o.abstained for o in unanswerable) / len(unanswerable), 4)
        if unanswerable else None,
        "false_abstentions": sum(o.abstained for o in answerable),
        "false_abstention_rate": round(sum(o.abstained for o in answerable) / len(answerable), 4)
        if answerable else None,
        "latency_ms": {"p50": round(float(np.percentile(ms, 50)), 1),
                       "p95": round(float(np.percentile(ms, 95)), 1)},
        "misses": [
            {"question": o.case.question, "answerable": o.case.evidence is not None, "hit_rank": o.hit_rank,
             "evidence_rank": o.evidence_rank, "abstained": o.abstained}
            for o in outcomes
            if (o.case.evidence is None) != o.abstained
            or (o.case.evidence is not None and o.evidence_rank != 1)
        ],
    }
    judged = [o.answer_has_gold for o in answerable if o.answer_has_gold is not None]
    if judged:
        metrics["answer_has_gold"] = round(sum(judged) / len(judged), 4)
    if any(o.case.doc_id for o in answerable):
        docs = [o.doc_rank for o in answerable]
        metrics.update({"doc_hit@1": share(docs, 1), "doc_hit@5": share(docs, 5), "doc_mrr@10": mrr(docs)})
    return metrics


def run_eval(assistant, path: Path, k: int = 5) -> dict:
    """Run the question set at `path` through `assistant.ask` and return its metrics (see summarise)."""
    return summarise(evaluate(assistant, load_cases(path), k), k)


def format_report(metrics: dict) -> str:
    """The metrics as a few lines of text for a terminal."""
    def num(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None else f"{value:.3f}"

    lines = [
        f"{metrics['questions']} questions: {metrics['answerable']} answerable, "
        f"{metrics['unanswerable']} unanswerable (k={metrics['k']})",
        f"retrieval  hit@1 {num('hit@1')}  hit@3 {num('hit@3')}  hit@5 {num('hit@5')}  "
        f"MRR@10 {num('mrr@10')}",
        f"evidence   @1 {num('evidence@1')}  @3 {num('evidence@3')}",
        f"abstention {metrics['abstained_unanswerable']}/{metrics['unanswerable']} unanswerable abstained, "
        f"{metrics['false_abstentions']}/{metrics['answerable']} answerable abstained by mistake",
        f"latency    p50 {metrics['latency_ms']['p50']:.0f} ms  p95 {metrics['latency_ms']['p95']:.0f} ms",
    ]
    if metrics.get("misses"):
        lines.append("misses (evidence not highlighted in the first passage, or abstention wrong):")
        for miss in metrics["misses"]:
            if miss["abstained"]:
                where = "abstained"
            elif not miss["answerable"]:
                where = "answered, should have abstained"
            else:
                hit, found = miss["hit_rank"], miss["evidence_rank"]
                where = (f"first hit at rank {hit}" if hit else "no passage holds the evidence") + (
                    f", evidence highlighted at rank {found}" if found else ", evidence not highlighted")
            lines.append(f"  - {miss['question']} ({where})")
    return "\n".join(lines)
