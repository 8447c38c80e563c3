"""Root-cause localisation, side by side with the published methods, on RiskLoc's datasets.

Generates the first ``--cases`` cases of RiskLoc's synthetic datasets S and L (and H with
``--datasets H``) with that repository's own seeded generator (``generate_dataset.py``,
the paper's seeds: S 121, L 122, H 123, and the paper's arguments), runs gapmon's
:func:`monitors.localiser.localise` and the reference implementations from the same copy
(RiskLoc, Squeeze, HotSpot, Adtributor, recursive Adtributor, with the repository's CLI
defaults), scores every method with the repository's ``utils/evaluation.py`` (exact-match
TP/FP/FN per case) and prints F1 per method and dataset, split by the layer of the
element (number of dimensions; a false positive counts in the layer of the predicted
element), plus the mean and max time per case (wall clock, and the process's CPU time,
which other sessions' load on this shared machine inflates less).

``--datasets RS`` runs the repository's real-world cases (RobustSpot's, a failure rate:
gapmon localises it as a rate of counted volume, the references with ``derived``), read
with the repository's own loader; RS has no generator and the largest leaf count is shown.

The repository is never a gapmon dependency and nothing of it is copied into gapmon:
pass ``--riskloc`` a checkout, or its bare git directory (the bench exports HEAD into the
data directory), or let the bench find ``/work/.mirror/shaido987+riskloc/repo``.

Its code needs a few packages gapmon does not: run the bench from a separate venv::

    python3 -m venv /tmp/rlvenv
    /tmp/rlvenv/bin/pip install numpy==2.4.6 pandas==3.1.1 scipy kneed loguru pyyaml
    PYTHONPATH=. /tmp/rlvenv/bin/python bench/localise.py --cases 100

(gapmon's own localiser needs only numpy and pandas, so ``PYTHONPATH=.`` is enough.)
``--methods gapmon riskloc`` limits the methods; HotSpot and Squeeze take seconds a case.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitors.localiser import localise  # noqa: E402

MIRROR = Path("/work/.mirror/shaido987+riskloc/repo")
# the paper's datasets (RiskLoc README): seed and generator arguments
DATASETS = {
    "S": ["--seed", "121"],
    "L": [
        "--seed",
        "122",
        "--dims",
        "10",
        "24",
        "10",
        "15",
        "--noise-level",
        "0.0",
        "0.1",
        "--anomaly-severity",
        "0.5",
        "1.0",
        "--anomaly-deviation",
        "0.0",
        "0.0",
        "--num-anomaly",
        "1",
        "5",
        "--num-anomaly-elements",
        "1",
        "1",
        "--only-last-layer",
    ],
    "H": ["--seed", "123", "--dims", "10", "5", "250", "20", "8", "12"],
}
REFERENCES = ("riskloc", "squeeze", "hotspot", "adtributor", "r_adtributor")


def riskloc_checkout(given: str | None, data: Path) -> Path:
    """A work tree of the RiskLoc repository: the given one, or HEAD of a git directory."""
    src = Path(given) if given else MIRROR
    if (src / "generate_dataset.py").exists():
        return src
    if not (src / "HEAD").exists():
        raise SystemExit(f"--riskloc {src}: neither a checkout nor a git directory")
    out = data / "riskloc"
    if not (out / "generate_dataset.py").exists():
        out.mkdir(parents=True, exist_ok=True)
        blob = subprocess.run(
            ["git", "--git-dir", str(src), "archive", "HEAD"], check=True, capture_output=True
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
            tar.extractall(out, filter="data")
    return out


def generate(repo: Path, data: Path, name: str, cases: int) -> pd.DataFrame:
    """The first ``cases`` cases of dataset ``name`` (the generator is sequential, so the
    first N of a run with --num N are the first N of the paper's 1000)."""
    info = data / name / "injection_info.csv"
    if not info.exists() or len(pd.read_csv(info)) < cases:
        cmd = [
            sys.executable,
            "generate_dataset.py",
            "--num",
            str(cases),
            "--dataset-name",
            name,
            "--data-root",
            str(data),
            *DATASETS[name],
        ]
        print("generating:", " ".join(cmd[1:]), file=sys.stderr)
        subprocess.run(cmd, cwd=repo, check=True, stdout=subprocess.DEVNULL)
    return pd.read_csv(info).head(cases)


def gapmon_predict(df: pd.DataFrame, attributes: list[str], derived: bool = False) -> list[str]:
    if derived:  # a rate of counted volume (RS: failures of requests): binomial noise
        live = df[df["real_b"] > 0]
        base_rate = np.divide(
            live["predict_a"],
            live["predict_b"],
            out=np.zeros(len(live)),
            where=live["predict_b"] > 0,
        )
        frame = live[attributes].assign(
            actual=live["real_a"] / live["real_b"], baseline=base_rate, volume=live["real_b"]
        )
        loc = localise(frame, attributes, "ratio", max_layer=len(attributes), counts=True)
    else:
        frame = df.rename(columns={"real": "actual", "predict": "baseline"})
        loc = localise(frame, attributes, max_layer=len(attributes))
    return [s.key for s in loc.slices]


def rs_cases(repo: Path, cases: int) -> list[tuple[str, pd.DataFrame, list[str], str]]:
    """The repository's real-world RobustSpot cases (RS): (name, leaves, attributes, label)."""
    from utils.robustspot_data_utils import get_rs_label, read_rs_dataframe

    directory = str(repo / "data" / "RS")
    names = [a["data"] for a in yaml.safe_load((repo / "data" / "RS" / "anomaly.yaml").read_text())]
    out = []
    for name in names[:cases]:
        df, attributes, _, _ = read_rs_dataframe(directory, name)
        out.append((name, df, attributes, get_rs_label(directory, name)))
    return out


def reference_predict(
    method: str, df: pd.DataFrame, attributes: list[str], derived: bool = False
) -> list[str]:
    from utils.argument_parser import get_input_arguments  # the repository's, on sys.path
    from utils.evaluation import root_cause_postprocessing
    from utils.run_utils import run_method

    with contextlib.suppress(ImportError):  # Squeeze logs every cuboid through loguru
        from loguru import logger

        logger.remove()
    argv, sys.argv = sys.argv, ["run.py", method]
    try:
        _, _, _, algorithm_args, _ = get_input_arguments()
    finally:
        sys.argv = argv
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        dfs = [None, None]
        if derived:  # as the repository's read_dataframe gives Squeeze its two measures
            dfs = [
                df[[*attributes, f"real_{x}", f"predict_{x}"]].rename(
                    columns={f"real_{x}": "real", f"predict_{x}": "predict"}
                )
                for x in ("a", "b")
            ]
        causes = run_method(df, dfs, attributes, method, algorithm_args, derived, False)
        return [str(p) for p in root_cause_postprocessing(causes, method)]


def elements(pred: list[str]) -> list[str]:
    """Squeeze joins the elements of one cause with ';' into one string: score each one."""
    return sorted({"&".join(sorted(e.split("&"))) for p in pred for e in p.split(";") if e})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--riskloc", help="RiskLoc checkout or git dir (default: the mirror)")
    ap.add_argument("--data", default="/tmp/gapmon-localise-bench", help="generated data")
    ap.add_argument("--datasets", nargs="+", default=["S", "L"], choices=[*sorted(DATASETS), "RS"])
    ap.add_argument("--cases", type=int, default=100, help="first N cases of each dataset")
    ap.add_argument(
        "--methods", nargs="+", default=["gapmon", *REFERENCES], choices=["gapmon", *REFERENCES]
    )
    args = ap.parse_args()
    data = Path(args.data)
    data.mkdir(parents=True, exist_ok=True)
    repo = riskloc_checkout(args.riskloc, data)
    sys.path.insert(0, str(repo))
    from utils.evaluation import score_root_causes

    counts: dict[tuple[str, str, int | str], list[int]] = defaultdict(lambda: [0, 0, 0])
    times: dict[tuple[str, str], list[float]] = defaultdict(list)
    cpus: dict[tuple[str, str], list[float]] = defaultdict(list)
    leaves: dict[str, int] = {}
    # reference results are kept per case (they take seconds each); gapmon always runs
    cache_file = data / "results.jsonl"
    cache = {}
    if cache_file.exists():
        for line in cache_file.read_text().splitlines():
            r = json.loads(line)
            cache[(r["method"], r["dataset"], r["case"])] = r
    for name in args.datasets:
        if name == "RS":
            rows = [
                {"timestamp": case, "set": label, "df": df, "attributes": attributes}
                for case, df, attributes, label in rs_cases(repo, args.cases)
            ]
        else:
            info = generate(repo, data, name, args.cases)
            rows = [dict(r) for _, r in info.iterrows()]
        derived = name == "RS"
        for row in rows:
            if derived:
                df, attributes = row["df"], row["attributes"]
            else:
                df = pd.read_csv(data / name / f"{row['timestamp']}.csv")
                attributes = sorted(df.columns.drop(["real", "predict"]).tolist())
            leaves[name] = max(leaves.get(name, 0), len(df))
            for method in args.methods:
                cached = cache.get((method, name, str(row["timestamp"])))
                if cached is not None and method != "gapmon":
                    pred, seconds = cached["pred"], cached["seconds"]
                    cpu = cached.get("cpu")
                else:
                    t0, c0 = time.perf_counter(), time.process_time()
                    if method == "gapmon":
                        pred = gapmon_predict(df.copy(), attributes, derived)
                    else:
                        pred = reference_predict(method, df.copy(), attributes, derived)
                    seconds = time.perf_counter() - t0
                    cpu = time.process_time() - c0
                    record = {
                        "method": method,
                        "dataset": name,
                        "case": str(row["timestamp"]),
                        "pred": list(pred),
                        "seconds": seconds,
                        "cpu": cpu,
                    }
                    with cache_file.open("a") as fh:
                        fh.write(json.dumps(record) + "\n")
                times[(method, name)].append(seconds)
                if cpu is not None:
                    cpus[(method, name)].append(cpu)
                pred = elements(pred)
                tp, fp, fn, truth = score_root_causes(pred, row["set"])
                truth = set(truth)
                for t in truth:
                    counts[(method, name, t.count("&") + 1)][0 if t in pred else 2] += 1
                for p in set(pred) - truth:
                    counts[(method, name, p.count("&") + 1)][1] += 1
                total = counts[(method, name, "all")]
                total[0], total[1], total[2] = total[0] + tp, total[1] + fp, total[2] + fn

    def f1(c: list[int]) -> str:
        return f"{2 * c[0] / (2 * c[0] + c[1] + c[2]):.3f}" if any(c) else "-"

    layers = sorted({k[2] for k in counts if k[2] != "all"})
    print(f"# {args.cases} cases per dataset; F1 exact match (TP/FP/FN summed over cases)")
    head = ["dataset", "method", "F1 all", *[f"F1 L{x}" for x in layers], "s/case", "max s"]
    head += ["cpu s/case", "max cpu s"]
    print(" | ".join(head))
    for name in args.datasets:
        for method in args.methods:
            t = times[(method, name)]
            cells = [f"{name} ({leaves[name]} leaves)", method, f1(counts[(method, name, "all")])]
            cells += [
                f1(counts[(method, name, x)]) if (method, name, x) in counts else "-"
                for x in layers
            ]
            cells += [f"{sum(t) / len(t):.3f}", f"{max(t):.3f}"]
            c = cpus[(method, name)]
            cells += [f"{sum(c) / len(c):.3f}", f"{max(c):.3f}"] if c else ["-", "-"]
            print(" | ".join(cells), flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
