"""Who wrote a document, who published it and when: answered from its metadata, citing where it is
written, with the real model and index (the report and one small document of each format)."""

import shutil

import pytest
from fastapi.testclient import TestClient

from conftest import REPORT, make_settings
from qa.answering.document_questions import recognise
from qa.indexing import lexical, naming
from qa.service import Assistant
from qa.serving.api import create_app
from test_metadata import FIXTURES, chips_pdf

METADATA_WORDING = "according to the document's metadata"
BYLINE = "Yoichi Funabashi, Matthew P. Goodman | Centre for Strategic and International Studies"
COPYRIGHT = "Centre for Strategic and International Studies, All content © 2018. All rights reserved."


@pytest.fixture(scope="module")
def library(tmp_path_factory, encoder) -> Assistant:
    root = tmp_path_factory.mktemp("library")
    corpus = root / "corpus"
    corpus.mkdir()
    shutil.copy(REPORT, corpus / REPORT.name)
    for path in FIXTURES.iterdir():
        shutil.copy(path, corpus / path.name)
    (corpus / "chips.pdf").write_bytes(chips_pdf())
    assistant = Assistant(make_settings(root), encoder=encoder)
    assistant.reindex()
    return assistant


def cited_line(assistant: Assistant, question: str, documents=None) -> tuple[dict, str]:
    """(answer, the one highlighted line of the first passage), checking the passage covers it."""
    body = assistant.ask(question, 3, documents).to_dict()
    first = body["passages"][0]
    text = assistant.document(first["doc_id"]).text
    assert text[first["start"]:first["end"]] == first["text"]
    assert "[1]" in body["answer"] and not body["abstained"]
    (a, b), = first["highlights"]
    return body, first["text"][a:b]


@pytest.mark.parametrize(("question", "line", "says"), [
    ("Who wrote the report?", BYLINE, "Yoichi Funabashi and Matthew P. Goodman"),
    ("Who are the authors of The Article II Mandate?", BYLINE, "Yoichi Funabashi and Matthew P. Goodman"),
    ("Which organisation published the report?", BYLINE, "Centre for Strategic and International Studies"),
    ("When was the report published?", COPYRIGHT, "in 2018"),
])
def test_the_report_is_answered_from_its_byline_and_copyright_line(report_assistant, question, line, says):
    body, highlighted = cited_line(report_assistant, question)
    assert highlighted == line
    assert says in body["answer"] and METADATA_WORDING not in body["answer"].lower()
    assert body["passages"][0]["doc_id"] == REPORT.name


@pytest.mark.parametrize(("question", "line", "says"), [
    ("Who wrote Harbour Logistics in the Pacific Rim?", "By Aiko Mori and Daniel Reyes | Pacific Freight Council",
     "Aiko Mori and Daniel Reyes"),
    ("Who published Harbour Logistics in the Pacific Rim?", "By Aiko Mori and Daniel Reyes | Pacific Freight Council",
     "Pacific Freight Council"),
    ("When was Harbour Logistics in the Pacific Rim published?", "Published: 3 March 2021", "on 3 March 2021"),
])
def test_plain_text_answers_cite_the_byline_and_date_line(library, question, line, says):
    body, highlighted = cited_line(library, question)
    assert body["passages"][0]["doc_id"] == "harbour-logistics.txt"
    assert highlighted == line and says in body["answer"]


@pytest.mark.parametrize(("question", "key", "says"), [
    ("Who are the authors of Fisheries Cooperation in the North Pacific?", "author:", "Sofia Lindqvist and Kenta Oda"),
    ("Which institute published Fisheries Cooperation in the North Pacific?", "publisher:", "Northern Seas Institute"),
    ("When was Fisheries Cooperation in the North Pacific written?", "date:", "in September 2019"),
])
def test_markdown_answers_cite_the_front_matter(library, question, key, says):
    body = library.ask(question, 3).to_dict()
    first = body["passages"][0]
    assert first["doc_id"] == "fisheries-cooperation.md" and says in body["answer"] and not body["abstained"]
    text = library.document(first["doc_id"]).text
    if key in text:  # front matter kept in the text: its line is cited and highlighted
        (a, b), = first["highlights"]
        assert first["text"][a:b].startswith(key)
    else:  # a reader that drops front matter leaves it metadata
        assert METADATA_WORDING in body["answer"].lower()


@pytest.mark.parametrize(("question", "doc_id", "says"), [
    ("Who wrote Energy Security and LNG Trade?", "energy-security.html", "Grace Okafor and Lars Henriksen"),
    ("Who published Energy Security and LNG Trade?", "energy-security.html", "Atlantic Energy Forum"),
    ("When was Energy Security and LNG Trade published?", "energy-security.html", "on 2 November 2017"),
    ("Who is the author of Semiconductor Supply Chains in East Asia?", "chips.pdf", "Kenji Sato and Maria Lopez"),
    ("Who published Semiconductor Supply Chains in East Asia?", "chips.pdf", "East Asia Chip Observatory"),
    ("In what year was Semiconductor Supply Chains in East Asia published?", "chips.pdf", "on 7 June 2021"),
])
def test_html_meta_and_pdf_info_answers_say_so_and_cite_the_first_passage(library, question, doc_id, says):
    body = library.ask(question, 3).to_dict()
    first = body["passages"][0]
    assert body["answer"].startswith("According to the document's metadata,") and says in body["answer"]
    assert "[1]" in body["answer"] and not body["abstained"]
    assert first["doc_id"] == doc_id and first["start"] == 0
    assert library.generation().chunk_covering(doc_id, 0).chunk.start == first["start"]


@pytest.mark.parametrize(("question", "doc_id", "says"), [
    ("Who wrote the Pacific Freight Council report?", "harbour-logistics.txt", "Aiko Mori and Daniel Reyes"),
    ("When was the fisheries paper published?", "fisheries-cooperation.md", "in September 2019"),
    ("When was the Atlantic Energy Forum paper published?", "energy-security.html", "on 2 November 2017"),
    ("Who published the semiconductor study?", "chips.pdf", "East Asia Chip Observatory"),
])
def test_a_document_called_a_report_or_paper_is_named_by_a_title_word_or_its_publisher(library, question, doc_id,
                                                                                       says):
    body = library.ask(question, 3).to_dict()
    assert body["passages"][0]["doc_id"] == doc_id and says in body["answer"] and not body["abstained"]


def test_a_name_two_titles_share_names_no_document(library):
    body = library.ask("Who wrote the Pacific report?", 3).to_dict()  # Harbour Logistics and Fisheries, both Pacific
    assert "written by" not in body["answer"]


def test_the_document_filter_chooses_which_report(library):
    body, highlighted = cited_line(library, "Who wrote the report?", ["harbour-logistics.txt"])
    assert "Aiko Mori and Daniel Reyes" in body["answer"] and "Aiko Mori" in highlighted
    body, _ = cited_line(library, "Who wrote the report?", [REPORT.name])
    assert "Funabashi" in body["answer"]


@pytest.mark.parametrize("words", ["CSIS", "Mori", "logistics", "fisheries cooperation", "semiconductor report",
                                   "Pacific", "the treaty", "zebra"])
def test_the_documents_a_question_can_name_are_those_its_words_name(library, words):
    """Generation.named_by leaves out only documents whose title, file name and makers (surnames, the
    publisher and its initials) hold none of the words, which no comparison could pick."""
    gen = library.generation()
    wanted = frozenset(lexical.terms(words))
    every = [(d.doc_id, d.title) for d in gen.documents()
             if wanted & naming.title_terms(d.doc_id, d.title)[0].union(*naming.makers(d.metadata))]
    assert gen.named_by(wanted) == every
    assert bool(every) == (words not in ("the treaty", "zebra"))


def test_a_document_is_named_by_its_live_version_only(tmp_path, encoder):
    """After a document's title changes, the old title names nothing and the new one names it once,
    though the segment of its first version is still open beside the new one."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(FIXTURES / "harbour-logistics.txt", corpus / "harbour-logistics.txt")
    shutil.copy(REPORT, corpus / REPORT.name)
    assistant = Assistant(make_settings(tmp_path), encoder=encoder)
    assistant.reindex(merge=False)
    text = (corpus / "harbour-logistics.txt").read_text()
    (corpus / "harbour-logistics.txt").write_text(text.replace("Pacific Rim", "Pacific Basin", 1))
    assistant.reindex(merge=False)
    gen = assistant.generation()
    assert len(gen.segments) == 2
    assert gen.named_by(frozenset(lexical.terms("Rim"))) == []
    assert gen.named_by(frozenset(lexical.terms("Harbour Logistics"))) == [
        ("harbour-logistics.txt", "Harbour Logistics in the Pacific Basin")]
    assert gen.named_by(frozenset(lexical.terms("basin"))) == [
        ("harbour-logistics.txt", "Harbour Logistics in the Pacific Basin")]
    body = assistant.ask("Who wrote Harbour Logistics in the Pacific Basin?").to_dict()
    assert "Aiko Mori and Daniel Reyes" in body["answer"]


def test_a_line_cut_between_two_chunks_is_cited_whole(tmp_path, encoder):
    """Small chunks put the copyright line's two sentences in two chunks: the passage takes in the rest."""
    (tmp_path / "corpus").mkdir()
    line = ("The Pacific Freight Council, a research group that studies container ports, shipping lines and "
            "inland logistics across Asia, All content © 2021. All rights reserved by the council and its members.")
    (tmp_path / "corpus" / "ports.txt").write_text(
        f"Port Notes\n\nContainer ports handled record volumes after the pandemic.\n\n{line}\n")
    assistant = Assistant(make_settings(tmp_path, chunk_tokens=32), encoder=encoder)
    assistant.reindex()
    line_end = assistant.document("ports.txt").text.index(line) + len(line) - 1
    assert assistant.generation().chunk_covering("ports.txt", line_end).chunk.text.startswith("All rights")
    body, highlighted = cited_line(assistant, "When was Port Notes published?")
    assert highlighted == line and body["answer"] == "Port Notes was published in 2021 [1]."


def test_a_document_without_the_metadata_gets_the_ordinary_answer(tmp_path, encoder):
    """A document named like the thing it describes ("West Side Story") answers from its passages."""
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "west-side-story.txt").write_text(
        "West Side Story\n\nWest Side Story is a musical with a book by Arthur Laurents and lyrics by "
        "Stephen Sondheim, first staged on Broadway in 1957.\n")
    assistant = Assistant(make_settings(tmp_path), encoder=encoder)
    assistant.reindex()
    body = assistant.ask("Who wrote West Side Story?").to_dict()
    assert "Arthur Laurents" in body["answer"] and METADATA_WORDING not in body["answer"].lower()
    assert all(p["authors"] is None and p["date"] is None for p in body["passages"])


def test_a_report_named_by_its_publisher_and_subject_is_answered_from_its_byline(report_assistant):
    body, highlighted = cited_line(report_assistant, "Who wrote the CSIS report on the U.S.-Japan economic alliance?")
    assert highlighted == BYLINE and "Yoichi Funabashi and Matthew P. Goodman" in body["answer"]


@pytest.mark.parametrize("question", [
    "Who published the CSIS report on cybersecurity?",  # the publisher's, but another report
    "Who wrote about digital trade?",  # a topic, not a document
    "When was Article II written?",  # a part of the treaty, not the report's title
    "Who published the 1960 treaty?",
    "What is the date of the treaty?",
])
def test_questions_about_other_things_are_not_answered_from_metadata(report_assistant, question):
    body = report_assistant.ask(question, 3).to_dict()
    assert "Funabashi" not in body["answer"] and "in 2018 [1]" not in body["answer"]


@pytest.mark.parametrize(("question", "kind"), [
    ("who are the authors?", "authors"), ("Who is the report by?", "authors"),
    ("By whom was this paper written?", "authors"), ("What organization issued the study?", "publisher"),
    ("Who is the publisher?", "publisher"), ("When did the report come out?", "date"),
    ("What is the publication date of the report?", "date"), ("What does the report recommend?", None),
    ("Who were the report's authors?", "authors"), ("Who's the author of this paper?", "authors"),
    ("Which researchers wrote the study?", "authors"), ("Authors of the report?", "authors"),
    ("What is the report's publication date?", "date"), ("What year is the report from?", "date"),
    ("Who is the report's publisher?", "publisher"), ("Which think tank is the report from?", "publisher"),
    ("What is the date of the treaty?", "date"),  # recognised, then no document named: ordinary answer
    ("Who signed the 1960 treaty?", None), ("What year did Abe return to office?", None),
    ("When did Japan run its first trade surplus?", None), ("Who signed TPP?", None),
    ("What year did the report come out?", "date"), ("When is the report from?", "date"),
    ("What is the publication year of the report?", "date"), ("Whose report is this?", "authors"),
    ("What year did Japan come out of recession?", None),
    ("Whose idea was APEC?", None),
])
def test_question_kinds(question, kind):
    found = recognise(question)
    assert (found.kind if found else None) == kind


def test_documents_and_passages_carry_the_metadata(library):
    with TestClient(create_app(assistant=library)) as client:
        listed = {d["doc_id"]: d for d in client.get("/documents").json()}
        one = client.get(f"/documents/{REPORT.name}").json()
        asked = client.post("/ask", json={"question": "Why did Congress smash a Toshiba radio?", "k": 1}).json()
    assert (listed[REPORT.name]["authors"], listed[REPORT.name]["publisher"], listed[REPORT.name]["date"]) == (
        ["Yoichi Funabashi", "Matthew P. Goodman"], "Centre for Strategic and International Studies", "2018")
    assert listed["energy-security.html"]["date"] == "2017-11-02"
    assert listed["fisheries-cooperation.md"]["date"] == "2019-09"
    assert listed["chips.pdf"]["authors"] == ["Kenji Sato", "Maria Lopez"]
    assert listed["harbour-logistics.txt"]["publisher"] == "Pacific Freight Council"
    assert one["authors"] == ["Yoichi Funabashi", "Matthew P. Goodman"] and one["text"].startswith("The Article II")
    (passage,) = asked["passages"]
    assert passage["doc_id"] == REPORT.name and passage["date"] == "2018"
    assert passage["publisher"] == "Centre for Strategic and International Studies"
