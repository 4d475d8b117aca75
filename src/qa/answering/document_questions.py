"""Questions about a document itself (who wrote it, who published it, when) answered from its metadata.

Retrieval cannot answer them: no sentence of a document resembles "who wrote the report?" more than
its other sentences do. So the question's kind is recognised by a small set of general patterns, the
document it is about is chosen (the one it names by title, else the best-retrieved one), and the
answer is the metadata value, citing the line it was read from (a byline, a copyright or date line)
and highlighting it, or, for a value only in the HTML <meta> or PDF document information, saying so
and citing the document's first passage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from qa.answering.answers import Answer, Passage
from qa.answering.retrieval import Hit
from qa.indexing import lexical, naming
from qa.indexing.store import Generation, StoredChunk
from qa.reading.metadata import METADATA, Metadata

_VERB_WROTE = r"(?:wrote|authored|co-?authored|penned)"
_VERB_PUBLISHED = r"(?:published|issued|released|produced|put out)"
_ORG = r"(?:organi[sz]ation|institution|institute|publisher|think[- ]tank|body|group|company|outlet|centre|center)"
_WHEN_VERB = rf"(?:first )?(?:{_VERB_PUBLISHED}|written|authored|dated)"
_CAME_OUT = r"(?:come out|appear|get published|go to press)"
_DATE_OF = r"(?:(?:publication |release |issue )?date|(?:publication |release )year)"

# Each pattern matches a whole question (lower case, final punctuation removed); `obj` is what the
# question is about ("the report", "the article ii mandate"), absent when it names nothing.
_WRITERS = r"(?:authors?|writers?|co-?authors?)"
_OWNER = r"(?P<obj>.+?)(?:'s|') "  # "the report's authors"

PATTERNS: dict[str, list[re.Pattern]] = {
    "authors": [re.compile(p) for p in (
        rf"who {_VERB_WROTE}(?: (?P<obj>.+))?",
        rf"who (?:is|are|was|were) (?:the )?{_WRITERS}(?: of (?P<obj>.+))?",
        rf"who (?:is|are|was|were) {_OWNER}{_WRITERS}",
        rf"(?:what|which) (?:is|are|was|were) the (?:names? of the )?{_WRITERS}(?: of (?P<obj>.+))?",
        rf"(?:what|which) (?:is|are|was|were) {_OWNER}{_WRITERS}",
        rf"(?:which|what) (?:{_WRITERS}|people|researchers|scholars|experts) {_VERB_WROTE} (?P<obj>.+)",
        rf"(?:name|list|give me) the {_WRITERS}(?: of (?P<obj>.+))?",
        rf"(?:the )?{_WRITERS} of (?P<obj>.+)",
        r"(?:who|whom) (?:is|was) (?P<obj>.+?) (?:written |authored )?by",
        r"(?:by whom|who) (?:is|was|were) (?P<obj>.+?) (?:written|authored)(?: by)?",
        r"(?P<obj>.+?) (?:was |were )?(?:written|authored) by whom",
        r"whose (?P<obj>.+?) is (?:this|it|that)",  # "whose report is this?"
    )],
    "publisher": [re.compile(p) for p in (
        rf"who {_VERB_PUBLISHED}(?: (?P<obj>.+))?",
        rf"(?:which|what) {_ORG} (?:{_VERB_PUBLISHED}|wrote|is behind|was behind)(?: (?P<obj>.+))?",
        r"(?:who|what|which) (?:is|was) the publisher(?: of (?P<obj>.+))?",
        rf"(?:who|what|which) (?:is|was) {_OWNER}publisher",
        r"(?:the )?publisher of (?P<obj>.+)",
        rf"(?:by whom|who|(?:which|what) {_ORG}) (?:is|was) (?P<obj>.+?) {_VERB_PUBLISHED}(?: by)?",
        rf"(?:which|what) {_ORG} (?:is|was) (?P<obj>.+?) (?:from|by)",
    )],
    "date": [re.compile(p) for p in (
        rf"when (?:was|were|is) (?P<obj>.+?) {_WHEN_VERB}",
        rf"(?:when|(?:in )?(?:what|which) (?:year|month)) did (?P<obj>.+?) {_CAME_OUT}",
        rf"(?:in )?(?:what|which) (?:year|month|date|day) (?:was|were|is) (?P<obj>.+?) {_WHEN_VERB}",
        r"(?:when|(?:what|which) year) (?:is|was) (?P<obj>.+?) from",
        rf"(?:what|which) (?:is|was) the {_DATE_OF} of (?P<obj>.+)",
        rf"(?:what|which) (?:is|was) {_OWNER}{_DATE_OF}",
        r"(?:the )?(?:publication|release) (?:date|year)(?: of (?P<obj>.+))?",
    )],
}
# Not fitted like the passages' confidence (confidence.py): the first passage holds the very line the
# value was read from, or, for HTML <meta> and PDF information, the value is the document's own word
# but no passage shows it.
CITED_LINE_CONFIDENCE = 1.0
METADATA_CONFIDENCE = 0.9
# A question about "the report" or "this paper" is about a document without naming it.
GENERIC = frozenset(
    "it this that report document paper article study book text piece memo memorandum brief publication "
    "essay page file work analysis note notes source website site post chapter".split()
)
_DETERMINERS = frozenset("the a an this that these those your its".split())
_PREPOSITION = re.compile(r"\s(?:on|about|of|from|by|for|regarding|concerning|in|with)\s")
# A question names a document when the title's main part (before a colon) is all in it, or it holds
# at least this share of the title's content words; and this share of its own words are the title's.
TITLE_SHARE = 0.5
OBJECT_SHARE = 0.6

@dataclass(frozen=True)
class DocumentQuestion:
    kind: str  # "authors" | "publisher" | "date"
    about: str  # what the question names ("" when nothing), lower case


_CONTRACTED = re.compile(r"\b(who|what|when|where)'s\b")
_LEAD_IN = re.compile(r"^(?:so|and|but|tell me|please|do you know|can you tell me)[, ]+")


def recognise(question: str) -> DocumentQuestion | None:
    """The kind of document question this is, or None for any other question."""
    text = " ".join(question.lower().replace("’", "'").split()).rstrip("?.! ")
    text = _CONTRACTED.sub(r"\1 is", text)
    text = _LEAD_IN.sub("", text)
    for kind, patterns in PATTERNS.items():
        for pattern in patterns:
            m = pattern.fullmatch(text)
            if m:
                return DocumentQuestion(kind, (m.groupdict().get("obj") or "").strip())
    return None


def answer_about_document(
    question: str, query: np.ndarray, hits: list[Hit], gen: Generation, documents: list[str] | None, k: int,
    asked: DocumentQuestion | None = None,
) -> Answer | None:
    """The answer to a question about a document itself, or None when the question is not one or
    the document does not state what is asked (then the ordinary answer applies). `asked`: the
    question as `recognise` read it, when the caller has done so already."""
    asked = asked or recognise(question)
    if asked is None:
        return None
    doc_id = _choose_document(asked, query, hits, gen, documents)
    if doc_id is None:
        return None
    meta = gen.metadata_of([doc_id]).get(doc_id) or Metadata()
    title = meta.title or doc_id
    value = getattr(meta, asked.kind)
    source = meta.sources.get(asked.kind)
    if not value or source is None:
        # "Who wrote West Side Story?" names a document about the musical, which has no author of its
        # own: its passages answer the question, not its metadata.
        return None
    if source == METADATA:
        cited = gen.chunk_covering(doc_id, 0)
        highlight = None
    else:
        cited = gen.chunk_covering(doc_id, source[0])
        highlight = source
    if cited is None:
        return None
    scores = {h.stored.id: h.score for h in hits}
    first = _passage(cited, scores.get(cited.id, float(gen.chunk_vectors([cited.id])[0] @ query)), [])
    if highlight is not None:
        if highlight[0] < first.start or highlight[1] > first.end:
            # A line cut between two chunks ("... © 2018." | "All rights reserved."): the passage
            # takes in the rest of the line, a sentence at most, as passages may.
            first.start, first.end = min(first.start, highlight[0]), max(first.end, highlight[1])
            first.text = gen.document(doc_id).text[first.start:first.end]
        first.highlights = [(highlight[0] - first.start, highlight[1] - first.start)]
    sentence = f"{title} {_statement(asked.kind, value)} [1]."
    if source == METADATA:
        sentence = "According to the document's metadata, " + sentence
    others = [_passage(h.stored, h.score, []) for h in hits if h.stored.id != cited.id]
    confidence = METADATA_CONFIDENCE if source == METADATA else CITED_LINE_CONFIDENCE
    return _answer(question, sentence, confidence, [first, *others], k)


def attach_metadata(answer: Answer, gen: Generation) -> Answer:
    """Give every passage its document's authors, publisher and date."""
    found = gen.metadata_of([p.doc_id for p in answer.passages])
    for p in answer.passages:
        meta = found.get(p.doc_id)
        if meta is not None:
            p.authors, p.publisher, p.date = meta.authors, meta.publisher, meta.date
    return answer


def _choose_document(
    asked: DocumentQuestion, query: np.ndarray, hits: list[Hit], gen: Generation, documents: list[str] | None,
) -> str | None:
    """The document the question names by title; else, for "the report" or nothing, the best-retrieved
    document that states what is asked (the best-retrieved one if none does); else None.

    "Who wrote the report?" among many documents retrieves passages like any other question; when
    none of their documents names its authors, the search is repeated over the documents that do."""
    head = _PREPOSITION.split(f" {asked.about} ", maxsplit=1)[0]
    words = [w for w in re.findall(r"\w+", asked.about) if w not in _DETERMINERS]
    head_words = [w for w in re.findall(r"\w+", head) if w not in _DETERMINERS]
    generic = all(w in GENERIC for w in head_words) and (head_words or not words)
    if not generic:
        # "who wrote the treaty?" or "who wrote about trade?" name no document unless by its title
        return _named_document(words, gen, documents)
    retrieved = list(dict.fromkeys(h.stored.chunk.doc_id for h in hits))
    if not retrieved:
        return None
    known = gen.metadata_of(retrieved)
    stating = next((d for d in retrieved if getattr(known.get(d, Metadata()), asked.kind)), None)
    if stating is None:  # the best-retrieved of the documents that state it, if any does
        candidates = [d for d in gen.documents_stating(asked.kind) if documents is None or d in documents]
        best = gen.dense(query, 1, gen.chunk_ids_of(candidates)) if candidates else []
        if best:
            stating = gen.chunks([best[0][0]])[best[0][0]].chunk.doc_id
    return stating or retrieved[0]


def _named_document(words: list[str], gen: Generation, documents: list[str] | None) -> str | None:
    """The document whose title the words name ("the Article II Mandate report"); or, when they call
    it a report, paper, study ..., the one whose title or makers (authors, publisher) hold all its
    other words ("the fisheries paper", "the CSIS report on the economic alliance"). None when no
    document, or more than one equally, is named."""
    wanted = frozenset(lexical.terms(" ".join(words)))
    generic = set(lexical.terms(" ".join(GENERIC)))
    # A document none of whose naming words is wanted shares none of them (below OBJECT_SHARE): left out.
    titles = [(d, t) for d, t in gen.named_by(wanted) if documents is None or d in documents]
    known = gen.metadata_of([d for d, _ in titles])
    shares: dict[str, float] = {}
    for doc_id, title in titles:
        title_terms, main_terms, title_size = naming.title_terms(doc_id, title)
        makers = naming.makers(known.get(doc_id))
        own = wanted - (generic - title_terms)  # "report" in "the Article II Mandate report" is no title word
        if not own:
            continue
        called = bool(wanted - own)  # "the fisheries paper": a document, named by the other words
        share = len(own & (title_terms | set().union(*makers))) / len(own)
        covers = bool(main_terms) and main_terms <= wanted or (
            len(wanted & title_terms) >= TITLE_SHARE * title_size) or (
            called and (own <= title_terms or any(m <= wanted for m in makers)))
        if share >= OBJECT_SHARE and covers:
            shares[doc_id] = share
    ranked = sorted(shares.items(), key=lambda item: -item[1])
    if not ranked or len(ranked) > 1 and ranked[1][1] == ranked[0][1]:
        return None
    return ranked[0][0]


def _statement(kind: str, value) -> str:
    if kind == "authors":
        return f"was written by {_join(value)}"
    if kind == "publisher":
        return f"was published by {value}"
    return f"was published {_when(value)}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


_MONTH_NAMES = "January February March April May June July August September October November December".split()


def _when(iso: str) -> str:
    parts = iso.split("-")
    if len(parts) == 1:
        return f"in {parts[0]}"
    month = _MONTH_NAMES[int(parts[1]) - 1]
    return f"in {month} {parts[0]}" if len(parts) == 2 else f"on {int(parts[2])} {month} {parts[0]}"


def _passage(stored: StoredChunk, score: float, highlights: list[tuple[int, int]]) -> Passage:
    c = stored.chunk
    return Passage(rank=0, doc_id=c.doc_id, title=stored.title, section=c.section, page=c.page, start=c.start,
                   end=c.end, text=c.text, score=round(score, 4), highlights=highlights)


def _answer(question: str, text: str, confidence: float, passages: list[Passage], k: int) -> Answer:
    passages = passages[:k]
    for rank, p in enumerate(passages, start=1):
        p.rank = rank
    return Answer(question=question, answer=text, abstained=False, confidence=confidence, took_ms=0.0,
                  passages=passages)
