"""The same answers: record the `POST /ask` body of every benchmark question for one commit, compare another's.

    # the commit before a change, from a worktree of it (its own src first on the path):
    PYTHONPATH=/tmp/base/src .venv/bin/python bench/same_answers.py record DIR/base.jsonl --workdir DIR
    # the change, on the same workdir (its indexes, written by the older commit, are upgraded by it):
    PYTHONPATH=$PWD/src .venv/bin/python bench/same_answers.py compare DIR/base.jsonl --workdir DIR

The questions: every question of the SQuAD shared half (against the 16 articles), of WikiQA-test
(against the report and the 619 WikiQA documents), the report's sets in tests/data (`dev_*.jsonl`
and `unanswerable_on_topic.jsonl`, against the report alone and against report + WikiQA) and
tests/data/answer_kinds.jsonl (each against its corpus: fixtures, squad or report + WikiQA). Each
body is the bytes the app sends (FastAPI's test client, the real routes and serialisation) with only
`"took_ms":<number>` cut out. `compare` asks the same questions with the code on the path, prints
the counts identical / different and the first differences, and exits 1 when any differs.

This script imports nothing from bench/ (those modules put their own src first on the path): the
code it runs is whatever `qa` the path holds, which it prints.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
SQUAD = ROOT.parent / "shared" / "bench" / "squad" / "squad-v2.0-16-articles.json"
WIKIQA = ROOT.parent / "shared" / "bench" / "wikiqa" / "WikiQA-test.tsv"
REPORT = ROOT / "corpus" / "article-ii-mandate.txt"
FIXTURES = [ROOT / "tests" / "fixtures" / "answers", ROOT / "tests" / "fixtures" / "distractors"]
_TOOK = re.compile(rb',?"took_ms":-?[0-9.eE+-]+')


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def report_sets() -> list[str]:
    paths = sorted(DATA.glob("dev_*.jsonl")) + [DATA / "unanswerable_on_topic.jsonl"]
    return [case["question"] for path in paths if path.is_file() for case in _lines(path)]


def squad_corpus(path: Path, folder: Path) -> list[str]:
    """The 16 articles as bench/squad.py writes them; the shared questions."""
    questions = []
    for item in json.loads(path.read_text(encoding="utf-8"))["data"]:
        title = item["title"].replace("_", " ")
        text = f"{title}\n\n" + "".join(f"{p['context']}\n\n" for p in item["paragraphs"])
        _write(folder / "squad" / f"{title}.txt", text)
        questions += [qa["question"] for p in item["paragraphs"] for qa in p["qas"]]
    return questions


def wikiqa_corpus(path: Path, folder: Path) -> list[str]:
    """The report and the 619 WikiQA-test documents as bench/wikiqa.py writes them; its questions."""
    sentences: dict[str, dict[int, str]] = defaultdict(dict)
    titles: dict[str, str] = {}
    questions: dict[str, str] = {}
    with open(path, encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            doc = row["DocumentID"]
            titles[doc] = row["DocumentTitle"]
            sentences[doc][int(row["SentenceID"].rsplit("-", 1)[1])] = row["Sentence"]
            questions.setdefault(row["QuestionID"], row["Question"])
    for doc, by_id in sentences.items():
        _write(folder / "wikiqa" / f"{doc}.txt", f"{titles[doc]}\n\n{' '.join(by_id[i] for i in sorted(by_id))}\n")
    _write(folder / REPORT.name, REPORT.read_text(encoding="utf-8"))
    return list(questions.values())


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def plan(workdir: Path, squad: Path, wikiqa: Path) -> dict[str, tuple[Path, list[str]]]:
    """corpus name -> (its folder, the questions asked of it, in order)."""
    kinds = _lines(DATA / "answer_kinds.jsonl")
    asked: dict[str, tuple[Path, list[str]]] = {}
    report = workdir / "report" / "corpus"
    _write(report / REPORT.name, REPORT.read_text(encoding="utf-8"))
    asked["report"] = (report, report_sets())
    fixtures = workdir / "fixtures" / "corpus"
    for folder in FIXTURES:
        for f in sorted(folder.iterdir()):
            copy = fixtures / f.name
            if f.is_file() and (not copy.is_file() or copy.read_bytes() != f.read_bytes()):
                fixtures.mkdir(parents=True, exist_ok=True)
                shutil.copy(f, copy)
    asked["fixtures"] = (fixtures, [c["question"] for c in kinds if c["corpus"] == "fixtures"])
    if squad.is_file():
        folder = workdir / "squad" / "corpus"
        asked["squad"] = (folder, squad_corpus(squad, folder)
                          + [c["question"] for c in kinds if c["corpus"] == "squad"])
    else:
        print(f"{squad}: not found; SQuAD skipped", file=sys.stderr)
    if wikiqa.is_file():
        folder = workdir / "wikiqa" / "corpus"
        asked["wikiqa"] = (folder, wikiqa_corpus(wikiqa, folder) + report_sets()
                           + [c["question"] for c in kinds if c["corpus"] == "wikiqa"])
    else:
        print(f"{wikiqa}: not found; WikiQA skipped", file=sys.stderr)
    return asked


def bodies(workdir: Path, squad: Path, wikiqa: Path) -> list[dict]:
    """Every question's /ask body (took_ms cut out), corpus by corpus, from the `qa` on the path."""
    from fastapi.testclient import TestClient

    from qa.config import Settings
    from qa.indexing.embedding import Encoder
    from qa.service import Assistant
    from qa.serving.api import create_app

    encoder = Encoder()
    rows = []
    for name, (corpus, questions) in plan(workdir, squad, wikiqa).items():
        settings = Settings(corpus_dir=corpus, index_dir=corpus.parent / "index")
        assistant = Assistant(settings, encoder=encoder)
        began = time.perf_counter()
        summary = assistant.reindex().describe()  # says so when it upgraded an older format
        print(f"{name}: {summary} ({time.perf_counter() - began:.1f} s)", file=sys.stderr)
        client = TestClient(create_app(assistant=assistant))
        began = time.perf_counter()
        for question in questions:
            response = client.post("/ask", json={"question": question})
            rows.append({"corpus": name, "question": question, "status": response.status_code,
                         "body": _TOOK.sub(b"", response.content).decode("utf-8")})
        print(f"{name}: {len(questions)} questions in {time.perf_counter() - began:.1f} s", file=sys.stderr)
    return rows


def compare(before: list[dict], after: list[dict], show: int = 5) -> tuple[int, int]:
    if [(r["corpus"], r["question"]) for r in before] != [(r["corpus"], r["question"]) for r in after]:
        raise SystemExit("the two records do not hold the same questions in the same order")
    same = [a["status"] == b["status"] and a["body"] == b["body"] for a, b in zip(before, after, strict=True)]
    by_corpus: dict[str, list[bool]] = defaultdict(list)
    for row, ok in zip(before, same, strict=True):
        by_corpus[row["corpus"]].append(ok)
    for name, oks in by_corpus.items():
        print(f"{name}: {sum(oks)} identical, {len(oks) - sum(oks)} different")
    shown = 0
    for a, b, ok in zip(before, after, same, strict=True):
        if not ok and shown < show:
            shown += 1
            print(f"\nDIFFERENT [{a['corpus']}] {a['question']}\n  before: {a['body'][:600]}\n"
                  f"  after:  {b['body'][:600]}")
    return sum(same), len(same) - sum(same)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("record", "compare"))
    parser.add_argument("file", type=Path, help="the record: written by record, read by compare")
    parser.add_argument("--workdir", type=Path, required=True, help="corpora and indexes, reused between runs")
    parser.add_argument("--squad", type=Path, default=SQUAD, help="squad-v2.0-16-articles.json")
    parser.add_argument("--wikiqa", type=Path, default=WIKIQA, help="WikiQA-test.tsv")
    parser.add_argument("--out", type=Path, help="compare: also write this run's record here")
    args = parser.parse_args()
    import qa

    print(f"qa from {Path(qa.__file__).parent}", file=sys.stderr)
    rows = bodies(args.workdir.resolve(), args.squad, args.wikiqa)
    if args.action == "record":
        args.file.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{len(rows)} bodies recorded in {args.file}")
        return
    if args.out:
        args.out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    identical, different = compare(_lines(args.file), rows)
    print(f"\ntotal: {identical} identical, {different} different, of {identical + different}")
    sys.exit(1 if different else 0)


if __name__ == "__main__":
    main()
