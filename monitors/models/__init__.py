"""Online models (river) that learn as events arrive: cost of trust, CLI vs SLI fit,
opportunity-score execution, reason codes, drift; and their authenticated checkpoints.

Entry point: :class:`monitors.models.modelset.ModelSet` (``ModelSet(settings).attach(engine)``).
"""
