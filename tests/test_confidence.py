"""The confidence of every answer (issue 11): one shipped logistic model, one abstention threshold.

Measured with the real model on the report; the numbers behind the thresholds are in
docs/benchmarks.md ("A calibrated confidence (issue 11)").
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import REPORT, indexed_assistant
from qa.answering import confidence
from qa.answering.answers import assess
from qa.answering.evaluation import evaluate, load_cases
from qa.answering.retrieval import Hit
from qa.indexing.lexical import LexicalIndex, write
from qa.indexing.lexical import terms as lexical_terms
from qa.indexing.store import StoredChunk
from qa.reading.chunking import Chunk
from qa.service import Assistant
from qa.serving.api import create_app

DATA = Path(__file__).resolve().parent / "data"
DISTRACTORS = Path(__file__).resolve().parent / "fixtures" / "distractors"
DEV_SETS = [DATA / "dev_questions.jsonl", DATA / "dev_questions_paraphrased.jsonl"]
ON_TOPIC = DATA / "unanswerable_on_topic.jsonl"  # held out: never fitted on


@pytest.fixture(scope="module")
def dev_outcomes(report_assistant):
    return [o for path in DEV_SETS for o in evaluate(report_assistant, load_cases(path))]


# -- the shipped model -----------------------------------------------------------------------------
def test_the_shipped_coefficients_load_and_match_the_features_the_code_computes():
    model = confidence.shipped()
    assert model.features == confidence.FEATURES
    assert model.coef.shape == model.mean.shape == model.scale.shape == (len(confidence.FEATURES),)
    assert 0 < model.threshold < 1 and np.all(model.scale > 0)
    stored = json.loads(resources.files("qa.answering").joinpath(confidence.MODEL_FILE).read_text(encoding="utf-8"))
    assert stored["features"] == list(confidence.FEATURES)


def test_a_model_fitted_on_other_features_is_refused_with_the_fix():
    stored = json.loads(resources.files("qa.answering").joinpath(confidence.MODEL_FILE).read_text(encoding="utf-8"))
    stored["features"] = stored["features"][:-1]
    with pytest.raises(ValueError, match="fit_confidence.py"):
        confidence.model_from(stored)


# -- what a caller sees -----------------------------------------------------------------------------
def test_ask_carries_a_confidence_between_0_and_1(report_assistant):
    with TestClient(create_app(assistant=report_assistant)) as client:
        strong = client.post("/ask", json={"question": "Why did members of Congress smash a Toshiba radio?"}).json()
        weak = client.get("/ask", params={"q": "How do I repot an orchid?"}).json()
    assert 0 <= weak["confidence"] < strong["confidence"] <= 1
    assert weak["abstained"] and not strong["abstained"]


def test_the_answer_page_shows_the_confidence(report_assistant):
    with TestClient(create_app(assistant=report_assistant)) as client:
        page = client.get("/", params={"q": "Why did members of Congress smash a Toshiba radio?"}).text
    answer = report_assistant.ask("Why did members of Congress smash a Toshiba radio?")
    assert f"confidence {answer.confidence:.2f}" in page


def test_every_abstained_dev_answer_is_less_confident_than_every_answered_one(dev_outcomes):
    abstained = [o.confidence for o in dev_outcomes if o.abstained]
    answered = [o.confidence for o in dev_outcomes if not o.abstained]
    assert abstained and answered
    assert max(abstained) < confidence.shipped().threshold <= min(answered)


def test_answerable_dev_questions_are_more_confident_than_unanswerable_ones(dev_outcomes):
    answerable = [o.confidence for o in dev_outcomes if o.case.evidence is not None]
    unanswerable = [o.confidence for o in dev_outcomes if o.case.evidence is None]
    pairs = [a > u for a in answerable for u in unanswerable]
    assert sum(pairs) / len(pairs) >= 0.85  # the AUC over the two dev sets


# -- on-topic questions the report does not answer ----------------------------------------------------
def _on_topic_abstained(assistant) -> float:
    cases = load_cases(ON_TOPIC)
    assert len(cases) >= 15 and all(c.evidence is None for c in cases)
    return sum(assistant.ask(c.question).abstained for c in cases) / len(cases)


def test_on_topic_unanswerable_questions_abstain_at_least_as_often_as_before(report_assistant):
    # The hand-set chain this model replaced abstained on 11 of the 22; the first fitted model on 13
    # (59 %); the signals of session 3 (unsupported, rarest_off_evidence, sentence_joint) on 14 with
    # the retrieval before the best-sentence re-rank, and on 13 after it (knots re-chosen by the same
    # rule, which does not look at this set).
    assert _on_topic_abstained(report_assistant) >= 13 / 22


@pytest.mark.xfail(strict=True, reason="issue 11 target not reached: 59 % abstained (docs/benchmarks.md)")
def test_on_topic_unanswerable_questions_meet_the_issue_target(report_assistant):
    assert _on_topic_abstained(report_assistant) >= 0.8


# -- off-topic questions beside documents about something else ---------------------------------------
@pytest.fixture(scope="module")
def report_with_distractors(tmp_path_factory, encoder) -> Assistant:
    """The report beside four short articles on unrelated topics (vanilla, basketball, circumpolar
    stars, reality television), as a library of mixed documents has."""
    return indexed_assistant(tmp_path_factory.mktemp("distractors"), encoder, [REPORT, *DISTRACTORS.iterdir()])


# Written for this test, never fitted on. Each lands on the nearest distractor (an ice cream recipe on
# vanilla, a telescope on the stars, swimming medals on basketball) without being answered there. Under
# the model before `unsupported` three of these were answered (confidence 0.066 to 0.151), as 6 of the 15
# unanswerable dev questions were with WikiQA's 619 documents beside the report (docs/benchmarks.md).
OFF_TOPIC = [
    "How long should I boil an egg?", "What is the best fertiliser for tomatoes?",
    "How do I change a flat bicycle tyre?", "Which telescope should a beginner buy to see Saturn?",
    "How do I make vanilla ice cream at home?", "Who won the most Olympic gold medals in swimming?",
    "What time does the sun set in Reykjavik in June?", "How do I get rid of mould in the shower?",
    "How tall is the average NBA player?", "How much does a kilo of saffron cost?",
    "Where can I see the aurora in Canada?",
]


@pytest.mark.parametrize("question", OFF_TOPIC)
def test_off_topic_questions_abstain_beside_documents_about_something_else(report_with_distractors, question):
    answer = report_with_distractors.ask(question)
    assert answer.abstained, (question, answer.confidence, answer.passages[0].doc_id)


def test_the_distractors_do_not_make_report_questions_abstain(report_with_distractors):
    outcomes = evaluate(report_with_distractors, load_cases(DEV_SETS[0]))
    answerable = [o for o in outcomes if o.case.evidence is not None]
    assert sum(o.abstained for o in answerable) <= 1  # at most one in 45, as on the report alone


def test_meaning_and_words_both_missing_weigh_more_than_either_alone():
    weights = {"skillet": 1.0, "season": 1.0}

    def unsupported(cosine, text):
        x = confidence.signals("season a skillet", [cosine], [cosine], [text], [text], [1.0], [], weights)
        return x[confidence.FEATURES.index("unsupported")]

    assert unsupported(0.30, "A reality show filmed on the shore.") > 0
    assert unsupported(0.30, "Season the skillet with oil.") == 0  # the words are there
    assert unsupported(0.60, "A reality show filmed on the shore.") == 0  # the meaning is there


# -- the signals ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("question", "kind"), [
    ("How much did Japan invest?", "number"), ("What share of exports go to the US?", "number"),
    ("When was TPP signed?", "date"), ("In what year did the bubble burst?", "date"),
    ("Who wrote the report?", "name"), ("What does the report recommend?", None),
])
def test_asked_kind(question, kind):
    assert confidence.asked_kind(question) == kind


def test_holds_kind():
    assert confidence.holds_kind("Signing TPP in February 2016 brought them closer.", "date")
    assert confidence.holds_kind("It offers 10 recommendations.", "number")
    assert confidence.holds_kind("The report is by Yoichi Funabashi.", "name")
    assert not confidence.holds_kind("Trade tensions grew worse.", "date")


def test_a_term_no_chunk_holds_weighs_most(tmp_path):
    texts = ["japan trade", "japan tariffs", "japan rice"]
    write(tmp_path, np.arange(3, dtype=np.int64), texts)
    idf = LexicalIndex(tmp_path).idf(["japan", "rice", "semiconductor"])
    assert 0 < idf["japan"] < idf["rice"] < idf["semiconductor"]


def test_the_terms_no_chunk_holds_are_the_absent_ones(tmp_path):
    # The candidate signal bench/confidence_candidates.py weighs (not in the shipped model).
    write(tmp_path, np.arange(3, dtype=np.int64), ["japan trade", "japan tariffs", "rice imports"])
    index = LexicalIndex(tmp_path)
    assert index.absent(["japan", "rice", "semiconductor", "import"]) == {"semiconductor"}
    assert index.absent([]) == frozenset()


def test_a_rare_missing_term_lowers_coverage_more_than_a_common_one():
    weights = {"japan": 0.1, "rice": 0.9}

    def coverage(text):
        x = confidence.signals("Japan rice", [0.5], [0.5], [text], [text], [1.0], [], weights)
        return x[confidence.FEATURES.index("coverage_passages")]

    assert coverage("Japan exports cars.") == pytest.approx(0.1)
    assert coverage("Rice imports grew.") == pytest.approx(0.9)


def test_the_rarest_word_missing_from_the_evidence_is_flagged_unless_the_corpus_never_uses_it():
    question = "What tariffs on automobiles does the report recommend?"
    weights = {t: 1.0 for t in lexical_terms(question)} | {lexical_terms("automobiles")[0]: 5.0}

    def flagged(evidence, absent=frozenset()):
        x = confidence.signals(question, [0.5], [0.5], [evidence], [evidence], [1.0], [], weights, [0.5], absent)
        return x[confidence.FEATURES.index("rarest_off_evidence")]

    assert flagged("The report recommends lower tariffs on steel.") == 1
    assert flagged("The report recommends lower tariffs on automobiles.") == 0
    # a word no passage of the corpus holds says nothing about these passages: the next rarest counts
    assert flagged("The report recommends lower tariffs on steel.", frozenset(lexical_terms("automobiles"))) == 0


def test_one_sentence_that_means_and_says_what_is_asked_scores_its_cosine():
    weights = {t: 1.0 for t in lexical_terms("rice tariffs")}

    def joint(evidence, cosines):
        x = confidence.signals("rice tariffs", [max(cosines)], cosines, evidence, evidence, [1.0], [], weights,
                               cosines)
        return x[confidence.FEATURES.index("sentence_joint")]

    assert joint(["Japan cut its rice tariffs."], [0.6]) == pytest.approx(0.6)
    assert joint(["Japan cut its rice imports.", "Tariffs rose."], [0.6, 0.4]) == pytest.approx(0.3)


def _hit(cid: int, doc_id: str, text: str, encoder) -> Hit:
    chunk = Chunk(doc_id, 1, 0, len(text), text, None, None, ((0, len(text)),))
    return Hit(StoredChunk(cid, chunk, doc_id, encoder.encode([text])), 0.5, 0.0, 1.0 - cid / 10)


def test_a_number_or_acronym_only_another_documents_passage_holds_counts_as_missing(encoder):
    """The answer quotes the first passage's document: "GDP" in a third passage from an unrelated
    article does not support it, and the confidence says so."""
    question = "What is Japan's defense budget as a share of GDP?"
    query = encoder.encode_query(question)
    report = _hit(1, "report.txt", "Japan and the United States should deepen defense cooperation.", encoder)
    same = _hit(2, "report.txt", "Japan's budget priorities include GDP growth and defense.", encoder)
    other = _hit(2, "almanac.txt", "The United States spends a larger share of GDP on its military.", encoder)
    missing_exact = confidence.FEATURES.index("missing_exact")
    _, beside_other, _ = assess(question, query, [report, other])
    _, beside_same, _ = assess(question, query, [report, same])
    assert beside_other[missing_exact] == 1
    assert beside_same[missing_exact] == 0
    model = confidence.shipped()
    assert model.probability(beside_other) < model.probability(beside_same)
