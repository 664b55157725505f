"""Permuted-block randomization lists, reproducible from a seed.

The control (reference) arm is named explicitly, never guessed: `--control ARM`, or the second name
of `--arms treatment,control`. The list records it in a `role` column (`control` for the control arm,
`treatment` for every other), which `analyze` reads.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cpm_session.errors import CpmError

PARTICIPANT_FORMAT = "P{:03d}"
COLUMNS = ["participant", "arm", "block", "role"]
CONTROL_ROLE = "control"
TREATMENT_ROLE = "treatment"


class RandomizationError(CpmError):
    """The randomization request cannot be met (block size, arms, n)."""


@dataclass(frozen=True)
class Allocation:
    """One line of the list."""

    participant: str
    arm: str
    block: int


def permuted_blocks(n: int, arms: list[str], block_size: int, seed: int) -> list[Allocation]:
    """Return `n` allocations in permuted blocks of `block_size` (each arm equally often per block).

    numpy's PCG64 generator seeded with `seed` shuffles each block, so the same arguments always give
    the same list. The last block is cut when `n` is not a multiple of `block_size`.
    """
    if n < 1:
        raise RandomizationError(f"--n must be at least 1, got {n}")
    arms = [a.strip() for a in arms if a.strip()]
    if len(arms) < 2 or len(set(arms)) != len(arms):
        raise RandomizationError(f"--arms needs at least two different names, got {arms}")
    if block_size < len(arms) or block_size % len(arms):
        raise RandomizationError(f"--block-size {block_size} must be a multiple of the number of arms ({len(arms)})")
    width = max(3, len(str(n)))
    rng = np.random.default_rng(seed)
    out: list[Allocation] = []
    block = 0
    while len(out) < n:
        block += 1
        order = list(rng.permutation(arms * (block_size // len(arms))))
        for arm in order:
            if len(out) == n:
                break
            out.append(Allocation(f"P{len(out) + 1:0{width}d}", str(arm), block))
    return out


def control_arm(arms: list[str], control: str | None = None) -> str:
    """Return the control arm: `control` if given (it must be one of `arms`), else the second of exactly two arms.

    With three or more arms and no `control`, raise RandomizationError: the control is never guessed.
    """
    names = [a.strip() for a in arms if a.strip()]
    if control is not None and control.strip():
        c = control.strip()
        if c not in names:
            raise RandomizationError(f"--control {c!r} is not one of --arms {names}")
        return c
    if len(names) == 2:
        return names[1]
    raise RandomizationError(f"--arms lists {len(names)} arms {names}; name the control arm with --control ARM")


def write_allocations(allocs: list[Allocation], path: str | Path, control: str) -> None:
    """Write the list as CSV (participant,arm,block,role; role = control for the `control` arm, else
    treatment); refuse to overwrite an existing file."""
    p = Path(path)
    if control not in {a.arm for a in allocs}:
        raise RandomizationError(f"control arm {control!r} is not in the list (arms {sorted({a.arm for a in allocs})})")
    if p.exists():
        raise RandomizationError(f"{p} exists; a randomization list is never overwritten (choose another name)")
    try:
        with open(p, "x", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(COLUMNS)
            for a in allocs:
                w.writerow([a.participant, a.arm, a.block, CONTROL_ROLE if a.arm == control else TREATMENT_ROLE])
    except OSError as e:
        raise RandomizationError(f"cannot write {p}: {e.strerror or e}") from e
