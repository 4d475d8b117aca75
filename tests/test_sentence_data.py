"""What the answer reads of each sentence is stored with the index (issue 22): it equals what the
query-time functions compute from the text, and a format-5 index is upgraded to store it, without
encoding anything, keeping every answer byte for byte."""

from __future__ import annotations

import json
import pickle
import shutil
import sqlite3
from pathlib import Path

from conftest import FIXTURES, REPORT, indexed_assistant, make_settings
from qa.answering.evidence import SentenceScores, best_sentence, sentence_coverage, set_coverage, stems
from qa.indexing import lexical
from qa.indexing.generations import current_generation
from qa.indexing.sentences import one_line
from qa.indexing.store import STORE, Generation
from qa.reading.sentence_roles import SentenceRole, sentence_roles
from qa.service import Assistant
from test_segments import MORE_QUESTIONS, CountingEncoder

ANSWERS = sorted((FIXTURES / "answers").glob("*")) + sorted((FIXTURES / "distractors").glob("*"))[:2]
QUESTIONS = MORE_QUESTIONS + [
    "Why does so much phosphorus reach Lake Marrow?",
    "Why must the Northfield Museum's collection move?",
    "When was the Marrow Angling Club founded?",
    "How many members does the angling club have?",
]


def all_chunks(assistant: Assistant):
    gen = assistant.generation()
    return gen.chunks([int(i) for i in gen.chunk_ids_of([d.doc_id for d in gen.documents()])]).values()


def test_the_stored_sentence_data_is_what_the_query_time_functions_compute(tmp_path, encoder):
    assistant = indexed_assistant(tmp_path, encoder, ANSWERS)
    titles = roles_seen = 0
    for stored in all_chunks(assistant):
        chunk, data = stored.chunk, stored.data
        spans = tuple((a - chunk.start, b - chunk.start) for a, b in chunk.sentences)
        texts = [chunk.text[a:b] for a, b in spans]
        assert data.terms == tuple(frozenset(stems(t)) for t in texts)
        assert data.chunk_terms == frozenset(stems(chunk.text))
        assert data.title_lines == tuple(chunk.ordinal == 0 and one_line(t) == one_line(stored.title) for t in texts)
        assert data.roles == sentence_roles(chunk.text, spans)
        titles += sum(data.title_lines)
        roles_seen += sum(r != SentenceRole() for r in data.roles)
    assert titles >= len(ANSWERS) - 1 and roles_seen > 0  # the fixtures have title lines and roles to store


def test_sentence_shares_from_the_stored_data_equal_the_text_based_ones_to_the_last_bit(tmp_path, encoder):
    """Each sentence's share of the question's IDF and each passage's best sentence, as the query
    path computes them from the stored data, are the same floats as summing over each sentence's term
    set, from the text: answers depend on them. The first question to score a passage reads its stored
    term lists, later ones a term -> sentences map: both are compared; and so are the ones a question's
    SentenceScores keeps for its pool and its answer, title lines and all."""
    assistant = indexed_assistant(tmp_path, encoder, ANSWERS)
    gen = assistant.generation()
    compared = lists_read = 0
    for question in QUESTIONS:
        weights = gen.words.idf(list(dict.fromkeys(lexical.terms(question))))
        query = encoder.encode_query(question)
        kept = SentenceScores(query, weights)
        for stored in all_chunks(assistant):
            chunk = stored.chunk
            texts = [chunk.text[a - chunk.start:b - chunk.start] for a, b in chunk.sentences]
            expected = set_coverage(weights, [stems(t) for t in texts])
            first = "term_sentences" not in stored.data.__dict__
            assert sentence_coverage(stored, weights).tolist() == expected.tolist()
            lists_read += first and "term_sentences" not in stored.data.__dict__
            keep = [i for i, title in enumerate(stored.data.title_lines) if not title]
            if keep:
                best = (float((stored.sentence_vectors[keep] @ query).max()), float(expected[keep].max()))
                assert best_sentence(stored, query, weights) == best
                assert kept.best(stored) == best
                compared += 1
            assert kept.coverage(stored).tolist() == expected.tolist()
            assert kept.cosines(stored).tolist() == (stored.sentence_vectors @ query).tolist()
    assert compared > 100 and lists_read > 10


def test_passages_kept_parsed_read_as_a_fresh_read(tmp_path, encoder):
    """A segment keeps parsed passages: asked again (any order, any mix), it returns what it read,
    by id, as SQLite's first read did."""
    assistant = indexed_assistant(tmp_path, encoder, ANSWERS)
    gen = assistant.generation()
    ids = [int(i) for i in gen.chunk_ids_of([d.doc_id for d in gen.documents()])]
    first = gen.chunks(ids[::2])
    again = gen.chunks(list(reversed(ids)))
    assert list(first) == sorted(first) and list(again) == sorted(ids)
    assert all(again[i] is first[i] for i in first)
    fresh = Generation(gen.path).chunks(ids)
    assert all(fresh[i].chunk == again[i].chunk and fresh[i].data == again[i].data
               and (fresh[i].sentence_vectors == again[i].sentence_vectors).all() for i in ids)
    # Sent to another process (a shard's answer on Ray Serve), the data goes as its stored text.
    sent = pickle.loads(pickle.dumps(list(Generation(gen.path).chunks(ids).values())))
    assert [p.data for p in sent] == [again[i].data for i in ids]
    (segment,) = gen.segments
    stored = [row[0] for row in segment.rows("SELECT sentence_data FROM chunks ORDER BY id")]
    unread = pickle.loads(pickle.dumps(list(Generation(gen.path).chunks(ids).values())))
    assert [p.data.to_json() for p in unread] == stored


def format_5_copy(source: Path, target: Path) -> None:
    """The index at `source` as format 5 wrote it: its segments' stores without the sentence data."""
    shutil.copytree(source, target)
    gen = current_generation(target)
    manifest = json.loads((gen / "manifest.json").read_text())
    for entry in manifest["segments"]:
        db = sqlite3.connect(target / "segments" / entry["name"] / STORE)
        db.execute("ALTER TABLE chunks DROP COLUMN sentence_data")
        db.commit()
        db.close()
    (gen / "manifest.json").write_text(json.dumps({**manifest, "format": 5}))


def bodies(assistant: Assistant) -> list[dict]:
    out = []
    for question in QUESTIONS:
        body = assistant.ask(question).to_dict()
        body.pop("took_ms")
        out.append(body)
    return out


def test_a_format_5_index_is_upgraded_without_encoding_and_answers_the_same(tmp_path, encoder):
    (tmp_path / "v6").mkdir()
    original = indexed_assistant(tmp_path / "v6", encoder, [REPORT, *ANSWERS])
    (tmp_path / "v6" / "corpus" / "extra.txt").write_text((FIXTURES / "incremental" / "joint-statement.txt")
                                                         .read_text())
    original.reindex(merge=False)  # two segments
    settings = make_settings(tmp_path / "v5")
    shutil.copytree(original.settings.corpus_dir, settings.corpus_dir)
    format_5_copy(original.settings.index_dir, settings.index_dir)
    old = Generation(current_generation(settings.index_dir))
    assert len(old.segments) == 2
    try:
        old.chunks([int(old.segments[0].ids[0])])
        raise AssertionError("a format-5 store has no sentence data to read")
    except sqlite3.OperationalError:
        pass

    counting = CountingEncoder(encoder)
    upgraded = Assistant(settings, encoder=counting)
    summary = upgraded.reindex()
    assert counting.passages == 0  # the stored vectors were reused
    assert "upgraded: the format-5 index had its 2 segments given" in summary.describe()
    assert "nothing was encoded again" in summary.describe()
    assert not summary.added and not summary.changed
    assert bodies(upgraded) == bodies(original)
