"""Extractive answers: evidence sentences chosen from the retrieved passages, cited as [n].

Sentence vectors were computed at index time, so choosing evidence costs one matrix product per
passage and no encoding beyond the question.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import ClassVar

import numpy as np

from qa.answering import confidence
from qa.answering.evidence import (
    SentenceScores,
    chunk_terms,
    highlight_order,
    kept_sentences,
    roles,
    sentence_terms,
    stems,
)
from qa.answering.retrieval import Hit
from qa.indexing.lexical import STOPWORDS
from qa.indexing.sentences import one_line
from qa.indexing.store import StoredChunk
from qa.reading.chunking import Chunk

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
# A sentence of another document than the first passage's joins the answer only when its evidence
# is about as strong: its cosine at most this far below the first passage's evidence.
OTHER_DOCUMENT_MARGIN = 0.02
# A why, when, how-many, how or what-should question is answered by the first passage's best sentence
# that holds what it asks for (a reason, a date, a count, a means, a proposal), looked for among its
# this many best evidence sentences.
CUE_DEPTH = 4
# A list is quoted whole: its lead-in and up to this many items, as one of the answer's sentences.
MAX_LIST_ITEMS = 10
# A proposal that leads the answer brings up to this many following sentences that carry it on.
MAX_CONTINUATION = 2
# A sentence of another passage answers too only when it holds at least this share of the question's
# words that the first sentence holds (IDF-weighted, evidence.sentence_coverage), beside being close in
# meaning. Applied to the first passage's own second sentence as well, it cost SQuAD's answer-has-gold
# 0.026 (its second sentence often holds the gold span in other words); on other passages, nothing.
# That sentence is held to a weaker test of the same two views (`_answer_sentences`): with any share
# above 0 (0.25 alike) answer-has-gold moved -0.004, at 0.34 -0.008 and at 0.5 -0.012 (session 6,
# docs/research.md). Its highlight keeps the contract's second place: every form of the test tried
# on highlights cost WikiQA's evidence@1 0.012 to 0.025 (the second highlight brings 0.185 of it).
EXTRA_COVERAGE = 0.5


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
    # The document's metadata (metadata.py), filled in by the service; null when unknown.
    authors: list[str] | None = None
    publisher: str | None = None
    date: str | None = None
    # The passage's cosine similarity to the question, for the web page's "why this passage". A class
    # attribute that compose() sets per passage, not a field: the /ask body (asdict, the API's
    # response model) keeps to the contract, whose `score` is the fused ranking score.
    semantic: ClassVar[float | None] = None


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
    term_weights: dict[str, float] | None = None, absent_terms: frozenset[str] = frozenset(),
    sentences: SentenceScores | None = None,
) -> Answer:
    """Highlight evidence sentences, write the answer with [rank] markers, or abstain.

    A passage's evidence is two sentences (the contract allows two): the one that holds most of the
    question's words (IDF-weighted, `term_weights`; ties: evidence.highlight_order), then the one
    closest in meaning, never the document's title line, which resembles every question about the
    document without answering any. The answer's confidence is the shipped model's estimate that
    the first passages answer the question (confidence.py); it abstains below one threshold
    (`min_confidence`, default the model's), and an abstained answer highlights nothing. One
    documented override: two questions that embeddings score low (best sentence below
    ANCHOR_RELEVANCE) are answered by an *anchor* sentence instead, and their confidence raised to at
    least the threshold: one that only points at a numbered part ("what is recommendation 3?") by
    that part's heading, and a short keyword question ("Toshiba", "lost decade") by a sentence of the
    first passages that holds all its words. The answer's sentences are chosen by `_answer_sentences`.
    `sentences`: the passages' sentence signals that retrieval computed for this question (made here
    otherwise).
    """
    model = confidence.shipped()
    threshold = model.threshold if min_confidence is None else min_confidence
    sentences = sentences or SentenceScores(query, term_weights or {})
    ranked, features, pointed = assess(question, query, hits, term_weights, absent_terms, sentences)
    leading = ranked[:ANSWER_PASSAGES]
    best = max((float(sims[order].max()) for _, sims, order in leading if order), default=-1.0)
    estimate = model.probability(features)
    anchor = _anchor(question, leading, pointed) if best < ANCHOR_RELEVANCE else None
    if anchor is not None:  # the anchor leads its passage's evidence
        hit, sims, order = ranked[anchor[0]]
        ranked[anchor[0]] = (hit, sims, [anchor[1]] + [i for i in order if i != anchor[1]])
    saying = _saying(question, ranked[0]) if ranked and anchor is None and not pointed else None
    if saying is not None:  # it leads the first passage's evidence, as an anchor does
        hit, sims, order = ranked[0]
        ranked[0] = (hit, sims, [saying] + [i for i in order if i != saying])
        leading = ranked[:ANSWER_PASSAGES]
    if anchor is not None or pointed:
        estimate = max(estimate, threshold)
    abstain = estimate < threshold

    passages = []
    for rank, (hit, sims, order) in enumerate(ranked, start=1):
        chunk = hit.stored.chunk
        chosen = [] if abstain else [  # the best two of the evidence order that reach the floor
            i for i in order
            if sims[i] >= HIGHLIGHT_FLOOR or (anchor is not None and (rank - 1, i) == anchor)
        ][:MAX_HIGHLIGHTS]
        passages.append(
            Passage(
                rank=rank, doc_id=chunk.doc_id, title=hit.stored.title, section=chunk.section,
                page=chunk.page, start=chunk.start, end=chunk.end, text=chunk.text, score=round(hit.score, 4),
                highlights=_highlights(hit.stored, chosen),
            )
        )
        passages[-1].semantic = round(hit.dense, 4)
    if abstain:
        return Answer(question, ABSTAIN_ANSWER, True, estimate, 0.0, passages)

    if anchor is not None:
        candidates = [(anchor[0] + 1, anchor[1])]
    else:  # a question about a numbered part is answered from that part
        candidates = _answer_sentences(question, leading[:1] if pointed else leading, best, sentences)
    parts, seen = [], set()
    for rank, i in _completed(candidates, ranked):
        sentence = one_line(_sentence(hits[rank - 1].stored.chunk, i))
        if sentence.lower() not in seen:
            seen.add(sentence.lower())
            parts.append(f"{sentence} [{rank}]")
    return Answer(question, " ".join(parts), False, estimate, 0.0, passages)


def _answer_sentences(question: str, leading: list, best: float, sentences: SentenceScores) -> list[tuple[int, int]]:
    """(rank, sentence index) of the sentences that answer, in the order the answer quotes them.

    The first passage's best evidence comes first (retrieval ranks passages better than one
    sentence's cosine does; for a why, when, how-many, how or what-should question, `_saying` put the
    sentence that holds what is asked first), then its second evidence sentence when it is close in
    meaning (within ANSWER_MARGIN of the best cosine) and it answers by one of the two views the first
    was chosen by: as close in meaning as the first, or holding some of the question's words (a
    sentence below the first in meaning that shares no word with the question is only next in rank).
    A sentence of another passage follows only when it answers too, by the evidence the first one
    has: as close in meaning (of another document, about as close as the first), holding the
    question's words (at least EXTRA_COVERAGE of the first one's share) and, when the first holds
    what the question's kind asks for (a date, a reason...), holding it too. Being next in rank is
    not enough: a sentence about another period or topic beside a right answer reads as part of it."""
    if not leading or not leading[0][2]:
        return []
    first_hit, first_sims, first_order = leading[0]
    lead = first_order[0]
    lead_doc = first_hit.stored.chunk.doc_id
    lead_strength = float(first_sims[lead])
    first_coverage = sentences.coverage(first_hit.stored)
    lead_coverage = float(first_coverage[lead])
    lead_roles = roles(first_hit.stored)[lead]
    asked = [k for k in question_kinds(question) if getattr(lead_roles, k)]
    out: list[tuple[int, int]] = [(1, lead)]
    for rank, (hit, sims, order) in enumerate(leading, start=1):
        picks = [i for i in order if sims[i] >= HIGHLIGHT_FLOOR][:MAX_HIGHLIGHTS] or order[:1]
        coverage = first_coverage if rank == 1 else sentences.coverage(hit.stored)
        held = roles(hit.stored) if asked and rank > 1 else ()
        for i in picks:
            if (rank, i) in out or sims[i] < best - ANSWER_MARGIN:
                continue
            if rank == 1 and sims[i] < lead_strength and coverage[i] <= 0:
                continue
            if hit.stored.chunk.doc_id != lead_doc and sims[i] < lead_strength - OTHER_DOCUMENT_MARGIN:
                continue
            if rank > 1 and coverage[i] < EXTRA_COVERAGE * lead_coverage - 1e-9:
                continue
            if rank > 1 and asked and not any(getattr(held[i], k) for k in asked):
                continue
            out.append((rank, i))
    return out


# What the question asks for, by its first words: a reason, a date, a count, what should be done, or
# (the interrogative "how" not followed by a degree word) how something is done. Each is a role a
# sentence can hold (reading/sentence_roles.py); the first passage's best evidence sentence holding
# it leads the answer.
_WORDS = re.compile(r"[a-z']+")
_WHEN = re.compile(
    r"^(?:when\b|(?:in |by |during |since )?(?:what|which) (?:year|years|date|day|month|decade|century)\b)")
_COUNT = re.compile(r"^(?:how (?:many|much)\b|(?:what|which) (?:number|amount|percentage|share|proportion) of\b)")
_SHOULD = {"should", "recommend", "recommends", "recommended", "recommendation", "recommendations", "propose",
           "proposes", "proposed", "proposal", "proposals", "suggest", "suggests", "suggested", "urge", "urges"}

# "How" before one of these asks how much or how long, not how something is done: "how many seasons
# were there", "how old is", "how long did it take" want a quantity, which no cue word marks.
_DEGREE = {"many", "much", "long", "old", "far", "big", "large", "tall", "high", "often", "soon", "deep",
           "wide", "fast", "thick", "heavy", "small", "short", "early", "late", "young", "rich"}


def question_kinds(question: str) -> list[str]:
    """The roles (SentenceRole fields) a sentence answering the question holds, most telling first:
    `reason` (why), `date` (when, what year), `number` (how many, how much), `proposal` (what should
    be done, what is recommended or proposed), `means` (how something is done); [] for the rest."""
    words = _WORDS.findall(question.lower())
    opening = " ".join(words[:4])
    kinds = []
    if words[:1] == ["why"]:
        kinds.append("reason")
    elif _WHEN.match(opening):
        kinds.append("date")
    elif _COUNT.match(opening):
        kinds.append("number")
    elif words[:1] == ["how"] and len(words) > 1 and words[1] not in _DEGREE:
        kinds.append("means")
    if _SHOULD.intersection(words):
        kinds.append("proposal")
    return kinds


def _saying(question: str, first: tuple) -> int | None:
    """The first passage's best evidence sentence (among its CUE_DEPTH best) that holds what the
    question asks for (`question_kinds`: a reason, a date, a count, a proposal, a means), when a
    sentence before it does not; a heading, lead-in or table cell aside."""
    kinds = question_kinds(question)
    hit, _, order = first
    if not kinds:
        return None
    held = roles(hit.stored)
    for i in order[:CUE_DEPTH]:
        chunk = hit.stored.chunk
        if any(getattr(held[i], k) for k in kinds) and not _incomplete(_sentence(chunk, i), chunk):
            return i
    return None


def _completed(candidates: list[tuple[int, int]], ranked: list) -> list[tuple[int, int]]:
    """The sentences the answer quotes: each candidate with what it brings, at most
    MAX_ANSWER_SENTENCES in all beyond what the first brings.

    - A lead-in ending in a colon brings its items (sentence_roles), up to MAX_LIST_ITEMS: it is
      never quoted alone, and a list is quoted whole or not at all.
    - A first candidate that is a heading, a lead-in whose items are not in view, or a lone table cell
      brings the passage's next sentences (its body, up to a complete sentence; a lead-in's next ones).
    - A first candidate that proposes what should be done brings the sentences right after it that
      carry it on (the how, the cost, the conditions), up to MAX_CONTINUATION.
    An incomplete sentence elsewhere adds nothing to the sentences around it: dropped."""
    out: list[tuple[int, int]] = []
    for n, (rank, i) in enumerate(candidates):
        stored = ranked[rank - 1][0].stored
        chunk = stored.chunk
        lead_in = _sentence(chunk, i).rstrip().endswith(":")
        held = roles(stored) if lead_in or n == 0 else ()
        unit = [(rank, i)]
        if lead_in and held[i].items_end > i:
            unit += [(rank, j) for j in range(i + 1, min(held[i].items_end, i + MAX_LIST_ITEMS) + 1)]
        elif _incomplete(_sentence(chunk, i), chunk):
            if n > 0 or i + 1 >= len(chunk.sentences):
                continue
            for j in range(i + 1, len(chunk.sentences)):
                if len(unit) >= MAX_ANSWER_SENTENCES:
                    break
                unit.append((rank, j))
                if not lead_in and not _incomplete(_sentence(chunk, j), chunk):
                    break
        elif n == 0 and held[i].proposal:
            j = i + 1
            while j < len(chunk.sentences) and held[j].continues and len(unit) <= MAX_CONTINUATION:
                unit.append((rank, j))
                j += 1
        unit = [c for c in unit if c not in out]
        if out and len(out) + len(unit) > MAX_ANSWER_SENTENCES:
            continue
        out += unit
    return out or candidates[:1]


def _highlights(stored: StoredChunk, chosen: list[int]) -> list[tuple[int, int]]:
    """Offsets within the passage of its chosen evidence sentences; a lead-in's span runs to the end
    of its last item (the contract lets a list's items form one span), and a sentence already inside
    such a span adds none of its own."""
    if not any(_sentence(stored.chunk, i).rstrip().endswith(":") for i in chosen):  # no lead-in: no roles needed
        return sorted(_relative(stored.chunk, i) for i in chosen)
    held = roles(stored)
    spans = []
    for i in chosen:
        a, b = _relative(stored.chunk, i)
        if held[i].lead_in and held[i].items_end > i:
            b = _relative(stored.chunk, held[i].items_end)[1]
        spans.append((a, b))
    return sorted(s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans))


_CELL = re.compile(r"[\W\d_]*")


def _incomplete(sentence: str, chunk: Chunk) -> bool:
    """A heading (the section's title line, or a short line without a verb's full stop), a lead-in
    that ends in a colon, or a lone table cell (a number, or a few words without punctuation)."""
    return _incomplete_in(sentence, chunk.section)


# Whether a sentence is incomplete depends on the document alone: kept for the sentences seen most
# recently (an answer asks it of the first passages' best sentences, again and again).
INCOMPLETE_KEPT = 16384


@lru_cache(maxsize=INCOMPLETE_KEPT)
def _incomplete_in(sentence: str, section: str | None) -> bool:
    text = one_line(sentence)
    if text.endswith(":") or _CELL.fullmatch(text):
        return True
    if section and one_line(section).startswith(text):
        return True
    return len(text.split()) <= 6 and text[-1:] not in ".!?\"'”’)"


def _sentence(chunk: Chunk, i: int) -> str:
    a, b = _relative(chunk, i)
    return chunk.text[a:b]


def _anchor(question: str, leading: list, pointed: bool) -> tuple[int, int] | None:
    """(passage index, sentence index) of the sentence that answers a question embeddings score low:
    the heading of the numbered part the question points at, or, for a question of at most
    SHORT_QUESTION_WORDS content words, the first sentence of the first passages that holds them all."""
    if pointed:
        heading = _heading_sentence(leading[0][0])
        return None if heading is None else (0, heading)
    wanted = stems(question)
    if not 0 < len(wanted) <= SHORT_QUESTION_WORDS:
        return None
    for p, (hit, _, order) in enumerate(leading):
        held = sentence_terms(hit.stored)
        for i in sorted(order):
            if wanted <= held[i]:
                return p, i
    return None


def _relative(chunk: Chunk, i: int) -> tuple[int, int]:
    """Offsets of the chunk's i-th sentence within the chunk's text."""
    start, end = chunk.sentences[i]
    return start - chunk.start, end - chunk.start


def _heading_sentence(hit: Hit) -> int | None:
    """Index of the sentence that holds the passage's section heading, if the passage starts with it."""
    chunk = hit.stored.chunk
    heading = one_line(chunk.section or "")
    for i in range(len(chunk.sentences)):
        a, b = _relative(chunk, i)
        if heading and heading.startswith(one_line(chunk.text[a:b])):
            return i
    return None


def assess(
    question: str, query: np.ndarray, hits: list[Hit], term_weights: dict[str, float] | None = None,
    absent_terms: frozenset[str] = frozenset(), sentences: SentenceScores | None = None,
) -> tuple[list[tuple[Hit, np.ndarray, list[int]]], np.ndarray, bool]:
    """Each passage's sentences in evidence order (title lines left out; see compose), the confidence
    model's signals for the first passages, and whether the first passage is the numbered part the
    question names. bench/fit_confidence.py fits the model on exactly these signals. term_weights:
    the IDF of each of the question's distinct terms, in its order (Words.idf); absent_terms: those no
    chunk holds (Words.absent); sentences: the passages' sentence signals computed for the question
    already (retrieval's; made here otherwise)."""
    sentences = sentences or SentenceScores(query, term_weights or {})
    ranked: list[tuple[Hit, np.ndarray, list[int]]] = []
    for hit in hits:
        chunk = hit.stored.chunk
        keep = kept_sentences(hit.stored).tolist()
        sims = sentences.cosines(hit.stored) if chunk.sentences else np.zeros(0)
        coverage = sentences.coverage(hit.stored)
        every = len(keep) == len(sims)  # all but a document's first passage: no copies to make
        order = [keep[j] for j in highlight_order(
            sims if every else sims[keep], coverage if every else coverage[keep], opening=chunk.ordinal == 0,
            complete=lambda j, chunk=chunk, keep=keep: not _incomplete(_sentence(chunk, keep[j]), chunk),
        )]
        ranked.append((hit, sims, order))
    leading = [(hit, sims, order) for hit, sims, order in ranked[:ANSWER_PASSAGES] if order]
    texts = [hit.stored.chunk.text for hit, _, _ in ranked[:ANSWER_PASSAGES]]
    # A name or number is looked for in the first passages of the first one's document: the answer
    # quotes that document, so another document's passage naming it supports nothing.
    first_doc = hits[0].stored.chunk.doc_id if hits else None
    own = [hit.stored.chunk.text for hit, _, _ in ranked[:ANSWER_PASSAGES] if hit.stored.chunk.doc_id == first_doc]
    evidence = [(hit, sims, i) for hit, sims, order in leading for i in order[:MAX_HIGHLIGHTS]]
    features = confidence.signals(
        question,
        sentence_best=[float(sims[order].max()) for _, sims, order in leading],
        sentence_all=[float(sims[i]) for _, sims, order in leading for i in order],
        passage_texts=texts,
        evidence_texts=[_sentence(hit.stored.chunk, i) for hit, _, i in evidence],
        passage_terms=[chunk_terms(hit.stored) for hit, _, _ in ranked[:ANSWER_PASSAGES]],
        evidence_terms=[sentence_terms(hit.stored)[i] for hit, _, i in evidence],
        scores=[hit.score for hit in hits[:ANSWER_PASSAGES]],
        unmatched=unmatched_names(question, own),
        weights=term_weights,
        evidence_cosines=[float(sims[i]) for _, sims, i in evidence],
        absent=absent_terms,
        words=list(term_weights) if term_weights is not None else None,  # its keys: the question's terms
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
    shouting = sum(map(str.isupper, question)) > sum(map(str.islower, question))
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


def word_coverage(question: str, texts: list[str]) -> float:
    """Share of the question's content words (stemmed, stopwords aside) that the texts contain."""
    wanted = stems(question)
    return len(wanted & stems(" ".join(texts))) / len(wanted) if wanted else 1.0
