"""The HTTP contract of DESIGN.md, through TestClient with the real model and index."""

import json
import re

import pytest
from fastapi.testclient import TestClient

from qa.service import Assistant
from qa.serving.api import create_app


@pytest.fixture(scope="module")
def client(report_assistant):
    with TestClient(create_app(assistant=report_assistant)) as c:
        yield c


QUESTION = "Why did members of Congress smash a Toshiba radio?"


def test_ask_returns_the_contract_shape_with_cited_passages(client, report_assistant):
    r = client.post("/ask", json={"question": QUESTION, "k": 3})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"question", "answer", "abstained", "confidence", "took_ms", "passages"}
    assert body["question"] == QUESTION and body["abstained"] is False
    assert [p["rank"] for p in body["passages"]] == [1, 2, 3]
    first = body["passages"][0]
    assert set(first) == {"rank", "doc_id", "title", "section", "page", "start", "end", "text", "score", "highlights",
                          "authors", "publisher", "date"}
    assert "sledgehammers to a Toshiba radio" in first["text"]
    # Offsets map back exactly to the document text /documents/{doc_id} returns.
    doc = client.get(f"/documents/{first['doc_id']}").json()
    for p in body["passages"]:
        assert doc["text"][p["start"] : p["end"]] == p["text"]
        assert len(p["highlights"]) <= 2


def test_every_answer_marker_points_at_a_passage_whose_highlight_holds_the_claim(client):
    body = client.post("/ask", json={"question": "What should the allies do about corruption?"}).json()
    claims = re.findall(r"(.+?) \[(\d+)\]", body["answer"])
    assert claims
    for sentence, rank in claims:
        passage = body["passages"][int(rank) - 1]
        marked = [" ".join(passage["text"][a:b].split()) for a, b in passage["highlights"]]
        assert sentence.strip() in marked


def test_get_ask_gives_the_same_answer_as_post(client):
    post = client.post("/ask", json={"question": QUESTION, "k": 4}).json()
    get = client.get("/ask", params={"q": QUESTION, "k": 4}).json()
    post.pop("took_ms"), get.pop("took_ms")
    assert get == post


def test_off_topic_question_abstains_and_says_so(client):
    body = client.post("/ask", json={"question": "How do I bake sourdough bread at home?"}).json()
    assert body["abstained"] is True
    assert "do not answer" in body["answer"]
    assert "[" not in body["answer"]


def test_document_filter_limits_the_search_and_an_unknown_document_is_named(client):
    body = client.post("/ask", json={"question": QUESTION, "documents": ["article-ii-mandate.txt"]}).json()
    assert body["passages"] and {p["doc_id"] for p in body["passages"]} == {"article-ii-mandate.txt"}
    r = client.post("/ask", json={"question": QUESTION, "documents": ["other.txt"]})
    assert r.status_code == 422 and "unknown doc_id 'other.txt'" in r.json()["detail"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"question": ""}, "question"),
        ({"question": "   \n\t "}, "question"),
        ({"question": "x" * 2001}, "question"),
        ({"question": "ok", "k": 0}, "k"),
        ({"question": "ok", "k": 21}, "k"),
        ({"question": "ok", "k": "many"}, "k"),
        ({"k": 3}, "question"),
        ({"question": "ok", "documents": ["a"] * 101}, "documents"),
    ],
)
def test_invalid_requests_get_422_naming_the_field(client, payload, field):
    r = client.post("/ask", json=payload)
    assert r.status_code == 422
    assert field in r.json()["detail"]


def test_malformed_json_gets_422(client):
    r = client.post("/ask", content=b'{"question": "x",', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"]


@pytest.mark.parametrize("params", [{"q": ""}, {"q": "ok", "k": "0"}, {"q": "x" * 2001}])
def test_get_ask_validates_too(client, params):
    assert client.get("/ask", params=params).status_code == 422


def test_a_2000_character_question_in_a_64_kb_body_is_accepted(client):
    body = {"question": "trade " * 333, "k": 1, "note": "x" * 60_000}
    data = json.dumps(body).encode()
    assert len(data) > 60_000
    r = client.post("/ask", content=data, headers={"content-type": "application/json"})
    assert r.status_code == 200


def test_health_and_documents(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["documents"] == 1 and health["chunks"] > 5
    assert health["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    (listed,) = client.get("/documents").json()
    assert listed["doc_id"] == "article-ii-mandate.txt" and listed["chunks"] == health["chunks"]
    assert listed["title"].startswith("The Article II Mandate")
    assert client.get("/documents/nothing-here.txt").status_code == 404
    assert "detail" in client.get("/documents/nothing-here.txt").json()


def test_without_an_index_the_service_says_so_with_503(fresh_assistant):
    with TestClient(create_app(assistant=fresh_assistant)) as c:
        health = c.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "no index"
        r = c.post("/ask", json={"question": "anything"})
        assert r.status_code == 503 and "qa index" in r.json()["detail"]
        assert c.get("/documents").status_code == 503


def test_an_index_built_with_other_chunker_settings_is_refused_with_the_fix(report_assistant, encoder):
    other = Assistant(report_assistant.settings.model_copy(update={"chunk_tokens": 120}), encoder=encoder)
    with TestClient(create_app(assistant=other)) as c:
        r = c.post("/ask", json={"question": QUESTION})
        assert r.status_code == 503
        assert "qa index --rebuild" in r.json()["detail"]
        assert c.get("/health").status_code == 503


def test_openapi_documents_ask(client):
    assert "/ask" in client.get("/openapi.json").json()["paths"]
    assert client.get("/docs").status_code == 200


@pytest.mark.parametrize("question", [QUESTION, "How do I repot an orchid?", "Who wrote the report?"])
def test_ask_sends_the_body_the_answer_model_describes_serialised_once(client, question):
    """/ask serialises the answer it built without validating it again (issue 22): the bytes must be
    those FastAPI sends for a value validated against the documented Answer schema, and the schema
    must still name Answer as the response of both /ask routes."""
    from pydantic import TypeAdapter

    from qa.answering.answers import Answer

    r = client.post("/ask", json={"question": question})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    model = TypeAdapter(Answer)  # what FastAPI does with a response_model: validate, then dump_json
    assert r.content == model.dump_json(model.validate_python(json.loads(r.content)))
    paths = client.get("/openapi.json").json()["paths"]["/ask"]
    for method in ("get", "post"):
        schema = paths[method]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Answer"}


def test_writes_are_disabled_without_a_token(client):
    assert client.post("/reindex").status_code == 403
    assert client.delete("/documents/article-ii-mandate.txt").status_code == 403
    r = client.post("/documents", files={"file": ("n.txt", b"hello", "text/plain")})
    assert r.status_code == 403
