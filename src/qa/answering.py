"""Extractive answers: evidence sentences chosen from the retrieved passages, cited as [n].

Sentence vectors were computed at index time, so choosing evidence costs one matrix product per
passage and no encoding beyond the question.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from .retrieval import Hit

ABSTAIN_ANSWER = "The indexed documents do not answer this question."
MAX_HIGHLIGHTS = 2  # per passage, by contract
MAX_ANSWER_SENTENCES = 3
# A sentence joins the answer only if it is nearly as relevant as the best one.
ANSWER_MARGIN = 0.1
SECOND_HIGHLIGHT_MARGIN = 0.08


@dataclass
class Passage:
    rank: int
    doc_id: str
    title: str
    section: str | None
    page: int | None
    start: int
    end: int
    text: str
    score: float
    highlights: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    took_ms: float
    passages: list[Passage]

    def to_dict(self) -> dict:
        body = asdict(self)
        for p in body["passages"]:
            p["highlights"] = [list(h) for h in p["highlights"]]
        return body


def compose(question: str, query: np.ndarray, hits: list[Hit], min_relevance: float) -> Answer:
    """Pick evidence sentences, write the answer with [rank] markers, or abstain."""
    passages: list[Passage] = []
    candidates: list[tuple[float, int, tuple[int, int]]] = []  # (similarity, rank, absolute span)
    for rank, hit in enumerate(hits, start=1):
        chunk = hit.stored.chunk
        sims = hit.stored.sentence_vectors @ query if len(chunk.sentences) else np.zeros(0)
        order = [int(i) for i in np.argsort(-sims)]
        chosen = [i for i in order[:MAX_HIGHLIGHTS] if sims[i] >= min_relevance]
        if len(chosen) == 2 and sims[chosen[1]] < sims[chosen[0]] - SECOND_HIGHLIGHT_MARGIN:
            chosen = chosen[:1]
        highlights = sorted(chunk.sentences[i] for i in chosen)
        if chosen:
            candidates.append((float(sims[chosen[0]]), rank, chunk.sentences[chosen[0]]))
        passages.append(
            Passage(
                rank=rank, doc_id=chunk.doc_id, title=hit.stored.title, section=chunk.section, page=chunk.page,
                start=chunk.start, end=chunk.end, text=chunk.text, score=round(hit.score, 4),
                highlights=[(s - chunk.start, e - chunk.start) for s, e in highlights],
            )
        )
    if not candidates:
        return Answer(question, ABSTAIN_ANSWER, True, 0.0, passages)
    best = max(c[0] for c in candidates)
    picked = [c for c in sorted(candidates, key=lambda c: -c[0]) if c[0] >= best - ANSWER_MARGIN]
    parts, seen = [], set()
    for _, rank, (s, e) in picked[:MAX_ANSWER_SENTENCES]:
        passage = passages[rank - 1]
        sentence = _one_line(passage.text[s - passage.start : e - passage.start])
        if sentence.lower() not in seen:
            seen.add(sentence.lower())
            parts.append(f"{sentence} [{rank}]")
    return Answer(question, " ".join(parts), False, 0.0, passages)


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
