"""Reason-code taxonomy: normalise free-form CRM tags into a small set of buckets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import yaml

OTHER = "other"
UNKNOWN = "unknown"
_SEPARATORS = re.compile(r"[\s\-/]+")


def normalise_tag(tag: str) -> str:
    """Lower-case a tag and turn spaces, hyphens and slashes into underscores."""
    return _SEPARATORS.sub("_", tag.strip().lower()).strip("_")


class Taxonomy:
    """Maps a reason tag to its bucket; unmapped tags go to ``other``."""

    def __init__(self, buckets: Mapping[str, list[str]]) -> None:
        self.buckets = tuple(buckets)
        self._lookup: dict[str, str] = {}
        for bucket, synonyms in buckets.items():
            for tag in [bucket, *synonyms]:
                key = normalise_tag(str(tag))
                owner = self._lookup.setdefault(key, bucket)
                if owner != bucket:
                    raise ValueError(
                        f"taxonomy: tag {tag!r} is listed under both {owner!r} and {bucket!r}"
                    )
        self._cache: dict[str | None, str] = {}

    @classmethod
    def load(cls, path: str | Path) -> Taxonomy:
        data = yaml.safe_load(Path(path).read_text()) or {}
        buckets = data.get("buckets")
        if not isinstance(buckets, dict) or not buckets:
            raise ValueError(f"{path}: 'buckets' must be a mapping of bucket -> [tags]")
        for bucket, tags in buckets.items():
            if not isinstance(tags, list):
                raise ValueError(f"{path}: buckets.{bucket}={tags!r}: must be a list of tags")
        return cls(buckets)

    def bucket(self, reason_code: str | None) -> str:
        """The bucket of a reason tag (cached: this sits on the hot path)."""
        hit = self._cache.get(reason_code)
        if hit is not None:
            return hit
        if reason_code is None or not reason_code.strip():
            result = UNKNOWN
        else:
            result = self._lookup.get(normalise_tag(reason_code), OTHER)
        if len(self._cache) < 100_000:
            self._cache[reason_code] = result
        return result
