"""Benchmark: the reason-note classifier and the off-taxonomy clustering, on a labelled set.

    .venv/bin/python bench/reasons.py
    .venv/bin/python bench/reasons.py --min-coverage 0     # the old rule: posterior only

``tests/data/reason_notes.jsonl`` holds 168 hand-written CRM reason notes: 6 training
and 6 test notes for each of the 10 taxonomy buckets, and 48 off-taxonomy test notes
(sanctions, a merger, fraud/KYC: reasons ``config/taxonomy.yaml`` has no bucket for).
The classifier (:class:`monitors.models.reasons.ReasonModel`) learns the training notes
as tagged notes - each ``--repeats`` times (20), as a CRM's tagged deals repeat a few
phrasings hundreds of times - then each test note arrives untagged. Prints:

* precision per bucket: of the test notes it put in a bucket, the share that belong there
  (and how many it put there), overall precision and coverage of the in-taxonomy notes;
* off-taxonomy recall: the share of off-taxonomy notes it abstained on (rather than
  forcing them into a bucket), and the share of them that ended in a cluster of
  ``suggest()`` whose majority is their own theme (cluster recall), and the clusters'
  purity.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitors.models.reasons import ReasonModel  # noqa: E402

NOTES = ROOT / "tests" / "data" / "reason_notes.jsonl"


def evaluate(
    min_confidence: float = 0.6, min_coverage: float = 0.5, min_cluster: int = 5, repeats: int = 20
) -> dict:
    rows = [json.loads(line) for line in NOTES.read_text().splitlines() if line.strip()]
    model = ReasonModel(min_confidence=min_confidence, min_coverage=min_coverage)
    for k in range(repeats):
        for i, r in enumerate(r for r in rows if r["split"] == "train"):
            aid = f"train{k}-{i}"
            model.learn_close(aid, "Q", "R", "lost", r["label"], r["label"], r["text"])
    test = [r for r in rows if r["split"] == "test"]
    predicted: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    theme_of: dict[str, str] = {}
    in_tax = off = off_abstained = 0
    for i, r in enumerate(test):
        aid = f"test{i}"
        got = model.learn_close(aid, "Q", "R", "lost", None, "unknown", r["text"])
        if r["label"] == "off_taxonomy":
            off += 1
            off_abstained += got is None
            theme_of[aid] = r["theme"]
            continue
        in_tax += 1
        if got is not None:
            predicted[got] += 1
            correct[got] += got == r["label"]
    clusters = model.suggest(min_size=min_cluster)
    in_own = 0
    purity = []
    for c in clusters:
        themes = Counter(theme_of.get(a, "in-taxonomy") for a in c["members"])
        top, n = themes.most_common(1)[0]
        purity.append(n / c["size"])
        if top != "in-taxonomy":
            in_own += n
    return {
        "precision": {b: (correct[b] / predicted[b], predicted[b]) for b in sorted(predicted)},
        "precision_all": sum(correct.values()) / max(sum(predicted.values()), 1),
        "coverage": sum(predicted.values()) / in_tax,
        "off_recall": off_abstained / off,
        "cluster_recall": in_own / off,
        "clusters": [(c["top_terms"][:3], c["size"]) for c in clusters],
        "purity": sum(purity) / len(purity) if purity else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-confidence", type=float, default=0.6)
    ap.add_argument("--min-coverage", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    r = evaluate(args.min_confidence, args.min_coverage, repeats=args.repeats)
    print(
        f"min_confidence {args.min_confidence}, min_coverage {args.min_coverage}, "
        f"training notes x{args.repeats}"
    )
    for bucket, (p, n) in r["precision"].items():
        print(f"  precision {bucket:<14} {p:6.1%}  ({n} notes put there)")
    print(f"precision, all buckets: {r['precision_all']:.1%}")
    print(f"coverage of in-taxonomy notes (not abstained): {r['coverage']:.1%}")
    print(f"off-taxonomy recall (abstained): {r['off_recall']:.1%}")
    print(f"off-taxonomy notes in a cluster of their own theme: {r['cluster_recall']:.1%}")
    purity = "n/a" if r["purity"] is None else f"{r['purity']:.1%}"
    print(f"clusters: {len(r['clusters'])}, mean purity {purity}")
    for terms, size in r["clusters"]:
        print(f"  {size:3d} notes: {', '.join(terms)}")


if __name__ == "__main__":
    main()
