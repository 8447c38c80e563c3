"""Bring your own CRM: mapping files that turn CRM exports into contract events.

* :mod:`streams.mapping.spec`: the mapping file (YAML), validated, errors with file/line/key;
* :mod:`streams.mapping.readers`: CSV, Excel (.xlsx) and Parquet rows alike;
* :mod:`streams.mapping.values`: one field's value (column, lookup, map, default, time);
* :mod:`streams.mapping.importer`: rows -> events with stable ids, rejects, the summary.

``docs/import.md`` is the user's guide; ``config/mappings/`` holds ready mappings.
"""

from streams.mapping.importer import ImportStats, MappedEvent, import_events
from streams.mapping.spec import MappingError, MappingSpec, load_mapping

__all__ = [
    "ImportStats",
    "MappedEvent",
    "MappingError",
    "MappingSpec",
    "import_events",
    "load_mapping",
]
