"""Would the candidate signals (confidence_data.CANDIDATES) improve the confidence model? Leave one
source out, on the signals bench/fit_confidence.py collected (run it first, with the same --workdir).

    .venv/bin/python bench/confidence_candidates.py [--workdir /tmp/alliance-qa-confidence]

Each variant is the shipped logistic regression (fit_confidence.fit: sources and labels weighted
equally) with some candidates added. For every fit source: AUC when predicted by the model fitted on
the other two, and the share of its unanswerable questions refused at the threshold that refuses 2 %
of its answerable ones (the low end of the curve, where the shipped threshold sits). Then each
variant fitted on all three, at the shipped threshold rule. The on-topic held-out set is printed last
and only for reference: variants are chosen on the fit sources, never on it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import fit_confidence as fc
from confidence_data import CANDIDATES, Rows, joined

VARIANTS = {
    "shipped signals": (),
    "+ absent_terms": ("absent_terms",),
    "+ any_absent": ("any_absent",),
    "+ rarest_missing": ("rarest_missing",),
    "+ rarest_off_evidence": ("rarest_off_evidence",),
    "+ absent_terms, any_absent": ("absent_terms", "any_absent"),
    "+ all four": CANDIDATES,
}


def widened(rows: Rows, extra: tuple[str, ...]) -> Rows:
    cols = [CANDIDATES.index(name) for name in extra]
    return Rows(rows.source, rows.questions, np.hstack([rows.features, rows.candidates[:, cols]]), rows.label,
                rows.answerable, rows.override, rows.baseline, rows.candidates)


def refused_at_two_percent(rows: Rows, p: np.ndarray) -> float:
    answerable = np.sort(p[rows.answerable & ~rows.override])
    threshold = answerable[int(np.floor(fc.TARGET_FALSE * len(answerable)))]
    return float(fc.abstains(rows, p, threshold)[~rows.answerable].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "alliance-qa-confidence")
    args = parser.parse_args()
    names = (*fc.FIT_SOURCES, *(f"foreign-{s}" for s in fc.FIT_SOURCES), "on_topic")
    data = {s: Rows.load(s, args.workdir / f"rows-{s}.npz") for s in names}
    if any(r.candidates.shape[1] != len(CANDIDATES) for r in data.values()):
        raise SystemExit(f"{args.workdir}: signals collected before the candidates existed; "
                         "run bench/fit_confidence.py --fresh with this --workdir first")
    print("| variant | LOSO AUC / refused at 2 % false: squad, wikiqa, dev | threshold | abstained "
          "(unanswerable / answerable): squad, wikiqa, dev, foreign-squad, -wikiqa, -dev | on-topic (held out) |")
    print("|---|---|---|---|---|")
    for label, extra in VARIANTS.items():
        rows = {s: widened(r, extra) for s, r in data.items()}
        own = [rows[s] for s in fc.FIT_SOURCES]
        sources = [joined(rows[s], rows[f"foreign-{s}"]) for s in fc.FIT_SOURCES]
        loso = []
        for mine, held in zip(own, sources, strict=True):
            p = fc.predict(fc.fit([r for r in sources if r is not held]), mine)
            loso.append(f"{roc_auc_score(mine.label, p):.3f} / {refused_at_two_percent(mine, p):.3f}")
        model = fc.fit(sources)
        threshold = fc.threshold_for(own, model, fc.TARGET_FALSE)
        shares = []
        for name in names[:-1]:
            un, an = fc.rates(rows[name], fc.abstains(rows[name], fc.predict(model, rows[name]), threshold))
            shares.append(f"{un:.3f}" + ("" if np.isnan(an) else f" / {an:.3f}"))
        topic = fc.abstains(rows["on_topic"], fc.predict(model, rows["on_topic"]), threshold)
        print(f"| {label} | {'; '.join(loso)} | {threshold:.4f} | {'; '.join(shares)} | "
              f"{topic.sum()} / {len(topic)} |")


if __name__ == "__main__":
    main()
