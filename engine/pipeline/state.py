"""The engine's state between batches: explicit frames, saved and restored byte for byte.

Everything a restarted worker needs to continue exactly where it stopped: the clock, the events
of the instant not yet closed, per-rule state (pending `for` timers, `resolve after` and
absence deadlines, window contents), the firing alerts and the open incidents. Each part is
bounded: window contents by the largest window, alerts by what is firing.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field, fields
from typing import Any

import orjson
import polars as pl

from engine.pipeline.absence import ABSENCE_STATE
from engine.pipeline.alerts import ESCALATE, INFO_SCHEMA, LABEL_LIST
from engine.pipeline.correlate import INCIDENTS
from engine.pipeline.event_rules import EVENT_STATE
from engine.pipeline.windows import WINDOW_EVENTS, WINDOW_STATE
from engine.schema import FED_SCHEMA

PENDING_SCHEMA = pl.Schema(
    {
        **FED_SCHEMA,
        "seq": pl.Int64(),
        "t_src": pl.Int64(),
        "t": pl.Int64(),
        "late": pl.Boolean(),
    }
)

ACTIVE_SCHEMA = pl.Schema(
    {
        "rule": pl.String(),
        "key": pl.String(),
        "fired_at": pl.Int64(),
        "info_seq": pl.Int64(),
        "value": pl.Float64(),
        "count": pl.Int64(),
        "team": pl.String(),
        "severity": pl.String(),
        "notify": pl.List(pl.String),
        "escalate": ESCALATE,
        "alert_labels": LABEL_LIST,
        "alert_title": pl.String(),
        "incident_by": pl.String(),
        "incident_key": pl.String(),
        "incident_opened": pl.Int64(),
    }
)

_MAGIC = b"KLXSTATE1"


def _ipc(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.write_ipc(buf, compression="uncompressed")
    return buf.getvalue()


def _canonical_ipc(frame: pl.DataFrame) -> bytes:
    """Arrow IPC of a frame as it reads back: a state saved, loaded and saved again gives the
    same bytes (what the save/restore tests and replay rely on).

    A frame fresh from a computation can hold its buffers differently (offsets, validity
    masks) from the same frame read from disk; one round trip settles the layout. It does not
    make every pair of equal frames byte-equal: string columns reached by different
    computations can keep different buffers, so compare states as frames, not bytes.
    """
    return _ipc(pl.read_ipc(io.BytesIO(_ipc(frame.rechunk()))))


@dataclass
class EngineState:
    watermark: int | None = None  # µs: the largest engine instant seen
    floor: int | None = None  # µs: instants before it are closed
    next_seq: int = 0
    late_events: int = 0
    signatures: dict[str, str] = field(default_factory=dict)
    pending: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=PENDING_SCHEMA))
    event_state: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EVENT_STATE))
    window_events: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=WINDOW_EVENTS))
    window_state: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=WINDOW_STATE))
    absence_state: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ABSENCE_STATE))
    info: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=INFO_SCHEMA))
    alerts: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=ACTIVE_SCHEMA))
    incidents: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=INCIDENTS))

    def frames(self) -> dict[str, pl.DataFrame]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if isinstance(getattr(self, f.name), pl.DataFrame)
        }

    def scalars(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if not isinstance(getattr(self, f.name), pl.DataFrame)
        }

    def to_bytes(self, *, canonical: bool = True) -> bytes:
        """One self-describing blob: a JSON header, then each frame as Arrow IPC.

        Canonical bytes are equal for equal states (save/restore and replay compare them);
        `canonical=False` writes each frame once as it is held (a third of the time, for the
        worker's save after every batch): `from_bytes` reads both to the same state.
        """
        if not canonical:
            return self._plain_bytes()
        blobs: list[tuple[str, bytes]] = []
        for name, frame in self.frames().items():
            blobs.append((name, _canonical_ipc(frame)))
        return self._blob([(n, len(b)) for n, b in blobs], b"".join(b for _, b in blobs))

    def _plain_bytes(self) -> bytes:
        """Every frame written once into one buffer, which is copied once (megabytes of
        state: each copy of it costs about a millisecond)."""
        buf = io.BytesIO()
        sizes: list[tuple[str, int]] = []
        for name, frame in self.frames().items():
            start = buf.tell()
            frame.write_ipc(buf, compression="uncompressed")
            sizes.append((name, buf.tell() - start))
        return self._blob(sizes, buf.getbuffer())

    def _blob(self, sizes: list[tuple[str, int]], body: bytes | memoryview) -> bytes:
        header = orjson.dumps(
            {"scalars": self.scalars(), "frames": [[n, size] for n, size in sizes]},
            option=orjson.OPT_SORT_KEYS,
        )
        return b"".join((_MAGIC, struct.pack(">I", len(header)), header, body))

    @classmethod
    def from_bytes(cls, data: bytes) -> EngineState:
        if not data.startswith(_MAGIC):
            raise ValueError("not a Klaxon engine state")
        pos = len(_MAGIC)
        (size,) = struct.unpack(">I", data[pos : pos + 4])
        pos += 4
        header = orjson.loads(data[pos : pos + size])
        pos += size
        state = cls(**header["scalars"])
        for name, length in header["frames"]:
            frame = pl.read_ipc(io.BytesIO(data[pos : pos + length]))
            setattr(state, name, frame)
            pos += length
        return state

    @property
    def size(self) -> dict[str, int]:
        return {name: frame.height for name, frame in self.frames().items()}
