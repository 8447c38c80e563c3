"""Hypotheses that sales ops configure in YAML (``config/hypotheses/*.yaml``), not code.

A hypothesis names a handler type (:mod:`monitors.hypotheses.handlers`), the metric,
dimensions, baseline and thresholds; run against a region's data it returns how much
of a driver it explains (``explained_ratio``, ``impact_usd``), how sure it is
(``confidence``), the slice and examples. :mod:`~monitors.hypotheses.ranking` ranks
hypotheses and drivers together by ``confidence x impact_usd``;
:mod:`~monitors.hypotheses.localise` says which dimension values a gap concentrates in.
"""
