"""Checkpoints of the models: pickled, and authenticated with HMAC-SHA256 before unpickling.

A checkpoint is ``MAGIC | 32-byte HMAC | pickle``. :func:`load` recomputes the HMAC
over the pickle with the configured key and compares it in constant time *before*
``pickle.loads`` sees a byte, so a tampered or foreign file is rejected without
running anything in it. The key comes from ``$GAPMON_MODEL_KEY`` (hex, or any text),
or the file named by ``$GAPMON_MODEL_KEY_FILE``; there is no default key: without one,
saving and loading refuse.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
from pathlib import Path
from typing import Any

MAGIC = b"GAPMON-MODELS-1\n"
_MAC_LEN = 32


class CheckpointError(ValueError):
    """A checkpoint could not be trusted or read."""


def model_key(environ: dict[str, str] | None = None) -> bytes:
    """The HMAC key from the environment (``GAPMON_MODEL_KEY`` or ``GAPMON_MODEL_KEY_FILE``)."""
    env = os.environ if environ is None else environ
    text = env.get("GAPMON_MODEL_KEY")
    if not text and env.get("GAPMON_MODEL_KEY_FILE"):
        text = Path(env["GAPMON_MODEL_KEY_FILE"]).read_text().strip()
    if not text:
        raise CheckpointError(
            "no model checkpoint key: set GAPMON_MODEL_KEY or GAPMON_MODEL_KEY_FILE"
        )
    if len(text) < 16:
        raise CheckpointError("model checkpoint key: use at least 16 characters")
    return text.encode()


def dumps(obj: Any, key: bytes) -> bytes:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return MAGIC + hmac.new(key, payload, hashlib.sha256).digest() + payload


def loads(blob: bytes, key: bytes) -> Any:
    """Verify the HMAC, then unpickle; raise :class:`CheckpointError` on any mismatch."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _MAC_LEN:
        raise CheckpointError("not a gapmon model checkpoint")
    mac = blob[len(MAGIC) : len(MAGIC) + _MAC_LEN]
    payload = blob[len(MAGIC) + _MAC_LEN :]
    expected = hmac.new(key, payload, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise CheckpointError("model checkpoint failed authentication (tampered or wrong key)")
    return pickle.loads(payload)  # noqa: S301 - authenticated above


def save(obj: Any, path: str | Path, key: bytes) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint in place."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(dumps(obj, key))
    os.replace(tmp, path)


def load(path: str | Path, key: bytes) -> Any:
    return loads(Path(path).read_bytes(), key)
