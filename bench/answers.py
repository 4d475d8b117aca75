"""Answer text by question kind: does the answer say what the question asks, first, and nothing beside it?

    .venv/bin/python bench/answers.py [--squad ../shared/bench/squad/squad-v2.0-16-articles.json]
        [--wikiqa ../shared/bench/wikiqa/WikiQA-test.tsv] [--workdir DIR] [--show]

The cases are tests/data/answer_kinds.jsonl (issue 23): why, when, how many, what should be done or
is proposed, lists, and padding, each asked of one corpus:
- `fixtures`: tests/fixtures/answers/ and tests/fixtures/distractors/ indexed together;
- `squad`: the 16 SQuAD 2.0 articles as bench/squad.py indexes them (questions of the shared half only);
- `wikiqa`: the 619 WikiQA-test documents as bench/wikiqa.py indexes them.
A corpus whose data is missing is skipped, and said so.

An answer is *right* when it does not abstain, its first sentence (the text before the first [n])
holds every `lead` phrase, the whole answer every `must` phrase, and no `must_not` phrase (padding);
phrases match ignoring case and runs of whitespace. Every question is asked once (after a warm-up),
so the p50 is `Assistant.ask` over these questions; k=5.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

import squad  # noqa: E402
import wikiqa  # noqa: E402
from qa.answering.evaluation import normalise  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.indexing.embedding import Encoder  # noqa: E402
from qa.service import Assistant  # noqa: E402

CASES = ROOT / "tests" / "data" / "answer_kinds.jsonl"
FIXTURES = [ROOT / "tests" / "fixtures" / "answers", ROOT / "tests" / "fixtures" / "distractors"]
KINDS = ("why", "when", "how_many", "proposal", "list", "padding")
_MARKER = re.compile(r"\s*\[\d+\]")


def load_cases(path: Path = CASES) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def first_sentence(answer: str) -> str:
    """The answer's text up to its first [n] marker: the sentence a reader takes as the answer."""
    marker = _MARKER.search(answer)
    return answer[:marker.start()] if marker else answer


def judge(case: dict, answer: str, abstained: bool) -> bool:
    if abstained:
        return False
    whole, lead = normalise(_MARKER.sub("", answer)), normalise(first_sentence(answer))
    return (all(normalise(p) in lead for p in case.get("lead", ()))
            and all(normalise(p) in whole for p in case.get("must", ()))
            and not any(normalise(p) in whole for p in case.get("must_not", ())))


def fixtures_assistant(workdir: Path, encoder: Encoder) -> Assistant:
    settings = Settings(corpus_dir=workdir / "corpus", index_dir=workdir / "index")
    settings.corpus_dir.mkdir(parents=True, exist_ok=True)
    for folder in FIXTURES:
        for f in folder.iterdir():
            if f.is_file() and (not (settings.corpus_dir / f.name).is_file()
                                or (settings.corpus_dir / f.name).read_bytes() != f.read_bytes()):
                shutil.copy(f, settings.corpus_dir / f.name)
    assistant = Assistant(settings, encoder=encoder)
    assistant.reindex()
    return assistant


def squad_assistant(data: Path, workdir: Path, encoder: Encoder) -> Assistant:
    settings = Settings(corpus_dir=workdir / "corpus", index_dir=workdir / "index")
    squad.write_corpus(squad.load(data), settings.corpus_dir)
    assistant = Assistant(settings, encoder=encoder)
    assistant.reindex()
    return assistant


def wikiqa_assistant(tsv: Path, workdir: Path, encoder: Encoder) -> Assistant:
    settings = Settings(corpus_dir=workdir / "corpus", index_dir=workdir / "index")
    wikiqa.write_corpus(wikiqa.load(tsv), settings.corpus_dir)
    assistant = Assistant(settings, encoder=encoder)
    assistant.reindex()
    return assistant


def run(cases: list[dict], assistants: dict[str, Assistant], show: bool = False) -> dict:
    for assistant in assistants.values():
        assistant.ask("warm-up question")
    right: dict[str, list[bool]] = defaultdict(list)
    times, rows = [], []
    for case in cases:
        assistant = assistants.get(case["corpus"])
        if assistant is None:
            continue
        began = time.perf_counter()
        answer = assistant.ask(case["question"])
        times.append((time.perf_counter() - began) * 1000)
        ok = judge(case, answer.answer, answer.abstained)
        for key in (case["kind"], f"corpus {case['corpus']}", "total"):
            right[key].append(ok)
        rows.append({"question": case["question"], "right": ok, "answer": answer.answer})
        if show and not ok:
            print(f"WRONG [{case['kind']}/{case['corpus']}] {case['question']}\n    {answer.answer}\n",
                  file=sys.stderr)
    return {"right": {k: [sum(v), len(v)] for k, v in right.items()},
            "p50_ms": round(float(np.percentile(times, 50)), 1) if times else None, "answers": rows}


def render(out: dict) -> str:
    keys = [k for k in KINDS if k in out["right"]] + sorted(k for k in out["right"] if k.startswith("corpus "))
    lines = ["| answer right | right / asked | share |", "|---|---|---|"]
    for key in [*keys, "total"]:
        n, total = out["right"][key]
        lines.append(f"| {key.replace('_', ' ')} | {n} / {total} | {n / total:.3f} |")
    lines.append(f"\nAssistant.ask p50 over these questions: {out['p50_ms']} ms (load {out['load']})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=Path, default=CASES)
    parser.add_argument("--squad", type=Path, default=squad.DEFAULT_DATA, help="squad-v2.0-16-articles.json")
    parser.add_argument("--wikiqa", type=Path, default=wikiqa.DEFAULT_TSV, help="WikiQA-test.tsv")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-answers",
                        help="corpora and indexes, reused between runs")
    parser.add_argument("--squad-workdir", type=Path, help="default WORKDIR/squad (bench/squad.py's --workdir works)")
    parser.add_argument("--wikiqa-workdir", type=Path,
                        help="default WORKDIR/wikiqa (bench/wikiqa.py's --workdir plus /wikiqa works)")
    parser.add_argument("--show", action="store_true", help="print each wrong answer")
    parser.add_argument("--json", type=Path, help="also write every number and answer to this file")
    args = parser.parse_args()

    encoder = Encoder()
    assistants = {"fixtures": fixtures_assistant(args.workdir / "fixtures", encoder)}
    if args.squad.is_file():
        assistants["squad"] = squad_assistant(args.squad, args.squad_workdir or args.workdir / "squad", encoder)
    else:
        print(f"{args.squad}: not found; SQuAD cases skipped (pass --squad PATH)", file=sys.stderr)
    if args.wikiqa.is_file():
        assistants["wikiqa"] = wikiqa_assistant(
            args.wikiqa, args.wikiqa_workdir or args.workdir / "wikiqa", encoder)
    else:
        print(f"{args.wikiqa}: not found; WikiQA cases skipped (pass --wikiqa PATH)", file=sys.stderr)
    out = run(load_cases(args.cases), assistants, args.show)
    out["load"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(render(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
