"""Which sentences a passage highlights, and which one leads the answer, on small documents.

The documents are written here so that the sentence a reader wants is known; the real model, index
and /ask path (Assistant.ask) choose. min_confidence=0: these tests are about the choice of
sentences, not about abstention.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import make_settings
from qa.answering.evidence import highlight_order, term_coverage
from qa.service import Assistant

BRIDGE = """Tacoma Narrows Bridge

The first Tacoma Narrows Bridge opened to traffic on July 1, 1940, across the strait of Puget Sound. \
The bridge collapsed on November 7, 1940, when strong winds twisted its deck until it broke apart. \
It was designed by Leon Moisseiff, an engineer from New York. \
A second bridge opened on the same site in 1950.
"""

SERIES = """The Wire

The Wire is an American crime drama set in Baltimore. \
The Wire has five seasons, sixty episodes in all, aired from 2002 to 2008. \
The Wire was created by David Simon, a former police reporter. \
Each season looks at a different institution of the city.
"""

PUMP = """Syringe

A syringe is a simple pump: a plunger that fits tightly inside a tube. \
The plunger works by pulling liquid into the tube and pushing it out through a needle. \
Syringes are used to give injections and to measure small doses. \
Many syringes are made of plastic and thrown away after one use.
"""


@pytest.fixture(scope="module")
def assistant(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("evidence")
    (root / "corpus").mkdir()
    for name, text in (("bridge.txt", BRIDGE), ("series.txt", SERIES), ("pump.txt", PUMP)):
        (root / "corpus" / name).write_text(text, encoding="utf-8")
    built = Assistant(make_settings(root, min_confidence=0.0), encoder=encoder)
    built.reindex()
    return built


def _highlighted(answer) -> list[str]:
    first = answer.passages[0]
    return [first.text[a:b] for a, b in first.highlights]


def test_a_how_many_question_is_answered_by_the_count_not_by_a_sentence_with_by(assistant):
    answer = assistant.ask("How many seasons does The Wire have?")
    assert answer.passages[0].doc_id == "series.txt"
    assert answer.answer.startswith("The Wire has five seasons")
    assert any(h.startswith("The Wire has five seasons") for h in _highlighted(answer))


def test_a_how_question_is_not_answered_by_who_made_the_thing(assistant):
    # "designed by Leon Moisseiff" names an agent, not how the bridge collapsed.
    answer = assistant.ask("How did the Tacoma Narrows Bridge collapse?")
    assert answer.passages[0].doc_id == "bridge.txt"
    assert not answer.answer.startswith("It was designed by")
    assert any(h.startswith("The bridge collapsed on November 7, 1940") for h in _highlighted(answer))


def test_a_how_question_is_still_answered_by_what_is_done(assistant):
    answer = assistant.ask("How does a syringe work?")
    assert answer.passages[0].doc_id == "pump.txt"
    assert answer.answer.startswith("The plunger works by pulling liquid into the tube")
    assert any(h.startswith("The plunger works by pulling") for h in _highlighted(answer))


def test_of_sentences_holding_the_same_question_words_a_document_s_first_one_is_highlighted_first():
    weights = {"tibia": 5.0}
    texts = ["The tibia is the larger bone of the lower leg.", "The tibia is named after a flute.",
             "It bears most of the body's weight."]
    coverage = term_coverage(weights, texts)
    assert coverage.tolist() == [1.0, 1.0, 0.0]
    cosines = np.array([0.60, 0.62, 0.40])  # the second is a little closer in meaning
    # the passage that opens the document: its first sentence says what the subject is
    assert highlight_order(cosines, coverage, opening=True)[:2] == [0, 1]
    # further in, position says nothing: the closer in meaning
    assert highlight_order(cosines, coverage)[:2] == [1, 0]


def test_a_heading_holding_the_same_words_as_a_sentence_is_not_the_first_highlight():
    texts = ["7. Respond to economic coercion.", "Economic coercion is growing.", "Nothing else."]
    coverage = term_coverage({"coercion": 4.0, "econom": 1.0}, texts)
    assert coverage[0] == coverage[1] > 0
    complete = [False, True, True]
    for opening in (True, False):
        order = highlight_order(np.array([0.7, 0.5, 0.1]), coverage, complete=complete.__getitem__, opening=opening)
        assert order[:2] == [1, 0]


def test_with_none_of_the_question_words_the_closest_in_meaning_comes_first():
    coverage = term_coverage({"osteology": 4.0}, ["Bones grow.", "The leg has two bones.", "Walking is easy."])
    assert highlight_order(np.array([0.3, 0.7, 0.5]), coverage)[:2] == [1, 2]
