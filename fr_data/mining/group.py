"""The ranks a mining run is spread over: which share of a search each rank does, and how results meet.

Under ``torchrun`` (a ``torch.distributed`` group: gloo on CPU, NCCL on GPU) every k-NN search of mining
splits its *queries* into contiguous shares, one per rank (:func:`share`, any rank count: none has to
divide N or C); the class-major pass splits its *classes* into contiguous ranges of about equal work
(:func:`split_by_cost`). Each rank computes its share exactly as a single process computes those rows,
so the results gathered on rank 0 are the single-process results. Without a group the run is
:data:`SOLO` (one rank; no collective runs and torch is not imported).

Every collective is named by the mining stage it ends. Before it, the rank records its arrival in the
group's key-value store; a collective that fails (a peer died, or did not arrive within the group's
timeout) becomes a :class:`RankError` naming the ranks that never arrived. :meth:`Ranks.agree` turns an
error found on one rank (another embeddings file, an output folder it cannot see) into the same one-line
error on every rank, so all of them stop.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from fr_data.io.errors import HardmineError, one_line

T = TypeVar("T")

#: Rows per message of :meth:`Ranks.gather_rows` and :meth:`Ranks.broadcast_rows` (bounds what a rank
#: holds of another rank's results at once).
BLOCK_ROWS = 65_536

#: Store key a rank sets when it reaches the collective that ends ``stage``.
ARRIVAL_KEY = "hardmine/mine/{stage}/rank-{rank}"


class RankError(HardmineError):
    """A distributed mining run stopped: a rank failed, died or did not arrive (one line, exit 2)."""


def share(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[start, stop)`` of ``n`` that ``rank`` of ``world`` takes: contiguous, sizes differ by <= 1."""
    return n * rank // world, n * (rank + 1) // world


def split_by_cost(cost: np.ndarray, world: int) -> np.ndarray:
    """``world + 1`` bounds splitting items ``0..len(cost)`` into contiguous ranges of about equal total
    ``cost`` (range ``r`` = ``bounds[r]:bounds[r + 1]``; a range may be empty)."""
    total = np.concatenate([[0.0], np.cumsum(np.asarray(cost, np.float64))])
    targets = total[-1] * np.arange(1, world) / world
    inner = np.searchsorted(total, targets, side="left")
    return np.concatenate([[0], np.clip(inner, 0, len(cost)), [len(cost)]]).astype(np.int64)


@dataclass
class Ranks:
    """This process's place in the mining group (``rank`` of ``world``) and the group's collectives.

    ``device``: where collective tensors live (the CUDA device under NCCL, else the CPU).
    ``arrived``: the stages this rank reached, in order (for the error of a failed collective).
    """

    rank: int = 0
    world: int = 1
    device: Any = None
    arrived: list[str] = field(default_factory=list)

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def share(self, n: int) -> tuple[int, int]:
        """This rank's contiguous share ``[start, stop)`` of ``n`` queries."""
        return share(n, self.rank, self.world)

    @classmethod
    def current(cls, device: Any = None) -> Ranks:
        """The ranks of the running ``torch.distributed`` group, or :data:`SOLO` without one."""
        from fr_data import runtime

        rank, world = runtime.rank_world()
        if world == 1:
            return SOLO
        return cls(rank, world, device)

    # -- collectives (never called with world == 1) -----------------------------------------------

    def _run(self, stage: str, fn: Callable[[], T]) -> T:
        """Run collective ``fn`` ending ``stage``; a failure names the ranks that did not arrive."""
        self.arrived.append(stage)
        store = _store()
        if store is not None:
            store.set(ARRIVAL_KEY.format(stage=stage, rank=self.rank), "1")
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - gloo/NCCL raise RuntimeError subclasses of several kinds
            missing = _missing(store, stage, self.world)
            who = (f"rank {', '.join(map(str, missing))} did not arrive" if missing
                   else "a rank stopped or timed out")
            error = RankError(f"rank {self.rank}: the run stopped at stage '{stage}': {who} "
                              f"({type(exc).__name__}: {one_line(exc)[:200]})")
        # raised outside the handler: the collective's traceback (whose frames hold the process group,
        # which must be destroyed before exit) is not kept as the error's context
        raise error

    def agree(self, stage: str, error: str | None) -> None:
        """Every rank passes its own error line (or None); if any rank has one, all raise it."""
        if self.world == 1:
            if error is not None:
                raise RankError(error)
            return
        errors = self._run(stage, lambda: self._all_gather_bytes(json.dumps(error).encode()))
        found = [(r, json.loads(e)) for r, e in enumerate(errors) if json.loads(e) is not None]
        if found:
            rank, line = found[0]
            raise RankError(f"rank {rank}: {line}")

    def check(self, stage: str, fn: Callable[[], T]) -> T:
        """``fn()`` on this rank, then :meth:`agree` on whether every rank's call raised a HardmineError
        (one process: ``fn()`` as it is)."""
        if self.world == 1:
            return fn()
        try:
            result, error = fn(), None
        except HardmineError as exc:
            result, error = None, one_line(exc)
        self.agree(stage, error)
        return result  # type: ignore[return-value]

    def broadcast_json(self, stage: str, value: Any) -> Any:
        """Rank 0's JSON-able ``value`` on every rank (sent as JSON text: nothing is unpickled)."""
        if self.world == 1:
            return value
        return json.loads(self._run(stage, lambda: self._all_gather_bytes(json.dumps(value).encode()))[0])

    def broadcast_array(self, stage: str, array: np.ndarray | None, shape: tuple[int, ...],
                        dtype: np.dtype, src: int = 0) -> np.ndarray:
        """Rank ``src``'s ``array`` (of ``shape`` and ``dtype``, known to every rank) on every rank."""
        if self.world == 1:
            assert array is not None
            return array
        import torch
        import torch.distributed as dist

        def run() -> np.ndarray:
            buf = (np.ascontiguousarray(array, dtype) if self.rank == src else np.empty(shape, dtype))
            t = torch.from_numpy(buf.view(np.uint8).reshape(-1)).to(self.device)
            dist.broadcast(t, src=src)
            return t.cpu().numpy().view(dtype).reshape(shape)
        return self._run(stage, run)

    def broadcast_rows(self, stage: str, array: np.ndarray | None, shape: tuple[int, ...], dtype: np.dtype,
                       into: Callable[[int, np.ndarray], None], block: int = BLOCK_ROWS,
                       src: int = 0) -> None:
        """Hand rank ``src``'s ``array`` (of ``shape`` and ``dtype``, known to every rank) to ``into(start,
        rows)`` on every rank, ``block`` rows at a time: no other rank ever holds the whole array (one
        process: the blocks of ``array`` itself)."""
        for start in range(0, shape[0], block):
            stop = min(shape[0], start + block)
            part = array[start:stop] if array is not None else None
            # each block its own exchange (``stage@start``), so a rank that dies between blocks is named
            into(start, self.broadcast_array(f"{stage}@{start}", part, (stop - start, *shape[1:]), dtype,
                                             src))

    def sum_array(self, stage: str, array: np.ndarray) -> np.ndarray:
        """The element-wise sum of every rank's ``array`` (same shape and dtype everywhere) on every rank.
        Exact for integers (and integer-valued float64 below 2**53), whatever the order of the sums."""
        if self.world == 1:
            return array
        import torch
        import torch.distributed as dist

        def run() -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(array).copy()).to(self.device)
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            return t.cpu().numpy()
        return self._run(stage, run)

    def route_rows(self, stage: str, n: int, rows: np.ndarray, columns: Sequence[np.ndarray],
                   into: Callable[[np.ndarray, list[np.ndarray]], None], block: int = BLOCK_ROWS) -> None:
        """Hand each of this rank's ``(rows, columns)`` to the rank whose :meth:`share` of ``n`` holds the
        row: ``into(rows, columns)`` runs on the owner for its own rows and for every other rank's, one
        rank at a time in rank order and ``block`` rows at a time (``rows``: ascending)."""
        rows = np.asarray(rows, np.int64)
        if np.any(rows[1:] < rows[:-1]):
            raise ValueError("route_rows needs ascending rows")
        for dst in range(self.world):
            lo, hi = np.searchsorted(rows, share(n, dst, self.world))
            part_rows, part_cols = rows[lo:hi], [c[lo:hi] for c in columns]  # views, no copies
            if self.rank == dst:  # its own rows, in blocks too (bounded merge temporaries)
                for start in range(0, len(part_rows), block):
                    into(part_rows[start:start + block], [c[start:start + block] for c in part_cols])
            self.gather_rows(f"{stage}>{dst}", part_rows, part_cols, into, block, dst=dst)

    def gather_rows(self, stage: str, rows: np.ndarray, columns: Sequence[np.ndarray],
                    into: Callable[[np.ndarray, list[np.ndarray]], None], block: int = BLOCK_ROWS,
                    dst: int = 0) -> None:
        """Hand every other rank's ``(rows, columns)`` to ``into`` on rank ``dst``, one rank at a time in
        rank order and ``block`` rows at a time, so ``dst`` holds at most one block of another rank's rows
        at once (``dst`` places its own itself).

        ``columns`` are arrays with ``len(rows)`` rows whose dtypes and trailing shapes are the same on
        every rank (the same code built them)."""
        if self.world == 1:
            return
        import torch
        import torch.distributed as dist

        arrays = [np.asarray(rows, np.int64), *columns]

        def send() -> None:
            dist.send(torch.tensor([len(rows)], dtype=torch.int64).to(self.device), dst=dst)
            for start in range(0, len(rows), block):
                for a in arrays:
                    dist.send(_tensor(a[start:start + block], self.device), dst=dst)

        def receive() -> None:
            for src in range(self.world):
                if src == dst:
                    continue
                size = torch.zeros(1, dtype=torch.int64).to(self.device)
                dist.recv(size, src=src)
                n = int(size.item())
                if n == 0:
                    into(np.empty(0, np.int64), [np.empty((0, *a.shape[1:]), a.dtype) for a in arrays[1:]])
                for start in range(0, n, block):
                    got = []
                    for a in arrays:
                        buf = np.empty((min(block, n - start), *a.shape[1:]), a.dtype)
                        t = _tensor(buf, self.device)
                        dist.recv(t, src=src)
                        got.append(t.cpu().numpy().view(a.dtype).reshape(buf.shape))
                    into(got[0], got[1:])
        self._run(stage, receive if self.rank == dst else send)

    def gather_span(self, stage: str, n: int, span: tuple[int, int], columns: dict[str, np.ndarray]
                    ) -> dict[str, np.ndarray] | None:
        """Every rank's ``columns`` of its contiguous ``span`` of ``n`` rows as whole ``n``-row arrays on
        rank 0 (None on the others); one process: ``columns`` themselves, not copied."""
        if self.world == 1:
            return columns
        return self.gather_at(stage, n, np.arange(*span), columns)

    def gather_at(self, stage: str, n: int, rows: np.ndarray, columns: dict[str, np.ndarray],
                  fill: Any = None) -> dict[str, np.ndarray] | None:
        """Every rank's ``columns`` at its ``rows`` (each row on one rank) as ``n``-row arrays on rank 0,
        ``fill`` at the rows no rank sent (None: left unset); None on the other ranks."""
        full = None
        if self.is_root:
            full = {k: np.empty((n, *v.shape[1:]), v.dtype) if fill is None else
                    np.full((n, *v.shape[1:]), fill, v.dtype) for k, v in columns.items()}
            for k, v in columns.items():
                full[k][rows] = v

        def place(got_rows: np.ndarray, got: list[np.ndarray]) -> None:
            for k, v in zip(full, got, strict=True):
                full[k][got_rows] = v
        self.gather_rows(stage, rows, list(columns.values()), place)
        return full

    def scatter_span(self, stage: str, n: int, span: tuple[int, int], columns: dict[str, np.ndarray] | None,
                     like: dict[str, np.dtype]) -> dict[str, np.ndarray]:
        """Rank 0's ``n``-row 1-D ``columns`` (None on the other ranks) cut by share: each rank gets the
        rows of its ``span``, with the dtypes of ``like`` (one process: ``columns`` themselves, cast)."""
        if self.world == 1:
            assert columns is not None
            return {k: np.asarray(columns[k], dt) for k, dt in like.items()}
        a, b = span
        out = {k: np.empty(b - a, dt) for k, dt in like.items()}
        rows = np.arange(n, dtype=np.int64) if self.is_root else np.empty(0, np.int64)
        cols = [np.asarray(columns[k], dt) if self.is_root else np.empty(0, dt) for k, dt in like.items()]

        def place(got_rows: np.ndarray, got: list[np.ndarray]) -> None:
            for k, v in zip(out, got, strict=True):
                out[k][got_rows - a] = v
        self.route_rows(stage, n, rows, cols, place)
        return out

    def gather_json(self, stage: str, value: Any) -> list[Any]:
        """Every rank's JSON-able ``value``, in rank order (on every rank)."""
        if self.world == 1:
            return [value]
        return [json.loads(b) for b in self._run(stage, lambda: self._all_gather_bytes(json.dumps(value).encode()))]

    def _all_gather_bytes(self, payload: bytes) -> list[bytes]:
        import torch
        import torch.distributed as dist

        size = torch.tensor([len(payload)], dtype=torch.int64).to(self.device)
        sizes = [torch.zeros_like(size) for _ in range(self.world)]
        dist.all_gather(sizes, size)
        longest = max(int(s.item()) for s in sizes)
        buf = np.zeros(max(longest, 1), np.uint8)
        buf[:len(payload)] = np.frombuffer(payload, np.uint8)
        mine = torch.from_numpy(buf).to(self.device)
        parts = [torch.empty_like(mine) for _ in range(self.world)]
        dist.all_gather(parts, mine)
        return [p.cpu().numpy()[:int(s.item())].tobytes() for p, s in zip(parts, sizes)]


#: The single-process run: rank 0 of 1.
SOLO = Ranks()


def _tensor(array: np.ndarray, device: Any) -> Any:
    """``array``'s bytes as a flat uint8 tensor on ``device`` (any dtype, bool included)."""
    import torch

    flat = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    return torch.from_numpy(flat.copy() if not flat.flags.writeable else flat).to(device)


def _store() -> Any:
    """The default group's key-value store (hosted by the launcher or rank 0), or None if unreachable."""
    try:
        from torch.distributed import distributed_c10d

        return distributed_c10d._get_default_store()
    except Exception:  # noqa: BLE001 - private API: without it the error names no rank
        return None


def _missing(store: Any, stage: str, world: int) -> list[int]:
    """Ranks whose arrival at ``stage`` the store does not hold."""
    if store is None:
        return []
    try:
        return [r for r in range(world) if not store.check([ARRIVAL_KEY.format(stage=stage, rank=r)])]
    except Exception:  # noqa: BLE001 - the store went with the launcher
        return []
