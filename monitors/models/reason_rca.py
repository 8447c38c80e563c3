"""The reason-code RCA hook: buckets whose win/loss split deviates in a region or vertical.

For the deals decided in a quarter (bookings), per reason bucket: the win rate inside
the bucket (won / (won + lost) of the deals tagged with it) in the region - and in each
of its verticals - against the same bucket over all regions (of that vertical). Where
the region's win rate is lower by at least ``delta`` (``models.reason_delta``) with at
least ``min_n`` deals, and the difference is significant (two-proportion z-test, p at
most ``max_p_value``, 0.01: with ~10 buckets x 6 scopes per region, a bare delta or
p < 0.05 flags noise),
the bucket is flagged with

* ``impact_usd`` = sum over the region's deals in the bucket of ``expected_rev x
  win_rate_gap`` (what the deals would have brought at the global win rate), and
* example notes of its lost deals (the model set keeps the last few per bucket).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from monitors.engine import Engine
from monitors.hypotheses.significance import p_two_proportions
from monitors.taxonomy import OTHER, UNKNOWN

_DECIDED = ("won", "lost")


def reason_rca(
    engine: Engine,
    quarter: str,
    region: str,
    delta: float = 0.10,
    min_n: int = 10,
    notes: Any = None,
    max_p_value: float = 0.01,
) -> list[dict[str, Any]]:
    """Flagged (bucket, scope) pairs of a region, the largest impact first.

    ``notes``: a :class:`~monitors.models.reasons.ReasonModel` for example notes.

    >>> from monitors.settings import load_settings
    >>> from streams.events import parse_event_obj
    >>> e = Engine(load_settings().engine)
    >>> def add(aid, region, stage, rev=1000):
    ...     for ev in ({"type": "assignment", "event_id": "a" + aid, "assignment_id": aid,
    ...                 "occurred_at": "2026-10-01T00:00:00Z", "am_id": "M",
    ...                 "region": region, "vertical": "tech", "product": "p",
    ...                 "expected_rev": rev},
    ...                {"type": "deal", "event_id": "d" + aid, "assignment_id": aid,
    ...                 "occurred_at": "2026-11-01T00:00:00Z", "stage": stage,
    ...                 "reason_code": "pricing"}):
    ...         _ = e.ingest(parse_event_obj(ev))
    >>> for i in range(40):
    ...     add(f"N{i}", "NA", "won" if i < 8 else "lost")
    ...     add(f"E{i}", "EMEA", "won" if i < 32 else "lost")
    >>> flagged = reason_rca(e, "2026Q4", "NA", min_n=5)
    >>> [(f["bucket"], f["scope"], f["win_rate"], f["global_win_rate"]) for f in flagged]
    [('pricing', 'region', 0.2, 0.5), ('pricing', 'vertical tech', 0.2, 0.5)]
    >>> flagged[0]["impact_usd"]  # 40 deals x $1,000 x 0.3
    12000.0
    """
    # (scope key, bucket) -> [won, lost, expected revenue of the region's deals]
    mine: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    every: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0, 0.0])
    for st in engine.states.values():
        c = st.cell
        if c is None or st.close_q != quarter or st.stage not in _DECIDED:
            continue
        if st.reason in (OTHER, UNKNOWN, ""):  # not a reason: nothing to say about it
            continue
        won = st.stage == "won"
        for scope in ("", c[2]):  # the region as a whole, and its vertical
            g = every[(scope, st.reason)]
            g[0 if won else 1] += 1
            if c[1] == region:
                r = mine[(scope, st.reason)]
                r[0 if won else 1] += 1
                r[2] += st.expected_c / 100
    out = []
    for (scope, bucket), (won, lost, expected) in mine.items():
        n = won + lost
        gw, gl, _ = every[(scope, bucket)]
        if n < min_n:
            continue
        rate, global_rate = won / n, gw / (gw + gl)
        gap = global_rate - rate
        p = p_two_proportions(won, n, gw, gw + gl)
        if gap < delta or p > max_p_value:
            continue
        examples = []
        if notes is not None:
            verticals = [scope] if scope else sorted({k[2] for k in notes.notes})
            for v in verticals:
                for aid, text in notes.notes.get((quarter, region, v, bucket, "lost"), ()):
                    examples.append({"assignment_id": aid, "note": text})
        out.append(
            {
                "bucket": bucket,
                "scope": f"vertical {scope}" if scope else "region",
                "n": int(n),
                "win_rate": round(rate, 4),
                "global_win_rate": round(global_rate, 4),
                "win_rate_gap": round(gap, 4),
                "p_value": float(f"{p:.3g}"),
                "impact_usd": round(expected * gap, 2),
                "examples": examples[:3],
            }
        )
    return sorted(out, key=lambda f: (-f["impact_usd"], f["bucket"], f["scope"]))
