"""How fast `gapmon import` maps a large Salesforce export, and the memory it holds.

Writes a synthetic export in the sample's shape (tests/data/crm/salesforce/): N
opportunities (each with a line item and three stage-history rows), 5 x N tasks and N
events, 50 users and 1,000 accounts, into a temporary folder; then imports it with the
ready mapping (config/mappings/salesforce.yaml) in this process and prints rows, events,
seconds, rows per second and the peak resident memory of the process (the import keeps
every event until it writes them sorted).

    .venv/bin/python bench/import_speed.py                 # N = 20,000 (200,000 rows to map)
    .venv/bin/python bench/import_speed.py --opportunities 100000
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streams.mapping import import_events, load_mapping  # noqa: E402

STAGES = ["Prospecting", "Needs Analysis", "Negotiation/Review", "Closed Won", "Closed Lost"]


def _ts(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def write_export(folder: Path, n: int, seed: int = 7) -> int:
    """The synthetic export; returns the number of rows the mapping's sources hold."""
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, tzinfo=UTC)

    def writer(name: str, header: list[str]) -> tuple[object, csv.writer]:  # type: ignore[valid-type]
        fh = (folder / name).open("w", newline="")
        w = csv.writer(fh)
        w.writerow(header)
        return fh, w

    fu, users = writer("User.csv", ["Id", "Name", "Division"])
    for u in range(50):
        users.writerow([f"005{u:015d}", f"User {u}", ["NA", "EMEA", "APAC"][u % 3]])
    fu.close()
    fa, accounts = writer("Account.csv", ["Id", "Name", "Industry"])
    for a in range(1000):
        accounts.writerow([f"001{a:015d}", f"Account {a}", ["Banking", "Retail", "Tech"][a % 3]])
    fa.close()
    files = {
        "Opportunity.csv": [
            "Id",
            "AccountId",
            "OwnerId",
            "StageName",
            "Amount",
            "CloseDate",
            "CreatedDate",
            "LastModifiedDate",
            "LastStageChangeDate",
        ],
        "OpportunityLineItem.csv": [
            "Id",
            "OpportunityId",
            "ProductCode",
            "ListPrice",
            "TotalPrice",
        ],
        "OpportunityHistory.csv": [
            "Id",
            "OpportunityId",
            "StageName",
            "Amount",
            "CloseDate",
            "CreatedDate",
        ],
        "Task.csv": ["Id", "WhatId", "ActivityDate", "CompletedDateTime", "TaskSubtype", "Status"],
        "Event.csv": ["Id", "WhatId", "ActivityDateTime", "StartDateTime", "Type"],
    }
    out = {name: writer(name, header) for name, header in files.items()}
    rows = 0
    for i in range(n):
        oid = f"006{i:015d}"
        created = start + timedelta(minutes=rng.randrange(60 * 24 * 60))
        stage = rng.choice(STAGES)
        changed = created + timedelta(days=rng.randrange(1, 30))
        close = (changed + timedelta(days=1)).date().isoformat()
        amount = rng.randrange(5, 100) * 1000
        out["Opportunity.csv"][1].writerow(
            [
                oid,
                f"001{rng.randrange(1000):015d}",
                f"005{rng.randrange(50):015d}",
                stage,
                amount,
                close,
                _ts(created),
                _ts(changed),
                _ts(changed),
            ]
        )
        out["OpportunityLineItem.csv"][1].writerow(
            [f"00k{i:015d}", oid, f"P-{i % 7}", amount, amount]
        )
        for h, (st, at) in enumerate(
            [
                ("Prospecting", created),
                ("Needs Analysis", created + timedelta(hours=5)),
                (stage, changed),
            ]
        ):
            out["OpportunityHistory.csv"][1].writerow(
                [f"008{i:012d}{h:03d}", oid, st, amount, close, _ts(at)]
            )
        for t in range(5):
            at = created + timedelta(hours=rng.randrange(1, 600))
            out["Task.csv"][1].writerow(
                [
                    f"00T{i:012d}{t:03d}",
                    oid,
                    at.date().isoformat(),
                    _ts(at),
                    rng.choice(["Call", "Email", "Email", "Task"]),
                    "Completed",
                ]
            )
        at = created + timedelta(hours=rng.randrange(1, 600))
        out["Event.csv"][1].writerow([f"00U{i:015d}", oid, _ts(at), _ts(at), "Meeting"])
        rows += 1 + 3 + 5 + 1
    for fh, _ in out.values():
        fh.close()  # type: ignore[attr-defined]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--opportunities", type=int, default=20_000)
    args = ap.parse_args()
    spec = load_mapping(ROOT / "config/mappings/salesforce.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = write_export(folder, args.opportunities)
        t0 = time.perf_counter()
        events, stats = import_events(spec, folder)
        seconds = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"opportunities        {args.opportunities:,}")
    print(f"rows mapped          {rows:,} (+ {50 + 1000 + args.opportunities:,} lookup rows)")
    print(f"events               {len(events):,} ({stats.merged:,} given by two rows)")
    print(f"rejected rows        {stats.rejected:,}")
    print(f"seconds              {seconds:.1f}")
    print(f"rows per second      {rows / seconds:,.0f}")
    print(f"peak RSS (MB)        {peak_mb:,.0f}")


if __name__ == "__main__":
    main()
