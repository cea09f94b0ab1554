"""Today's batch path beside another tree's, side by side in one run (rounds alternate).

    git worktree add /tmp/bench-main 19690af     # the commit before the outbox app
    .venv/bin/python bench/compare_batch.py --baseline /tmp/bench-main [--messages 2000]
        [--rounds 5] [--database sqlite|postgres]

Each round runs send_throughput.py's batch way (a real worker, Redis, smtp-sink) once per
tree, in alternating order, each on its own throw-away database (SQLite files, or the
PostgreSQL databases crm_bench_engine and crm_bench_engine_main, made if missing). Prints
one line per database: "batch baseline N msg/s, this tree M msg/s: ratio M/N".
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
POSTGRES = "postgres://postgres@127.0.0.1:5432/"


def measure(tree, options, database):
    """The batch way's msg/s for one round of `tree` on `database` (a DATABASE_URL or None)."""
    command = [sys.executable, str(HERE / "send_throughput.py"), "--ways", "batch", "--json",
               "--rounds", "1", "--messages", str(options.messages), "--tree", str(tree)]
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "")}
    if database:
        env["DATABASE_URL"] = database
    result = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True,
                            check=False)  # fmt: skip  (cwd: the tree's own packages first)
    if result.returncode:
        sys.exit(f"{tree}: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["batch"][0]


def databases(kind):
    """(baseline database, this tree's database) for `kind`."""
    if kind == "sqlite":
        return None, None
    for name in ("crm_bench_engine_main", "crm_bench_engine"):
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", name],
                       capture_output=True, check=False)  # fmt: skip  (exists: fine)
    return POSTGRES + "crm_bench_engine_main", POSTGRES + "crm_bench_engine"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", choices=["sqlite", "postgres"], nargs="+",
                        default=["sqlite", "postgres"])  # fmt: skip
    options = parser.parse_args()
    mine = HERE.parent
    for kind in options.database:
        base_db, mine_db = databases(kind)
        ratios, figures = [], {"baseline": [], "this tree": []}
        for number in range(options.rounds):
            order = [("baseline", options.baseline, base_db), ("this tree", mine, mine_db)]
            for name, tree, database in order[:: 1 if number % 2 == 0 else -1]:
                figures[name].append(measure(tree, options, database))
            ratios.append(figures["this tree"][-1] / figures["baseline"][-1])
        print(f"batch on {kind}, {options.messages} messages x {options.rounds} rounds: "
              f"baseline {statistics.median(figures['baseline']):.0f} msg/s, this tree "
              f"{statistics.median(figures['this tree']):.0f} msg/s (rounds: "
              f"{', '.join(f'{r:.2f}' for r in ratios)}): ratio "
              f"{statistics.median(ratios):.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
