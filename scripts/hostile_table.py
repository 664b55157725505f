"""Print the README table of the hostile-input suite: per input area, tried / refused cleanly / nothing
written / nothing lost (the cases: tests/hostile_cases.py).

    PYTHONPATH=. python scripts/hostile_table.py [--failures]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests import hostile_cases as hc  # noqa: E402


def main() -> int:
    show = "--failures" in sys.argv
    with tempfile.TemporaryDirectory(prefix="cpm-hostile-") as tmp:
        root = Path(tmp)
        src = hc.build_source(root / "src")
        t0 = time.perf_counter()
        outcomes = [hc.run_case(c, hc.make_env(src, root / "case")) for c in hc.cases()]
        took = time.perf_counter() - t0
    print(hc.table(outcomes))
    print(f"\n{len(outcomes)} hostile inputs in {took:.1f} s")
    if show:
        for o in outcomes:
            if not o.ok:
                print(hc.describe(o))
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
