"""Would the candidate signals (confidence_data.CANDIDATES), or other knots for the `unsupported`
signal, improve the confidence model? Leave one source out, on the signals bench/research/fit_confidence.py
collected (run it first, with the same --workdir).

    .venv/bin/python bench/research/confidence_candidates.py [--workdir /tmp/alliance-qa-confidence] [--knots]

Each variant is the shipped logistic regression (fit_confidence.fit: sources and labels weighted
equally) with some candidates added (or, with --knots, `unsupported` recomputed on a grid of knots).
For every fit source: AUC when predicted by the model fitted on the other two, and the share of its
unanswerable questions refused at the threshold that refuses 2 % of its answerable ones (the low end
of the curve, where the shipped threshold sits). Then each variant fitted on all three, at the
shipped threshold rule: the share refused of each source's unanswerable (and answerable) questions,
and of the off-topic questions asked of each corpus, including SQuAD questions asked of the report
beside WikiQA's documents (foreign-mixed, never fitted on). `choice` is the mean refused at 2 % over
the sources left out plus the mean refused of the foreign-squad, -wikiqa and -mixed questions: what
the knots were chosen by. The report's natural dev set with WikiQA's documents beside it and the
on-topic held-out set are printed last and only for reference: variants are chosen on the columns
before them, never on those.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import fit_confidence as fc
from confidence_data import CANDIDATES, DEV_FILES, Rows, joined
from qa.answering.confidence import FEATURES, MEANING_KNOT, WORDS_KNOT
from qa.answering.evaluation import load_cases

VARIANTS = {"shipped signals": ()} | {f"+ {name}": (name,) for name in CANDIDATES} | {
    "+ kind_in_answer, kind_not_in_answer": ("kind_in_answer", "kind_not_in_answer"),
    "+ known_absent, fuzzy_names": ("known_absent", "fuzzy_names")}
# Candidates that stand in for a shipped signal instead of joining it.
REPLACING = {"fuzzy names for missing_names, missing_exact": {"missing_names": "fuzzy_names",
                                                             "missing_exact": "fuzzy_exact"}}
MEANING_KNOTS = (0.4, 0.45, 0.5, 0.55, 0.6)
WORDS_KNOTS = (0.5, 0.6, 0.7, 0.8)
SHOWN = ("squad", "wikiqa", "dev", "foreign-squad", "foreign-wikiqa", "foreign-dev", "foreign-mixed")


def widened(rows: Rows, extra: tuple[str, ...]) -> Rows:
    cols = [CANDIDATES.index(name) for name in extra]
    return replace(rows, features=np.hstack([rows.features, rows.candidates[:, cols]]))


def replaced(rows: Rows, swap: dict[str, str]) -> Rows:
    x = rows.features.copy()
    for shipped, candidate in swap.items():
        x[:, FEATURES.index(shipped)] = rows.candidates[:, CANDIDATES.index(candidate)]
    return replace(rows, features=x)


def knotted(rows: Rows, meaning: float, words: float) -> Rows:
    """The rows with `unsupported` recomputed at other knots."""
    x = rows.features.copy()
    mean, coverage = (x[:, FEATURES.index(n)] for n in ("mean_sentence", "coverage_passages"))
    x[:, FEATURES.index("unsupported")] = np.maximum(0, meaning - mean) * np.maximum(0, words - coverage)
    return replace(rows, features=x)


def refused_at_two_percent(rows: Rows, p: np.ndarray) -> float:
    answerable = np.sort(p[rows.answerable & ~rows.override])
    threshold = answerable[int(np.floor(fc.TARGET_FALSE * len(answerable)))]
    return float(fc.abstains(rows, p, threshold)[~rows.answerable].mean())


def row(label: str, rows: dict[str, Rows], natural: set[str]) -> str:
    own = [rows[s] for s in fc.FIT_SOURCES]
    sources = [joined(rows[s], rows[f"foreign-{s}"]) for s in fc.FIT_SOURCES]
    loso, left_out = [], []
    for mine, held in zip(own, sources, strict=True):
        p = fc.predict(fc.fit([r for r in sources if r is not held]), mine)
        left_out.append(refused_at_two_percent(mine, p))
        loso.append(f"{roc_auc_score(mine.label, p):.3f} / {left_out[-1]:.3f}")
    model = fc.fit(sources)
    threshold = fc.threshold_for(own, model, fc.TARGET_FALSE)
    shares, refused = [], {}
    for name in SHOWN:
        un, an = fc.rates(rows[name], fc.abstains(rows[name], fc.predict(model, rows[name]), threshold))
        refused[name] = un
        shares.append(f"{un:.3f}" + ("" if np.isnan(an) else f" / {an:.3f}"))
    choice = np.mean(left_out) + np.mean([refused[n] for n in ("foreign-squad", "foreign-wikiqa", "foreign-mixed")])
    mixed = rows["dev-mixed"]
    asked = np.array([q in natural for q in mixed.questions])
    mixed_refused = fc.abstains(mixed, fc.predict(model, mixed), threshold)[asked & ~mixed.answerable]
    topic = fc.abstains(rows["on_topic"], fc.predict(model, rows["on_topic"]), threshold)
    return (f"| {label} | {'; '.join(loso)} | {threshold:.4f} | {'; '.join(shares)} | {choice:.3f} | "
            f"{mixed_refused.sum()} / {len(mixed_refused)} | {topic.sum()} / {len(topic)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-confidence")
    parser.add_argument("--knots", action="store_true", help="the grid of knots for `unsupported` instead")
    args = parser.parse_args()
    names = (*fc.FIT_SOURCES, *(f"foreign-{s}" for s in fc.FIT_SOURCES), "on_topic", "dev-mixed", "foreign-mixed")
    data = {s: Rows.load(s, args.workdir / f"rows-{s}.npz") for s in names}
    if any(r.candidates.shape[1] != len(CANDIDATES) or r.features.shape[1] != len(FEATURES) for r in data.values()):
        raise SystemExit(f"{args.workdir}: signals collected by another version; "
                         "run bench/research/fit_confidence.py --fresh with this --workdir first")
    natural = {c.question for c in load_cases(DEV_FILES[0])}
    print("| variant | LOSO AUC / refused at 2 % false: squad; wikiqa; dev | threshold | abstained "
          "(unanswerable / answerable): squad; wikiqa; dev; foreign-squad; -wikiqa; -dev; -mixed | choice "
          "| natural set + WikiQA, unanswerable (reference) | on-topic (held out) |")
    print("|---|---|---|---|---|---|---|")
    if args.knots:
        for meaning, words in itertools.product(MEANING_KNOTS, WORDS_KNOTS):
            shipped = " (shipped)" if (meaning, words) == (MEANING_KNOT, WORDS_KNOT) else ""
            rows = {s: knotted(r, meaning, words) for s, r in data.items()}
            print(row(f"knots {meaning} / {words}{shipped}", rows, natural))
        keep = [i for i, n in enumerate(FEATURES) if n != "unsupported"]
        print(row("without `unsupported`", {s: replace(r, features=r.features[:, keep]) for s, r in data.items()},
                  natural))
        return
    for label, extra in VARIANTS.items():
        print(row(label, {s: widened(r, extra) for s, r in data.items()}, natural))
    for label, swap in REPLACING.items():
        print(row(label, {s: replaced(r, swap) for s, r in data.items()}, natural))
        print(row(label + " + kind_in_answer, kind_not_in_answer", {
            s: widened(replaced(r, swap), ("kind_in_answer", "kind_not_in_answer")) for s, r in data.items()}, natural))


if __name__ == "__main__":
    main()
