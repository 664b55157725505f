"""randomize: reproducible permuted blocks, balanced per block, never overwrites a list."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from cpm_session.analysis.randomize import RandomizationError, permuted_blocks
from cpm_session.cli import main


def test_reproducible_and_balanced_blocks() -> None:
    a = permuted_blocks(40, ["milnacipran", "placebo"], 4, seed=7)
    assert a == permuted_blocks(40, ["milnacipran", "placebo"], 4, seed=7)
    assert a != permuted_blocks(40, ["milnacipran", "placebo"], 4, seed=8)
    assert [x.participant for x in a[:3]] == ["P001", "P002", "P003"] and a[-1].participant == "P040"
    blocks: dict[int, Counter[str]] = {}
    for x in a:
        blocks.setdefault(x.block, Counter())[x.arm] += 1
    assert len(blocks) == 10 and all(c == Counter({"milnacipran": 2, "placebo": 2}) for c in blocks.values())
    # not simply alternating: at least one block deviates from the first block's order
    orders = {tuple(x.arm for x in a if x.block == b) for b in blocks}
    assert len(orders) > 1


def test_cut_last_block_three_arms_and_ids() -> None:
    a = permuted_blocks(10, ["x", "y", "z"], 6, seed=1)
    assert len(a) == 10 and a[-1].block == 2
    assert Counter(x.arm for x in a if x.block == 1) == Counter({"x": 2, "y": 2, "z": 2})
    assert permuted_blocks(1000, ["a", "b"], 4, seed=0)[0].participant == "P0001"


@pytest.mark.parametrize("n,arms,bs,msg", [(0, ["a", "b"], 4, "at least 1"), (4, ["a"], 4, "two different"),
                                           (4, ["a", "a"], 4, "two different"), (4, ["a", "b"], 3, "multiple")])
def test_refusals(n: int, arms: list[str], bs: int, msg: str) -> None:
    with pytest.raises(RandomizationError, match=msg):
        permuted_blocks(n, arms, bs, seed=0)


def test_cli_writes_csv_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "alloc.csv"
    args = ["randomize", "--n", "8", "--block-size", "4", "--arms", "milnacipran,placebo", "--seed", "42", "-o", str(out)]
    assert main(args) == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "participant,arm,block,role" and len(lines) == 9
    assert {ln.split(",")[3] for ln in lines[1:]} == {"treatment", "control"}
    expected = permuted_blocks(8, ["milnacipran", "placebo"], 4, seed=42)
    role = {"milnacipran": "treatment", "placebo": "control"}
    assert lines[1:] == [f"{x.participant},{x.arm},{x.block},{role[x.arm]}" for x in expected]
    assert "milnacipran 4, placebo 4" in capsys.readouterr().out
    assert main(args) == 2
    assert "never overwritten" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8").splitlines() == lines
