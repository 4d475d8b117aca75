"""A sentence beside the answer's first only when it answers too (issue 23), from the first passage as
from any other: as close in meaning as the first, or holding some of the question's words; never
because it comes next by closeness. (Highlights keep the contract's two a passage: see answers.py.)

The documents are written here, so that which sentence answers is known; the real model, index and
/ask path choose. min_confidence=0: these tests are about the choice of sentences, not abstention.
"""

from __future__ import annotations

import pytest

from conftest import make_settings
from qa.service import Assistant

LIGHTHOUSE = """Gull Point Lighthouse

Gull Point Lighthouse was first lit in March 1871, after three ships ran aground on the reef below it. \
The lighthouse tower stands forty metres above the sea on a granite headland. \
Its keeper's cottage now houses a small museum about the light and the wrecks. \
Visitors can climb the tower on summer weekends.
"""

ORCHARD = """Hollin Orchard

Hollin Orchard grows forty kinds of apple on a south-facing slope above the village. \
Its oldest trees were planted by the monks of Hollin Priory. \
The orchard's cider is pressed each October in a barn beside the road. \
A hard frost in April can destroy the year's blossom.
"""


@pytest.fixture(scope="module")
def assistant(tmp_path_factory, encoder):
    root = tmp_path_factory.mktemp("further")
    (root / "corpus").mkdir()
    for name, text in (("lighthouse.txt", LIGHTHOUSE), ("orchard.txt", ORCHARD)):
        (root / "corpus" / name).write_text(text, encoding="utf-8")
    built = Assistant(make_settings(root, min_confidence=0.0), encoder=encoder)
    built.reindex()
    return built


def test_a_when_answer_is_not_followed_by_a_sentence_of_its_passage_that_shares_no_word_with_it(assistant):
    # The cottage sentence is the passage's next closest in meaning, but holds none of the question's
    # words (and no date): it is only next in rank.
    answer = assistant.ask("When was Gull Point Lighthouse first lit?")
    assert answer.answer == ("Gull Point Lighthouse was first lit in March 1871, after three ships ran aground "
                             "on the reef below it. [1]")


def test_a_sentence_less_close_than_the_first_and_without_the_questions_words_is_left_out(assistant):
    answer = assistant.ask("What is in the keeper's cottage at Gull Point?")
    assert answer.answer.startswith("Its keeper's cottage now houses a small museum")
    assert "forty metres" not in answer.answer


def test_a_further_sentence_that_holds_the_questions_words_stays(assistant):
    # The orchard's trees and what it grows: the second sentence names the orchard the question asks about.
    answer = assistant.ask("Who planted the oldest trees of Hollin Orchard?")
    assert answer.answer == ("Its oldest trees were planted by the monks of Hollin Priory. [1] Hollin Orchard "
                             "grows forty kinds of apple on a south-facing slope above the village. [1]")
