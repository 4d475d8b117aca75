"""How likely the first passages answer the question: one logistic model over signals the pipeline has.

The hand-set chain of thresholds it replaces (best sentence cosine, then names or numbers missing
from the passages, then word coverage) could not be tuned jointly and said nothing to a caller about
a weak answer. Here every signal feeds one logistic regression, fitted offline by
`bench/fit_confidence.py` on public labelled data (SQuAD 2.0's shared half, WikiQA-test, the report's
dev sets); its coefficients ship as `confidence.json` beside this module, and the answer abstains
below the one threshold stored with them. The runtime needs numpy only.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence, Set
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from qa.answering.evidence import set_coverage, stems
from qa.indexing import lexical

# The signals, in the order the model's coefficients are stored. Each makes sense on any text.
FEATURES = (
    "best_sentence",       # cosine of the best evidence sentence of the first passages
    "mean_sentence",       # mean over the first passages of each one's best sentence cosine
    "sentence_lift",       # best sentence cosine minus the mean of all the first passages' sentences:
                           # on a topic the documents cover without answering, no sentence stands out
    "passage_margin",      # fused score of the first passage minus the second's
    "coverage_passages",   # IDF-weighted share of the question's terms in the first passages
    "coverage_first",      # ... in the first passage
    "missing_names",       # names of the question no first passage contains (at most 3)
    "missing_exact",       # numbers and acronyms of the question no first passage contains (at most 3)
    "kind_missing",        # it asks how much / when / who and no evidence sentence holds a number / date / name
    "kind_present",        # it asks so and an evidence sentence holds one
    "question_terms",      # log(1 + the question's content terms): short questions score low cosines
    "unsupported",         # (MEANING_KNOT - mean_sentence)+ x (WORDS_KNOT - coverage_passages)+: passages
                           # about something else are far in meaning AND lack the question's words
    "rarest_off_evidence", # the question's rarest term that the corpus uses is in no evidence sentence:
                           # the passages hold the topic's common words but not the one that says what
    "sentence_joint",      # best over the evidence sentences of cosine x that sentence's IDF coverage:
                           # one sentence that both means and says what is asked
)
# Tried and left out (bench/fit_confidence.py, docs/benchmarks.md): the first passage's own cosine,
# the gap to the second-best sentence, coverage within the evidence sentences, the rarest missing
# term and the share of terms the corpus lacks. Collinear with the signals above, they took weights
# of the wrong sign (a term the corpus lacks raising confidence) and did not raise held-out AUC.
# Session 3 (bench/confidence_candidates.py): whether the first passages share a document, the
# question's cosine to the first passage's whole document, BM25 over the question's IDF, the share of
# its two rarest terms held. None kept: within noise of the model, or (the shared document) better on
# off-topic questions but tied to how documents are cut ("Confidence, session 3").
MAX_COUNT = 3
MODEL_FILE = "confidence.json"
# The knots of `unsupported`. Either signal alone is weak where the other is strong: a paraphrase
# lacks the question's words but means the same, a short question ("Who was Margaret's brother?")
# scores a low cosine on the passage that holds all its words. Off-topic passages, which a large
# corpus always offers some of ("cast iron skillet" -> "Jersey Shore" at cosine 0.30), show both.
# Chosen on a grid (0.4-0.6 x 0.5-0.8) by the share refused at 2 % false abstentions with each
# source left out, plus the off-topic questions refused (bench/confidence_candidates.py --knots).
MEANING_KNOT = 0.4
WORDS_KNOT = 0.7


@dataclass(frozen=True)
class Model:
    """Standardise, then logistic: p = 1 / (1 + exp(-(((x - mean) / scale) . coef + intercept)))."""

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float  # the answer abstains below this confidence

    def probability(self, x: np.ndarray) -> float:
        z = float(((x - self.mean) / self.scale) @ self.coef + self.intercept)
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def to_dict(self) -> dict:
        return {"features": list(self.features), "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "coef": self.coef.tolist(), "intercept": self.intercept, "threshold": self.threshold}


def model_from(data: dict) -> Model:
    """A Model from its JSON form; raises ValueError if it was fitted on other signals than FEATURES."""
    if tuple(data.get("features", ())) != FEATURES:
        raise ValueError(f"{MODEL_FILE}: fitted on features {data.get('features')}, the code computes "
                         f"{list(FEATURES)}; refit it with bench/fit_confidence.py")
    arrays = [np.asarray(data[k], dtype=np.float64) for k in ("mean", "scale", "coef")]
    if any(a.shape != (len(FEATURES),) for a in arrays):
        raise ValueError(f"{MODEL_FILE}: mean, scale and coef need {len(FEATURES)} values each")
    return Model(FEATURES, *arrays, float(data["intercept"]), float(data["threshold"]))


@cache
def shipped() -> Model:
    """The model fitted by bench/fit_confidence.py, shipped in the package."""
    return model_from(json.loads(resources.files("qa.answering").joinpath(MODEL_FILE).read_text(encoding="utf-8")))


# -- the signals -----------------------------------------------------------------------------------
def signals(
    question: str,
    sentence_best: Sequence[float],
    sentence_all: Sequence[float],
    passage_texts: Sequence[str],
    evidence_texts: Sequence[str],
    scores: Sequence[float],
    unmatched: Sequence[str],
    weights: dict[str, float] | None = None,
    evidence_cosines: Sequence[float] = (),
    absent: frozenset[str] = frozenset(),
    passage_terms: Sequence[frozenset[str]] | None = None,
    evidence_terms: Sequence[frozenset[str]] | None = None,
    words: list[str] | None = None,
) -> np.ndarray:
    """The FEATURES of one answer.

    sentence_best: each first passage's best sentence cosine; sentence_all: the cosines of all their
    sentences (title lines aside); passage_texts: the first passages;
    evidence_texts: their best sentences, and evidence_cosines their cosines; scores: the fused scores
    of the first passages in rank order; unmatched: the question's names and numbers no first passage
    contains; weights: each of the question's terms' IDF in the index (LexicalIndex.idf; every term
    weighs 1 without them); absent: the question's terms no chunk of the index holds
    (LexicalIndex.absent). passage_terms, evidence_terms: the terms of passage_texts and evidence_texts
    when the index stored them (sentences.py); words: the question's distinct terms, when known.
    """
    words = list(dict.fromkeys(lexical.terms(question))) if words is None else words
    weights = {w: (weights or {}).get(w, 1.0) for w in words}
    passages = list(passage_terms) if passage_terms is not None else [stems(t) for t in passage_texts]
    evidence = list(evidence_terms) if evidence_terms is not None else [stems(t) for t in evidence_texts]
    asked = asked_kind(question)
    held = asked is not None and any(holds_kind(t, asked) for t in evidence_texts)
    exact = sum(1 for name in unmatched if is_exact(name))
    best = max(sentence_best, default=0.0)
    mean = float(np.mean(sentence_best)) if len(sentence_best) else 0.0
    coverage = _coverage(words, weights, *passages)  # held by any of them
    rarest = max((w for w in words if w not in absent), key=lambda w: weights[w], default=None)
    per_sentence = set_coverage(weights, evidence) if evidence_cosines else []
    ordered = sorted(sentence_all, reverse=True)
    values = [
        best,
        mean,
        best - float(np.mean(ordered)) if ordered else 0.0,
        (scores[0] - scores[1]) if len(scores) > 1 else (scores[0] if scores else 0.0),
        coverage,
        _coverage(words, weights, passages[0] if passages else frozenset()),
        min(len(unmatched) - exact, MAX_COUNT),
        min(exact, MAX_COUNT),
        float(asked is not None and not held),
        float(held),
        math.log1p(len(words)),
        max(0.0, MEANING_KNOT - mean) * max(0.0, WORDS_KNOT - coverage),
        float(rarest is not None and not any(rarest in said for said in evidence)),
        max((c * v for c, v in zip(evidence_cosines, per_sentence, strict=True)), default=0.0),
    ]
    return np.asarray(values, dtype=np.float64)


def _coverage(words: list[str], weights: dict[str, float], *texts: Set[str]) -> float:
    """The share of the question's weight that any of `texts` (term sets) holds; 1 for a question without
    weight. Their union is never made: a passage holds some seventy terms, a question a handful."""
    total = sum(weights[w] for w in words)
    return sum(weights[w] for w in words if any(w in have for have in texts)) / total if total else 1.0


_ACRONYM = re.compile(r"[A-Z][A-Z0-9]+s?")


def is_exact(name: str) -> bool:
    """A number or an acronym: a token a passage about it would contain as it is."""
    return name[0].isdigit() or bool(_ACRONYM.fullmatch(name))


# -- what kind of thing the question asks for --------------------------------------------------------
_ASKS = (
    ("number", re.compile(r"\bhow (much|many|large|big|long|far|fast|old|high|often)\b|"
                          r"\bwhat (percentage|percent|proportion|share|amount|number|rate|size)\b", re.I)),
    ("date", re.compile(r"^\s*when\b|\b(what|which|in what) (year|date|decade|century|month)\b|\bsince when\b", re.I)),
    ("name", re.compile(r"^\s*(who|whom|whose|where)\b|\b(which|what) (person|people|country|city|company)\b", re.I)),
)
_NUMBER = re.compile(r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
                     r"forty|fifty|hundred|thousand|million|billion|trillion|dozen|half|third|quarter|"
                     r"double|twice|percent)\b", re.I)
_DATE = re.compile(r"\b(1\d{3}|20\d{2})s?\b|\b(january|february|march|april|may|june|july|august|september|"
                   r"october|november|december|century|decade|spring|summer|autumn|fall|winter)\b", re.I)
_NAME = re.compile(r"(?<=[\w,;:)] )[A-Z][a-z]+")  # a capitalised word that does not start the sentence


def asked_kind(question: str) -> str | None:
    """"number", "date" or "name" for how much / when / who questions; None for the others."""
    return next((kind for kind, pattern in _ASKS if pattern.search(question)), None)


def holds_kind(text: str, kind: str) -> bool:
    pattern = {"number": _NUMBER, "date": _DATE, "name": _NAME}[kind]
    return bool(pattern.search(text))
