"""Extractive answers: evidence sentences chosen from the retrieved passages, cited as [n].

Sentence vectors were computed at index time, so choosing evidence costs one matrix product per
passage and no encoding beyond the question.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

import numpy as np

from . import confidence, lexical
from .chunking import Chunk
from .lexical import STOPWORDS
from .retrieval import Hit

ABSTAIN_ANSWER = "The indexed documents do not answer this question."
MAX_HIGHLIGHTS = 2  # per passage, by contract
# The answer quotes at most this many sentences, taken from the first ANSWER_PASSAGES passages
# only, so the answer (and the abstention) is the same whatever k the caller asks for (k >= 3).
MAX_ANSWER_SENTENCES = 3
ANSWER_PASSAGES = 3
# A sentence joins the answer only if it is nearly as relevant as the best one.
ANSWER_MARGIN = 0.1
# Below this best-sentence cosine an anchor sentence, if there is one, leads the evidence and answers
# (the former abstention threshold, under which both kinds of anchor were chosen).
ANCHOR_RELEVANCE = 0.35
# A question this short ("What is Article II?", "Toshiba") scores low against any sentence (0.11 to
# 0.33 against the ones that answer them), so a sentence holding all its content words answers it.
SHORT_QUESTION_WORDS = 3
# A passage's best sentences are highlighted down to this cosine: below the former abstention
# threshold (0.35), it raised dev evidence@3 from 0.76 to 0.78.
HIGHLIGHT_FLOOR = 0.25


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
    confidence: float  # estimated probability that the first passages answer the question (0..1)
    took_ms: float
    passages: list[Passage]

    def to_dict(self) -> dict:
        body = asdict(self)
        for p in body["passages"]:
            p["highlights"] = [list(h) for h in p["highlights"]]
        return body


def compose(
    question: str, query: np.ndarray, hits: list[Hit], min_confidence: float | None = None,
    idf: confidence.IdfLookup | None = None,
) -> Answer:
    """Highlight evidence sentences, write the answer with [rank] markers, or abstain.

    A passage's evidence is its two sentences most similar to the question (the contract allows
    two; on WikiQA the second raised evidence@1 from 0.54 to 0.77), never the document's title
    line, which resembles every question about the document without answering any. The answer's
    confidence is the shipped model's estimate that the first passages answer the question
    (confidence.py); it abstains below one threshold (`min_confidence`, default the model's), and an
    abstained answer highlights nothing. One documented override: two questions that embeddings
    score low (best sentence below ANCHOR_RELEVANCE) are answered by an *anchor* sentence instead,
    and their confidence raised to at least the threshold: one that only points at a numbered part
    ("what is recommendation 3?") by that part's heading, and a short keyword question ("Toshiba",
    "lost decade") by a sentence of the first passages that holds all its words.
    """
    model = confidence.shipped()
    threshold = model.threshold if min_confidence is None else min_confidence
    ranked, features, pointed = assess(question, query, hits, idf)
    leading = ranked[:ANSWER_PASSAGES]
    best = max((float(sims[order[0]]) for _, sims, order in leading if order), default=-1.0)
    estimate = model.probability(features)
    anchor = _anchor(question, leading, pointed) if best < ANCHOR_RELEVANCE else None
    if anchor is not None:  # the anchor leads its passage's evidence
        hit, sims, order = ranked[anchor[0]]
        ranked[anchor[0]] = (hit, sims, [anchor[1]] + [i for i in order if i != anchor[1]])
    if anchor is not None or pointed:
        estimate = max(estimate, threshold)
    abstain = estimate < threshold

    passages = []
    for rank, (hit, sims, order) in enumerate(ranked, start=1):
        chunk = hit.stored.chunk
        chosen = [] if abstain else [
            i for i in order[:MAX_HIGHLIGHTS]
            if sims[i] >= HIGHLIGHT_FLOOR or (anchor is not None and (rank - 1, i) == anchor)
        ]
        passages.append(
            Passage(
                rank=rank, doc_id=chunk.doc_id, title=hit.stored.title, section=chunk.section,
                page=chunk.page, start=chunk.start, end=chunk.end, text=chunk.text, score=round(hit.score, 4),
                highlights=sorted(_relative(chunk, i) for i in chosen),
            )
        )
    if abstain:
        return Answer(question, ABSTAIN_ANSWER, True, round(estimate, 4), 0.0, passages)

    if anchor is not None:
        candidates = [(1.0, anchor[0] + 1, anchor[1])]
    else:  # a question about a numbered part is answered from that part
        candidates = [
            (float(sims[order[0]]), rank, order[0])
            for rank, (_, sims, order) in enumerate(leading[:1] if pointed else leading, start=1)
            if order and sims[order[0]] >= best - ANSWER_MARGIN
        ]
    parts, seen = [], set()
    for _, rank, i in sorted(candidates, key=lambda c: (-c[0], c[1]))[:MAX_ANSWER_SENTENCES]:
        passage = passages[rank - 1]
        a, b = _relative(hits[rank - 1].stored.chunk, i)
        sentence = _one_line(passage.text[a:b])
        if sentence.lower() not in seen:
            seen.add(sentence.lower())
            parts.append(f"{sentence} [{rank}]")
    return Answer(question, " ".join(parts), False, round(estimate, 4), 0.0, passages)


def _anchor(question: str, leading: list, pointed: bool) -> tuple[int, int] | None:
    """(passage index, sentence index) of the sentence that answers a question embeddings score low:
    the heading of the numbered part the question points at, or, for a question of at most
    SHORT_QUESTION_WORDS content words, the first sentence of the first passages that holds them all."""
    if pointed:
        heading = _heading_sentence(leading[0][0])
        return None if heading is None else (0, heading)
    wanted = _stems(question)
    if not 0 < len(wanted) <= SHORT_QUESTION_WORDS:
        return None
    for p, (hit, _, order) in enumerate(leading):
        chunk = hit.stored.chunk
        for i in sorted(order):
            a, b = _relative(chunk, i)
            if wanted <= _stems(chunk.text[a:b]):
                return p, i
    return None


def _relative(chunk: Chunk, i: int) -> tuple[int, int]:
    """Offsets of the chunk's i-th sentence within the chunk's text."""
    start, end = chunk.sentences[i]
    return start - chunk.start, end - chunk.start


def _heading_sentence(hit: Hit) -> int | None:
    """Index of the sentence that holds the passage's section heading, if the passage starts with it."""
    chunk = hit.stored.chunk
    heading = _one_line(chunk.section or "")
    for i in range(len(chunk.sentences)):
        a, b = _relative(chunk, i)
        if heading and heading.startswith(_one_line(chunk.text[a:b])):
            return i
    return None


def _is_title(hit: Hit, i: int) -> bool:
    chunk = hit.stored.chunk
    if chunk.ordinal != 0:
        return False
    a, b = _relative(chunk, i)
    return _one_line(chunk.text[a:b]) == _one_line(hit.stored.title)


def assess(
    question: str, query: np.ndarray, hits: list[Hit], idf: confidence.IdfLookup | None = None,
) -> tuple[list[tuple[Hit, np.ndarray, list[int]]], np.ndarray, bool]:
    """Each passage's sentences ranked by cosine (title lines left out), the confidence model's
    signals for the first passages, and whether the first passage is the numbered part the question
    names. bench/fit_confidence.py fits the model on exactly these signals."""
    ranked: list[tuple[Hit, np.ndarray, list[int]]] = []
    for hit in hits:
        chunk = hit.stored.chunk
        sims = hit.stored.sentence_vectors @ query if chunk.sentences else np.zeros(0)
        order = [int(i) for i in np.argsort(-sims, kind="stable") if not _is_title(hit, int(i))]
        ranked.append((hit, sims, order))
    leading = [(hit, sims, order) for hit, sims, order in ranked[:ANSWER_PASSAGES] if order]
    texts = [hit.stored.chunk.text for hit, _, _ in ranked[:ANSWER_PASSAGES]]
    evidence = []
    for hit, _, order in leading:
        a, b = _relative(hit.stored.chunk, order[0])
        evidence.append(hit.stored.chunk.text[a:b])
    features = confidence.signals(
        question,
        sentence_best=[float(sims[order[0]]) for _, sims, order in leading],
        sentence_all=[float(sims[i]) for _, sims, order in leading for i in order],
        passage_texts=texts,
        evidence_texts=evidence,
        scores=[hit.score for hit in hits[:ANSWER_PASSAGES]],
        unmatched=unmatched_names(question, texts),
        idf=idf,
    )
    return ranked, features, bool(hits) and hits[0].referenced


_NAME = re.compile(r"[A-Z][\w’'-]*|\d[\w-]*")
_POSSESSIVE = re.compile(r"['’]s$")
_ACRONYM = re.compile(r"[A-Z][A-Z0-9]+s?")
_WORD = re.compile(r"\w+")
_LETTERS = re.compile(r"[A-Za-z]+")


def unmatched_names(question: str, texts: list[str]) -> list[str]:
    """Names, acronyms and numbers of the question (its first word aside) that no text contains.

    A question in capitals throughout (common in WikiQA) has no names to tell apart, so only its
    numbers count. Names and numbers match ignoring case, by substring ("70s" matches "1970s");
    an acronym matches with its case, dotted ("U.S.") or spelled out ("United States").
    """
    shouting = sum(c.isupper() for c in question) > sum(c.islower() for c in question)
    joined = " ".join(texts)
    haystack = joined.lower()
    names = []
    for m in _NAME.finditer(question):
        word = _POSSESSIVE.sub("", m.group()).strip("'’-")
        if m.start() == 0 or not word or word.lower() in STOPWORDS or (shouting and not word[0].isdigit()):
            continue
        found = _acronym_in(word, joined) if _ACRONYM.fullmatch(word) else word.lower() in haystack
        if not found:
            names.append(word)
    return names


def _acronym_in(acronym: str, text: str) -> bool:
    """"GDP" in "GDP", "G.D.P." or "gross domestic product" (initials of consecutive words, short
    words such as "for" and "and" skipped, as in "Organization for Economic Cooperation")."""
    letters = acronym[:-1] if acronym.endswith("s") else acronym  # "SMEs"
    if re.search(rf"\b{re.escape(letters)}s?\b", text.replace(".", "")):
        return True
    words = [w for w in _LETTERS.findall(text) if w.lower() not in STOPWORDS]
    if len(letters) < 3:  # two initials match too much by chance unless the words are capitalised
        words = [w if w[0].isupper() else "_" for w in words]
    initials = "".join(w[0] for w in words).lower()
    return letters.lower() in initials


def _stems(text: str) -> set[str]:
    return set(lexical.terms(text))


def word_coverage(question: str, texts: list[str]) -> float:
    """Share of the question's content words (stemmed, stopwords aside) that the texts contain."""
    wanted = _stems(question)
    return len(wanted & _stems(" ".join(texts))) / len(wanted) if wanted else 1.0


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
