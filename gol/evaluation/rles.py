"""``RLEs``: N compressed RLE masks held in three arrays instead of N dicts.

Shape shorthand: N = masks. An LVIS evaluation holds 300 masks for each of ~20k val images (5.9M); as pycocotools'
dicts ``{"size": [h, w], "counts": bytes}`` each costs a dict, a list, two ints and a bytes object on top of its
counts, GBs in all. Here mask i's compressed counts (pycocotools' ASCII string) are ``data[offsets[i]:offsets[i +
1]]`` and its size is ``sizes[i]``; the dicts pycocotools, hotcoco and lvis-api read are made on demand (:meth:`dicts`)
for the masks an evaluation step needs, and dropped after it. Picklable as three buffers, so gathering detections
across processes moves bytes, not objects.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import Any, overload

import numpy as np
import pycocotools.mask as mask_utils

from gol.evaluation.errors import EvaluationInputError

BAD_SIZE = "every RLE 'size' must be [height, width]"
# pycocotools' area sizes a scratch array as uint8 from the number of masks, which NumPy 2 refuses past 255.
AREA_CHUNK = 255


@dataclass(frozen=True, eq=False)
class RLEs(Sequence[dict[str, Any]]):
    """N compressed RLEs: ``data`` (all counts strings, one after another), ``offsets`` (N + 1,) int64 (mask i's
    counts are ``data[offsets[i]:offsets[i + 1]]``), ``sizes`` (N, 2) int64 (height, width).

    ``text``: counts are handed out as str (as a results file gave them) instead of bytes (as pycocotools encodes
    them). As a sequence, item i is mask i's dict ``{"size": [h, w], "counts": ...}``.
    """

    data: bytes
    offsets: np.ndarray
    sizes: np.ndarray
    text: bool = False

    def __post_init__(self) -> None:
        n = self.sizes.shape[0]
        if self.sizes.shape != (n, 2) or self.offsets.shape != (n + 1,):
            raise EvaluationInputError(
                f"RLEs of {n} masks need offsets ({n + 1},) and sizes ({n}, 2), got {self.offsets.shape} and "
                f"{self.sizes.shape}"
            )
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.data) or np.any(np.diff(self.offsets) < 0):
            raise EvaluationInputError(f"RLE offsets must rise from 0 to the {len(self.data)} bytes of counts")

    def __eq__(self, other: object) -> bool:
        """The same masks in the same order, with counts of the same type (str or bytes)."""
        if not isinstance(other, RLEs):
            return NotImplemented
        return (self.text == other.text and self.data == other.data and np.array_equal(self.offsets, other.offsets)
                and np.array_equal(self.sizes, other.sizes))  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # mutable arrays inside: equal, never hashed

    @classmethod
    def empty(cls) -> RLEs:
        return cls(b"", np.zeros(1, np.int64), np.zeros((0, 2), np.int64))

    @classmethod
    def from_counts(cls, counts: Sequence[bytes], sizes: np.ndarray) -> RLEs:
        """N compressed counts strings (bytes) and their (N, 2) sizes (height, width)."""
        return cls(b"".join(counts), _offsets(counts), np.asarray(sizes, np.int64).reshape(-1, 2))

    @classmethod
    def from_dicts(cls, rles: Sequence[Mapping[str, Any]]) -> RLEs:
        """pycocotools' compressed RLE dicts (``counts`` str or bytes, ``size`` [h, w]); str counts come back as str
        when every mask has them."""
        counts = list(map(itemgetter("counts"), rles))
        sizes = fixed_length(list(map(itemgetter("size"), rles)), 2, np.int64)
        if sizes is None:
            raise EvaluationInputError(BAD_SIZE)
        text = bool(counts) and set(map(type, counts)) == {str}
        try:
            if text:  # one join and one encode: ASCII holds one byte per character
                return cls("".join(counts).encode("ascii"), _offsets(counts), sizes, text=True)
            encoded = [c.encode("ascii") if isinstance(c, str) else bytes(c) for c in counts]
        except (UnicodeEncodeError, TypeError):
            raise EvaluationInputError("RLE counts must be compressed strings (ASCII str or bytes)") from None
        return cls(b"".join(encoded), _offsets(encoded), sizes)

    @classmethod
    def concatenate(cls, parts: Sequence[RLEs]) -> RLEs:
        """The masks of ``parts`` in order (one copy of their bytes); str counts if every part has them."""
        if not parts:
            return cls.empty()
        shifts = np.cumsum([0] + [len(p.data) for p in parts[:-1]])
        offsets = np.concatenate([np.zeros(1, np.int64)] + [p.offsets[1:] + s for p, s in zip(parts, shifts)])
        return cls(
            b"".join(p.data for p in parts),
            offsets,
            np.concatenate([p.sizes for p in parts]),
            all(p.text for p in parts),
        )

    def __len__(self) -> int:
        return int(self.sizes.shape[0])

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> RLEs: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | RLEs:
        if isinstance(index, slice):
            part = range(len(self))[index]
            return self.take(np.arange(part.start, part.stop, part.step))
        i = range(len(self))[index]  # IndexError past the end, as a sequence should
        return self.dicts(np.array([i]))[0]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.dicts())

    def areas(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(n,) float64 pixel areas of masks ``rows`` (every mask when None); dicts are made AREA_CHUNK at a time."""
        rows = np.arange(len(self)) if rows is None else np.asarray(rows, np.int64)
        chunks = [mask_areas(self.dicts(rows[i : i + AREA_CHUNK], text=False)) for i in range(0, rows.size, AREA_CHUNK)]
        return np.concatenate(chunks) if chunks else np.zeros(0)

    def counts(self, rows: np.ndarray | None = None) -> list[Any]:
        """The compressed counts of masks ``rows`` (every mask when None): str or bytes as ``text`` says."""
        pieces = self._pieces(rows)
        return [p.decode("ascii") for p in pieces] if self.text else pieces

    def dicts(self, rows: np.ndarray | None = None, *, text: bool | None = None) -> list[dict[str, Any]]:
        """pycocotools' dicts ``{"size": [h, w], "counts": ...}`` of masks ``rows`` (every mask when None), made
        now; counts as str when ``text`` (None: as held)."""
        sizes = (self.sizes if rows is None else self.sizes[rows]).tolist()
        pieces: list[Any] = self._pieces(rows)
        if self.text if text is None else text:
            pieces = [p.decode("ascii") for p in pieces]
        return [{"size": s, "counts": c} for s, c in zip(sizes, pieces)]

    def take(self, rows: np.ndarray) -> RLEs:
        """The masks at integer positions ``rows``, in that order."""
        rows = np.asarray(rows, np.int64)
        offsets = np.zeros(rows.size + 1, np.int64)
        np.cumsum(self.offsets[rows + 1] - self.offsets[rows], out=offsets[1:])
        return RLEs(b"".join(self._pieces(rows)), offsets, self.sizes[rows], self.text)

    def _pieces(self, rows: np.ndarray | None) -> list[bytes]:
        """The counts (bytes) of masks ``rows``, every mask when None."""
        if rows is None:
            starts, stops = self.offsets[:-1], self.offsets[1:]
        else:
            rows = np.asarray(rows, np.int64)
            starts, stops = self.offsets[rows], self.offsets[rows + 1]
        data = self.data
        return [data[a:b] for a, b in zip(starts.tolist(), stops.tolist())]


def mask_areas(rles: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """(n,) float64 pixel areas of compressed RLE dicts, by ``pycocotools.mask.area`` (AREA_CHUNK at a time)."""
    chunks = [mask_utils.area(list(rles[i : i + AREA_CHUNK])) for i in range(0, len(rles), AREA_CHUNK)]
    return np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)


def _offsets(counts: Sequence[bytes] | Sequence[str]) -> np.ndarray:
    """(N + 1,) int64: where each of N consecutive strings starts in their concatenation, and its end."""
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(np.fromiter(map(len, counts), np.int64, count=len(counts)), out=offsets[1:])
    return offsets


def fixed_length(rows: list[Any], width: int, dtype: type) -> np.ndarray | None:
    """(n, width) array from n sequences of ``width`` numbers, or None if any row is not such a sequence."""
    try:
        if set(map(len, rows)) - {width}:
            return None
        return np.fromiter(chain.from_iterable(rows), dtype=dtype, count=width * len(rows)).reshape(-1, width)
    except (TypeError, ValueError, OverflowError):
        return None
