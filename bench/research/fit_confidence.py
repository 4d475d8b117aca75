"""Fit the confidence model (src/qa/answering/confidence.json) and show how well it is calibrated and abstains.

    .venv/bin/python bench/research/fit_confidence.py --squad ../shared/bench/squad/squad-v2.0-16-articles.json \
        --tsv ../shared/bench/wikiqa/WikiQA-test.tsv [--write] [--fresh]

One logistic regression (scikit-learn) over `qa.answering.confidence.FEATURES`, fitted on three sources of
labelled questions (bench/research/confidence_data.py): SQuAD 2.0's shared half, WikiQA-test and the report's
dev sets, each source and each label within it weighted equally (see `fit`).
Calibration is shown on data not used to fit it: each source predicted by a model fitted on the
other two. The threshold is the lowest confidence that keeps false abstentions (answerable
questions refused) at most TARGET_FALSE on every source, in-sample, so that a source unlike those
seen keeps some room. tests/data/unanswerable_on_topic.jsonl is never fitted on: it is the check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

from confidence_data import DEFAULT_SQUAD, DEV_FILES, ROOT, Rows, collect, joined, squad_corpus, wikiqa
from qa.answering.confidence import FEATURES, MODEL_FILE, Model
from qa.answering.evaluation import load_cases

FIT_SOURCES = ("squad", "wikiqa", "dev")
TARGET_FALSE = 0.02
C = 1.0  # sklearn's default L2 strength on standardised signals
BINS = np.linspace(0, 1, 11)
DIGITS = 10  # of the written coefficients
CURVE = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8)


def fit(rows: list[Rows]) -> Model:
    """Each source weighs the same, and within it the answered and the unanswered questions weigh the
    same: the sources' base rates differ (40 % of SQuAD's questions are answered by their first
    passages, 56 % of the dev sets'), and unbalanced they would teach the model which source a
    question comes from (the dev sets' low word coverage, say) instead of whether it is answered. The
    intercept is then moved back to the sources' mean base rate."""
    x = np.vstack([r.features for r in rows])
    y = np.concatenate([r.label for r in rows])
    weight = np.concatenate([np.where(r.label, 0.5 / r.label.sum(), 0.5 / (~r.label).sum()) for r in rows])
    weight *= len(y) / weight.sum()
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    regression = LogisticRegression(C=C, max_iter=5000).fit((x - scaler.mean_) / scale, y, sample_weight=weight)
    prior = float(np.mean([r.label.mean() for r in rows]))
    intercept = float(regression.intercept_[0]) + np.log(prior / (1 - prior))
    return Model(FEATURES, scaler.mean_, scale, regression.coef_[0], intercept, 0.5)


def predict(model: Model, rows: Rows) -> np.ndarray:
    return np.array([model.probability(x) for x in rows.features])


def abstains(rows: Rows, p: np.ndarray, threshold: float) -> np.ndarray:
    return (p < threshold) & ~rows.override


def threshold_for(rows: list[Rows], model: Model, target: float) -> float:
    """The largest threshold at which no source refuses more than `target` of its answerable questions."""
    limits = []
    for r in rows:
        p = np.sort(predict(model, r)[r.answerable & ~r.override])
        allowed = int(np.floor(target * r.answerable.sum()))  # refusals allowed on this source
        limits.append(p[allowed] if allowed < len(p) else 1.0)
    return float(min(limits))


def rates(rows: Rows, refused: np.ndarray) -> tuple[float, float]:
    """(share of unanswerable refused, share of answerable refused)."""
    un, an = ~rows.answerable, rows.answerable
    return (float(refused[un].mean()) if un.any() else float("nan"),
            float(refused[an].mean()) if an.any() else float("nan"))


def reliability(p: np.ndarray, y: np.ndarray) -> list[str]:
    lines = []
    for lo, hi in zip(BINS[:-1], BINS[1:], strict=True):
        inside = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if inside.any():
            lines.append(f"{lo:.1f}–{hi:.1f}: n={inside.sum()}, predicted {p[inside].mean():.2f}, "
                         f"observed {y[inside].mean():.2f}")
    return lines


def by_article(data: dict[str, Rows], squad_questions: list) -> None:
    """Each SQuAD article left out in turn: the model fitted, and its threshold chosen by the shipped
    rule, without it; its answerable questions refused. How the threshold holds on articles it has not
    seen, as the held-out half of SQuAD will test it."""
    article = np.array([doc_id for _, doc_id, _ in squad_questions])
    squad = data["squad"]
    if len(article) != len(squad.label):
        sys.exit("the SQuAD rows were collected from another file: run again with --fresh")
    others = [joined(data[s], data[f"foreign-{s}"]) for s in FIT_SOURCES if s != "squad"]
    print("\n## Leave one SQuAD article out: fitted, and the threshold chosen, on the other seven\n")
    print("| article left out | threshold | its answerable refused | its unanswerable refused |")
    print("|---|---|---|---|")
    refused = answerable = 0
    for name in sorted(set(article)):
        rest, left = (subset(squad, article != name), subset(squad, article == name))
        model = fit([joined(rest, data["foreign-squad"]), *others])
        threshold = threshold_for([rest, data["wikiqa"], data["dev"]], model, TARGET_FALSE)
        abstained = abstains(left, predict(model, left), threshold)
        un, an = rates(left, abstained)
        refused += int(abstained[left.answerable].sum())
        answerable += int(left.answerable.sum())
        print(f"| {name.removeprefix('squad/').removesuffix('.txt')} | {threshold:.4f} | {an:.3f} | {un:.3f} |")
    print(f"\nPooled: {refused} of {answerable} answerable questions refused ({refused / answerable:.3f}).")


def subset(rows: Rows, keep: np.ndarray) -> Rows:
    arrays = ("features", "label", "answerable", "override", "baseline", "candidates")
    return replace(rows, questions=[q for q, k in zip(rows.questions, keep, strict=True) if k],
                   **{f: getattr(rows, f)[keep] for f in arrays})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--squad", type=Path, default=DEFAULT_SQUAD, help="squad-v2.0-16-articles.json")
    parser.add_argument("--tsv", type=Path, default=wikiqa.DEFAULT_TSV, help="WikiQA-test.tsv")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-confidence",
                        help="corpora, indexes and the collected signals, reused between runs")
    parser.add_argument("--fresh", action="store_true", help="collect the signals again (after a pipeline change)")
    parser.add_argument("--write", action="store_true", help=f"write the fitted model to src/qa/answering/{MODEL_FILE}")
    args = parser.parse_args()
    for path, option in ((args.squad, "--squad"), (args.tsv, "--tsv")):
        if not path.is_file():
            sys.exit(f"{path}: not found; pass {option} PATH")

    data = collect(args.workdir, args.squad, args.tsv, fresh=args.fresh)
    own = [data[s] for s in FIT_SOURCES]
    sources = [joined(data[s], data[f"foreign-{s}"]) for s in FIT_SOURCES]
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")

    print("## Leave one source out: fitted on the other two, predicted on this one\n")
    print("| held-out source | questions | AUC (label) | AUC (answerable vs not) | Brier |")
    print("|---|---|---|---|---|")
    pooled_p, pooled_y, tables = [], [], {}
    for mine, held in zip(own, sources, strict=True):
        model = fit([r for r in sources if r is not held])
        held = mine  # the held-out source's own questions, without the foreign ones
        p = predict(model, held)
        pooled_p.append(p)
        pooled_y.append(held.label)
        tables[held.source] = reliability(p, held.label)
        print(f"| {held.source} | {len(p)} | {roc_auc_score(held.label, p):.3f} | "
              f"{roc_auc_score(held.answerable, p):.3f} | {brier_score_loss(held.label, p):.3f} |")
    print("\nReliability, each source predicted by the model fitted on the other two (pooled):\n")
    for line in reliability(np.concatenate(pooled_p), np.concatenate(pooled_y)):
        print(f"    {line}")
    for source, lines in tables.items():
        print(f"\n  {source} alone:")
        for line in lines:
            print(f"    {line}")

    by_article(data, squad_corpus(args.squad, args.workdir / "squad" / "corpus"))

    model = fit(sources)
    threshold = threshold_for(own, model, TARGET_FALSE)
    # rounded down: rounded up, it could refuse the question that sets it
    model = Model(model.features, model.mean, model.scale, model.coef, model.intercept,
                  float(np.floor(threshold * 1e4) / 1e4))
    print(f"\n## The model fitted on all three sources; threshold {model.threshold:.4f}\n")
    for name, c in zip(FEATURES, model.coef, strict=True):
        print(f"    {name:18s} {c:+.3f}")
    print(f"    {'intercept':18s} {model.intercept:+.3f}\n")

    everything = {s: data[s] for s in (*FIT_SOURCES, *(f"foreign-{s}" for s in FIT_SOURCES), "on_topic",
                                       "dev-mixed", "foreign-mixed")}
    dev = data["dev"]
    print("| source | unanswerable abstained: model | baseline (hand-set chain) "
          "| answerable abstained: model | baseline |")
    print("|---|---|---|---|---|")
    for name, rows in everything.items():
        un, an = rates(rows, abstains(rows, predict(model, rows), model.threshold))
        bun, ban = rates(rows, rows.baseline & ~np.zeros(len(rows.label), bool))
        if name == "on_topic":  # its false abstentions are the dev sets'
            an, ban = rates(dev, abstains(dev, predict(model, dev), model.threshold))[1], rates(dev, dev.baseline)[1]
        n_un = int((~rows.answerable).sum())
        print(f"| {name} | {un:.3f} of {n_un} | {bun:.3f} | {an:.3f} | {ban:.3f} |")

    print("\n(dev-mixed: the dev sets asked of the report beside WikiQA's 619 documents; foreign-mixed: SQuAD "
          "questions asked of that corpus. Neither is fitted on.)\n")
    print("| dev set, report + 619 WikiQA documents | unanswerable abstained: model | baseline "
          "| answerable abstained: model | baseline |")
    print("|---|---|---|---|---|")
    mixed = data["dev-mixed"]
    refused = abstains(mixed, predict(model, mixed), model.threshold)
    for path in DEV_FILES:
        asked = {c.question for c in load_cases(path)}
        mine = np.array([q in asked for q in mixed.questions])
        cells = []
        for answerable in (False, True):
            wanted = mine & (mixed.answerable == answerable)
            cells.append(f"{refused[wanted].sum()}/{wanted.sum()} | {mixed.baseline[wanted].sum()}/{wanted.sum()}")
        print(f"| {path.stem} | {' | '.join(cells)} |")

    for name, rows, answered in (("squad", data["squad"], data["squad"]), ("on_topic", data["on_topic"], dev)):
        print(f"\nAbstention curve, {name} (answerable: {answered.source}): threshold -> "
              "unanswerable abstained / answerable abstained")
        p, pa = predict(model, rows), predict(model, answered)
        for t in sorted({*CURVE, model.threshold}):
            un = rates(rows, abstains(rows, p, t))[0]
            an = rates(answered, abstains(answered, pa, t))[1]
            mark = "  <- shipped" if t == model.threshold else ""
            print(f"    {t:.3f}: {un:.3f} / {an:.3f}{mark}")

    if args.write:
        path = ROOT / "src" / "qa" / "answering" / MODEL_FILE
        # rounded: the solver's last digits vary between runs, the written file should not
        body = {k: np.round(v, DIGITS).tolist() if k in ("mean", "scale", "coef") else v
                for k, v in model.to_dict().items()}
        body |= {"intercept": round(model.intercept, DIGITS), "fitted_on": {r.source: len(r.label) for r in sources},
                 "refit": "bench/research/fit_confidence.py --write"}
        path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
        print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
