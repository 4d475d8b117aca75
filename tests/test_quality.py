"""Retrieval, evidence and abstention quality on the report's dev sets, with the real model.

Two question sets: `dev_questions.jsonl` is phrased the way users ask (written blind, without
seeing the system's results) and carries the issue-3 targets over the report alone (with the WikiQA
distractors they are measured by bench/wikiqa.py, which needs data tests never read);
`dev_questions_paraphrased.jsonl` deliberately avoids every word of the report, and its floors are
the levels the pipeline reaches (docs/benchmarks.md, "Retrieval quality"), a little below so one
question's change does not fail.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from qa.answering.answers import Answer, Passage, unmatched_names, word_coverage
from qa.answering.evaluation import Case, format_report, has_gold, judge, load_cases, run_eval, summarise
from qa.answering.evidence import SentenceScores, best_sentence, highlight_order, term_coverage
from qa.answering.retrieval import (
    DOCUMENT_WEIGHT,
    Reranker,
    _by_document,
    add_best_sentences,
    fuse,
    numbered_reference,
    retrieve,
)
from qa.errors import ModelError, QAError
from qa.indexing import lexical
from qa.indexing.store import StoredChunk
from qa.reading.chunking import Chunk, split_sentences

DATA = Path(__file__).resolve().parent / "data"
DEV_SET = DATA / "dev_questions.jsonl"
PARAPHRASED = DATA / "dev_questions_paraphrased.jsonl"
TITLE = "The Article II Mandate: Forging a Stronger Economic Alliance between the United States and Japan"
CLEARLY_OFF_TOPIC = {
    "How do I make a sourdough starter at home?",
    "Who won the 2022 FIFA World Cup final?",
    "How do you reverse a linked list in Python?",
    "What is a good 16-week marathon training plan?",
    "How do I get red wine stains out of a carpet?",
    "What is the best way to learn to play the ukulele?",
    "How long should I boil an egg for a runny yolk?",
    "Can you suggest a beginner yoga routine for mornings?",
    "best way to season a cast iron skillet",
    "Who holds the NBA record for most career points?",
    "How do I resolve a merge conflict in git?",
    "What are common symptoms of vitamin D deficiency?",
    "cheap flights from London to Lisbon in spring",
    "How do I repot an orchid?",
    "How many calories are in an avocado?",
    "Tips for photographing the northern lights",
}


@pytest.fixture(scope="module")
def dev_metrics(report_assistant) -> dict:
    return run_eval(report_assistant, DEV_SET, k=5)


@pytest.fixture(scope="module")
def paraphrased_metrics(report_assistant) -> dict:
    return run_eval(report_assistant, PARAPHRASED, k=5)


# -- the dev sets themselves ----------------------------------------------------------------------
@pytest.mark.parametrize("path", [DEV_SET, PARAPHRASED], ids=["natural", "paraphrased"])
def test_dev_set_has_enough_questions_of_each_kind(path):
    cases = load_cases(path)
    answerable = [c for c in cases if c.evidence is not None]
    assert len(answerable) >= 40 and len(cases) - len(answerable) >= 10
    assert len({c.question for c in cases if c.evidence is None} & CLEARLY_OFF_TOPIC) >= 6


@pytest.mark.parametrize("path", [DEV_SET, PARAPHRASED], ids=["natural", "paraphrased"])
def test_every_evidence_string_is_in_the_report(path):
    text = " ".join((Path(__file__).resolve().parent.parent / "corpus" / "article-ii-mandate.txt")
                    .read_text(encoding="utf-8").lower().split())
    for case in load_cases(path):
        for evidence in case.evidence or ():
            assert " ".join(evidence.lower().split()) in text, evidence


# -- what the pipeline reaches ----------------------------------------------------------------------
def test_issue_3_targets_on_questions_phrased_as_users_ask(dev_metrics):
    assert dev_metrics["hit@1"] >= 0.9
    assert dev_metrics["hit@3"] >= 0.97
    assert dev_metrics["evidence@3"] >= 0.9


def test_at_most_one_in_twenty_answerable_questions_abstains(dev_metrics, paraphrased_metrics):
    for metrics in (dev_metrics, paraphrased_metrics):
        assert metrics["false_abstentions"] <= metrics["answerable"] / 20


def test_clearly_off_topic_questions_abstain(report_assistant):
    abstained = [q for q in sorted(CLEARLY_OFF_TOPIC) if report_assistant.ask(q).abstained]
    assert len(abstained) >= len(CLEARLY_OFF_TOPIC) - 1, set(CLEARLY_OFF_TOPIC) - set(abstained)


def test_nine_in_ten_unanswerable_questions_abstain(dev_metrics):
    # 8 clearly off-topic + at least 6 of the 7 near-topic ones ("Japan's inflation rate in 2022").
    assert dev_metrics["abstained_unanswerable"] >= 0.9 * dev_metrics["unanswerable"]


def test_floors_on_adversarial_paraphrases(paraphrased_metrics):
    assert paraphrased_metrics["hit@1"] >= 0.7
    assert paraphrased_metrics["hit@3"] >= 0.88
    assert paraphrased_metrics["hit@5"] >= 0.93
    assert paraphrased_metrics["evidence@1"] >= 0.62
    assert paraphrased_metrics["evidence@3"] >= 0.77
    assert paraphrased_metrics["abstained_unanswerable"] >= 10


# -- contract and behaviour -----------------------------------------------------------------------
def test_ranking_and_answer_do_not_depend_on_k(report_assistant):
    for case in load_cases(DEV_SET)[:12]:
        five, ten = report_assistant.ask(case.question, k=5), report_assistant.ask(case.question, k=10)
        assert [p.start for p in ten.passages[:5]] == [p.start for p in five.passages]
        assert (five.answer, five.abstained) == (ten.answer, ten.abstained)


def test_at_most_two_highlights_and_never_the_title(report_assistant):
    for case in load_cases(DEV_SET):
        answer = report_assistant.ask(case.question, k=5)
        for p in answer.passages:
            assert len(p.highlights) <= 2
            assert all(" ".join(p.text[a:b].split()) != TITLE for a, b in p.highlights)
            assert not (answer.abstained and p.highlights)


def test_answer_cites_highlighted_passages(report_assistant):
    answer = report_assistant.ask("Which country did Tokyo ask to spearhead the creation of APEC?")
    assert not answer.abstained and "Japan asked Australia to take the lead" in answer.answer
    assert "[1]" in answer.answer and answer.passages[0].highlights


@pytest.mark.parametrize(("question", "heading", "body"), [
    ("What is recommendation 3 about?", "3. Work toward a free and open digital economy.",
     "The United States and Japan should foster cooperation on emerging technologies"),
    ("What is the fourth recommendation?", "4. Cooperate on trade liberalization and rule-making.",
     "The true power of the U.S.–Japan economic relationship"),
    ("what does section 10 say", "10. Collaborate on anti-corruption efforts.", ""),
])
def test_a_numbered_part_is_answered_by_its_heading_and_body(report_assistant, question, heading, body):
    answer = report_assistant.ask(question)
    assert not answer.abstained and answer.answer.startswith(f"{heading} [1] ")
    assert answer.answer.count("[1]") >= 2 and body in answer.answer  # the heading is never the whole answer
    first = answer.passages[0]
    assert first.text.startswith(heading) and [first.text[a:b] for a, b in first.highlights][0] == heading


def test_a_lead_in_is_answered_with_the_items_it_introduces(report_assistant):
    answer = report_assistant.ask("What were the key findings of the project?")
    sentences = answer.answer.split(" [1] ")
    assert sentences[0] == "Key findings from the project included the following:"
    # The whole list (issue 23: a list cut short reads as if it had only those items).
    assert len(sentences) == 5 and all(s.startswith("•") for s in sentences[1:])
    assert "economic statecraft" in sentences[-1]
    first = answer.passages[0]
    spans = [first.text[a:b] for a, b in first.highlights]
    assert any(s.startswith("Key findings") and s.endswith("policies in the region.") for s in spans)


def test_a_how_question_is_answered_by_the_sentence_that_says_how(report_assistant):
    answer = report_assistant.ask("How can the alliance counter China's economic coercion?")
    assert answer.answer.startswith("The United States and Japan should offer more support to countries that are "
                                    "part of the Belt and Road Initiative")
    first = answer.passages[0]
    assert any(first.text[a:b].startswith("The United States and Japan should offer") for a, b in first.highlights)


def test_answers_are_never_a_heading_or_lead_in_alone_and_highlights_are_single_sentences(report_assistant):
    for case in load_cases(DEV_SET) + load_cases(PARAPHRASED):
        answer = report_assistant.ask(case.question)
        if answer.abstained:
            continue
        quoted = re.findall(r"(.+?) \[(\d+)\]", answer.answer)
        # At most 3 sentences, a list (a lead-in and its items) counting as one.
        items = sum(q.strip().startswith("•") for q, _ in quoted) if any(q.endswith(":") for q, _ in quoted) else 0
        assert 1 <= len(quoted) - items <= 3, case.question
        if len(quoted) == 1:
            only, rank = quoted[0][0].strip(), int(quoted[0][1])
            section = answer.passages[rank - 1].section or ""
            assert not only.endswith(":") and " ".join(section.split()) != only, case.question
        for p in answer.passages:
            for a, b in p.highlights:
                pieces = [(x, y) for x, y in split_sentences(p.text, a, b) if not p.text[x:y].rstrip(".").isdigit()]
                # A heading's "4." is not a sentence; a lead-in and its items may form one span (the contract).
                lead_in = p.text[a:b].split("\n", 1)[0].rstrip().endswith(":")
                assert len(pieces) == 1 or lead_in, (case.question, p.text[a:b])


def test_a_question_about_a_numbered_part_is_answered_from_it(report_assistant):
    answer = report_assistant.ask("Who should get more support from the US and Japan under recommendation 7?")
    assert answer.passages[0].section.startswith("7. Respond to the risk of geo-economic coercion")
    assert "Belt and Road Initiative" in answer.answer and "[1]" in answer.answer and "[2]" not in answer.answer


def test_passages_of_the_best_matching_document_keep_ahead_of_a_slightly_closer_distractor():
    def stored(*docs):
        return {i: SimpleNamespace(chunk=SimpleNamespace(doc_id=d)) for i, d in enumerate(docs, start=1)}

    fused = {1: 0.50, 2: 0.45, 3: 0.44}  # report, distractor, report
    assert _by_document([1, 2, 3], stored("report", "wiki", "report"), dict(fused)) == [1, 3, 2]
    assert _by_document([1, 2, 3], stored("report", "report", "report"), dict(fused)) == [1, 2, 3]
    assert 0 < DOCUMENT_WEIGHT < 0.5


def test_numbered_reference():
    assert numbered_reference("What is recommendation 3 about?") == ("recommendation", 3)
    assert numbered_reference("the Second Recommendation") == ("recommendation", 2)
    assert numbered_reference("summarise the 5th chapter") == ("chapter", 5)
    assert numbered_reference("section no. 12") == ("section", 12)
    assert numbered_reference("When did Japan first sell more to the US?") is None
    assert numbered_reference("What does Article II say?") is None


@pytest.mark.parametrize(("question", "words"), [
    ("Toshiba", "Toshiba radio"), ("lost decade", "lost decade"), ("What is Article II?", "Article II of"),
    ("Belt and Road", "Belt and Road Initiative"),
])
def test_a_short_keyword_question_is_answered_by_a_sentence_holding_its_words(report_assistant, question, words):
    answer = report_assistant.ask(question)
    assert not answer.abstained and words in answer.answer
    cited = answer.passages[int(answer.answer.rsplit("[", 1)[1].rstrip("]")) - 1]
    assert any(words in cited.text[a:b] for a, b in cited.highlights)


def test_a_short_question_whose_words_no_sentence_holds_still_abstains(report_assistant):
    for question in ("What is the Quad?", "orchid", "Kishida"):
        assert report_assistant.ask(question).abstained, question


def test_near_topic_questions_naming_a_missing_number_or_acronym_abstain(report_assistant):
    for question in ("What was Japan's inflation rate in 2022?", "What is Japan's defense budget as a share of GDP?"):
        assert report_assistant.ask(question).abstained, question
    assert not report_assistant.ask("When did Japan run its first trade surplus with the US?").abstained


def test_word_coverage():
    assert word_coverage("symptoms of vitamin D deficiency", ["The symptoms of kidney disease"]) == 0.25
    assert word_coverage("Which treaties were signed?", ["The treaty was signed in 1960."]) == 1.0
    assert word_coverage("what is it", ["anything"]) == 1.0  # no content words: nothing to miss


def test_unmatched_names():
    assert unmatched_names("What is South Korea's trade policy toward China?", ["China and Japan"]) == [
        "South", "Korea"]
    assert unmatched_names("What did Japan's exports do in the 70s?", ["In the 1970s, Japan"]) == []
    assert unmatched_names("HOW AFRICAN AMERICANS WERE IMMIGRATED TO THE US", ["nothing"]) == []
    assert unmatched_names("What was the exchange rate in 2023?", ["rates"]) == ["2023"]
    # An acronym keeps its case and matches dotted or spelled out.
    assert unmatched_names("Is the US economy big?", ["The U.S. economy"]) == []
    assert unmatched_names("Was TPP an FTA?", ["TPP, a free trade agreement"]) == []
    assert unmatched_names("Do SMEs matter?", ["small and medium-sized enterprises (SMEs)"]) == []
    assert unmatched_names("How does the CHIPS Act work?", ["chips and the Act"]) == ["CHIPS"]
    assert unmatched_names("Japan's GDP", ["Japan's gross national income"]) == ["GDP"]


# -- the optional cross-encoder reranker ---------------------------------------------------------
class KeywordReranker:
    """Stands in for a cross-encoder: prefers passages that mention a word."""

    def __init__(self, word: str) -> None:
        self.word = word

    def scores(self, question: str, texts: list[str]) -> list[float]:
        return [float(self.word in t) for t in texts]


def test_reranker_reorders_the_fused_candidates_independently_of_k(report_assistant):
    gen, encoder = report_assistant.generation(), report_assistant.encoder
    question = "What did the allies do about trade?"
    query = encoder.encode_query(question)
    plain = retrieve(gen, query, question, 5)
    reranked = retrieve(gen, query, question, 5, reranker=KeywordReranker("Toshiba"))
    assert "Toshiba" not in plain[0].stored.chunk.text and "Toshiba" in reranked[0].stored.chunk.text
    assert reranked[0].score == 1.0
    three = retrieve(gen, query, question, 3, reranker=KeywordReranker("Toshiba"))
    assert [h.stored.id for h in three] == [h.stored.id for h in reranked[:3]]


def test_reranker_that_cannot_load_names_the_fix(tmp_path):
    with pytest.raises(ModelError, match="QA_RERANKER"):
        Reranker(str(tmp_path / "no-such-model"))


def test_a_real_cross_encoder_reranks_when_one_is_available(report_assistant):
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download("cross-encoder/ms-marco-MiniLM-L-6-v2", local_files_only=True)
    except Exception:  # noqa: BLE001 - not in the local cache: nothing to test with
        pytest.skip("no cross-encoder is available offline (none ships with the product)")
    reranker = Reranker(path)
    question = "Which country did Tokyo ask to spearhead the creation of APEC?"
    gen = report_assistant.generation()
    hits = retrieve(gen, report_assistant.encoder.encode_query(question), question, 3, reranker=reranker)
    assert "Japan asked Australia to take the lead" in hits[0].stored.chunk.text


# -- the instrument -------------------------------------------------------------------------------
def _answer(texts: list[str], highlights: list[list[tuple[int, int]]], abstained: bool = False) -> Answer:
    passages = [Passage(rank=i, doc_id=f"d{i}.txt", title="", section=None, page=None, start=0, end=len(t),
                        text=t, score=0.0, highlights=h)
                for i, (t, h) in enumerate(zip(texts, highlights, strict=True), start=1)]
    return Answer("q", "", abstained, 0.0 if abstained else 1.0, 0.0, passages)


def test_judge_is_case_and_whitespace_insensitive():
    answer = _answer(["Nothing here.", "First.  The  ANSWER\nis here. Last."], [[], [(0, 6)]])
    outcome = judge(Case("q", ("the answer is here",)), answer, 1.0)
    assert outcome.hit_rank == 2 and outcome.evidence_rank is None  # highlighted "First." only
    highlighted = _answer(["Nothing here.", "First.  The  ANSWER\nis here. Last."], [[], [(8, 28)]])
    assert judge(Case("q", ("the answer is here",)), highlighted, 1.0).evidence_rank == 2


def test_summarise_counts_hits_mrr_and_abstentions():
    found = judge(Case("q1", ("x",)), _answer(["y", "x"], [[], [(0, 1)]]), 10.0)
    missed = judge(Case("q2", ("z",)), _answer(["y"], [[]], abstained=True), 30.0)
    refused = judge(Case("q3", None), _answer(["y"], [[]], abstained=True), 20.0)
    answered = judge(Case("q4", None), _answer(["y"], [[]]), 40.0)
    m = summarise([found, missed, refused, answered])
    assert (m["hit@1"], m["hit@3"], m["mrr@10"], m["evidence@3"]) == (0.0, 0.5, 0.25, 0.5)
    assert (m["abstained_unanswerable"], m["false_abstentions"]) == (1, 1)
    assert m["latency_ms"]["p50"] == 25.0
    assert "hit@1 0.000" in format_report(m) and "q4 (answered, should have abstained)" in format_report(m)


def test_load_cases_names_the_bad_line(tmp_path):
    path = tmp_path / "set.jsonl"
    lines = [json.dumps({"question": "ok?", "evidence": None}), json.dumps({"question": 3})]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(QAError, match=r"set.jsonl:2"):
        load_cases(path)
    path.write_text(json.dumps({"question": "ok?", "evidence": ["a", "b"]}) + "\n")
    assert load_cases(path) == [Case("ok?", ("a", "b"))]


def test_judge_by_gold_spans_and_answer_has_gold():
    answer = _answer(["x", "The Normans were in France. Then"], [[], [(0, 27)]])
    answer.answer = "The Normans were in France. [2]"
    for p in answer.passages:
        p.start, p.end = 100 * p.rank, 100 * p.rank + len(p.text)
    case = Case("where?", ("France",), "d2.txt", ((220, 226),))
    outcome = judge(case, answer, 1.0)
    assert (outcome.hit_rank, outcome.evidence_rank, outcome.answer_has_gold) == (2, 2, True)
    elsewhere = judge(Case("where?", ("France",), "d1.txt", ((220, 226),)), answer, 1.0)
    assert (elsewhere.hit_rank, elsewhere.evidence_rank) == (None, None)
    assert has_gold("It was the Duchy of Normandy. [1]", ("duchy of normandy",))
    assert not has_gold("Franceville [1]", ("France",)) and not has_gold("x", ("the",))


def test_fusion_lets_neither_method_dominate_by_its_scale():
    dense = {1: 0.80, 2: 0.79, 3: 0.20}  # cosine: 1 and 2 close
    lexical = {2: 30.0, 3: 1.0}  # BM25: 2 far ahead
    fused = fuse(dense, lexical, weight=0.5, term_weight=0.0)
    assert max(fused, key=fused.get) == 2
    assert fuse(dense, lexical, weight=0.0, term_weight=0.0)[1] == 1.0  # min-max: the best cosine is 1
    with_terms = fuse(dense, {}, {3: 1.0}, weight=0.0, term_weight=0.9)
    assert max(with_terms, key=with_terms.get) == 3


def test_evidence_pairs_the_sentence_with_the_question_words_and_the_closest_in_meaning():
    weights = {"tariff": 3.0, "steel": 2.0}
    texts = ["Steel tariffs rose.", "Nothing relevant.", "Duties on metal went up."]
    coverage = term_coverage(weights, texts)
    assert coverage.tolist() == [1.0, 0.0, 0.0]
    assert highlight_order(np.array([0.5, 0.1, 0.7]), coverage)[:2] == [0, 2]


def _stored(cid: int, encoder, title: str, sentences: list[str], ordinal: int = 1) -> StoredChunk:
    text = " ".join(sentences)
    spans, at = [], 0
    for s in sentences:
        spans.append((at, at + len(s)))
        at += len(s) + 1
    chunk = Chunk("doc.txt", ordinal, 0, len(text), text, None, None, tuple(spans))
    return StoredChunk(cid, chunk, title, encoder.encode(sentences))


def test_a_passage_whose_one_sentence_answers_gains_on_one_that_is_only_near_on_average(encoder):
    question = "In what year did Japan first run a bilateral trade surplus with the United States?"
    weights = dict.fromkeys(lexical.terms(question), 1.0)
    answering = _stored(1, encoder, "Report", [
        "The committee met in Geneva to discuss fisheries.",
        "Japan ran its first bilateral trade surplus with the United States in 1965.",
        "Weather delayed several flights that autumn.",
    ])
    near = _stored(2, encoder, "Report", [
        "Trade between Japan and the United States grew steadily.",
        "Both economies relied on exports and on each other's markets.",
        "Officials on both sides often spoke of economic partnership.",
    ])
    fused = {1: 0.50, 2: 0.55}  # the passage near on average leads before its sentences are looked at
    add_best_sentences(fused, {1: answering, 2: near}, SentenceScores(encoder.encode_query(question), weights))
    assert fused[1] > fused[2]
    cosine, share = best_sentence(answering, encoder.encode_query(question), weights)
    assert cosine > 0.6 and share > 0.7


def test_the_title_line_is_not_a_passages_best_sentence(encoder):
    query = encoder.encode_query("What is the Article II mandate?")
    first = _stored(1, encoder, "The Article II Mandate", ["The Article II Mandate", "Cats sleep a lot."], ordinal=0)
    cosine, share = best_sentence(first, query, dict.fromkeys(lexical.terms("What is the Article II mandate?"), 1.0))
    assert cosine < 0.3 and share == 0.0
