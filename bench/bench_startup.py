"""Start-up benchmark: how long `digest --version`, `digest --help` and `digest status` take before they do
anything, against `python -c "import click"` (the floor for a click CLI) measured in the same run.

Run: python bench/bench_startup.py [--quick] [--rounds N] [--old PATH]
Each round runs every command once, in a shuffled order (interleaved, so drift hits all alike); prints the
median wall time per command and its ratio to `import click` (issue 14's targets: --version and --help within
2.5x, status within 5x). ``--old PATH`` also times the same commands from another checkout (e.g. the tree
before the restructure, `git archive <commit> | tar -x -C PATH`), whose CLI module is found automatically.
``status`` runs against a starter config (`digest init`) and a store holding one small dump, in a temporary folder
(one per tree, made by that tree's own CLI, so an older checkout with an older store schema can be timed too).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _entry(tree: Path) -> str:
    """The import line of a tree's CLI entry point (digest.app.cli after the restructure, digest.cli before)."""
    module = "digest.app.cli" if (tree / "digest" / "app" / "cli").is_dir() else "digest.cli"
    return f"import sys; from {module} import entry; sys.argv[0] = 'digest'; entry()"


def _env(tree: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(PYTHONPATH=str(tree), HOME=str(home), XDG_CONFIG_HOME=str(home / "config"))
    env.update(XDG_DATA_HOME=str(home / "data"), DIGEST_SECRET="x" * 40)
    return env


def _time(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one run; from the temporary HOME, so `python -c` does not import the checkout in the cwd."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, cwd=env["HOME"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 rounds")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--old", type=Path, help="another checkout to time the same commands from")
    args = parser.parse_args()
    rounds = 5 if args.quick else args.rounds
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        trees = {"new": ROOT} | ({"old": args.old.resolve()} if args.old else {})
        dump = sorted((ROOT / "tests" / "fixtures").glob("*.txt"))[0]
        cases: dict[str, tuple[list[str], dict[str, str]]] = {
            "import click": ([sys.executable, "-c", "import click"], _env(ROOT, home))
        }
        for label, tree in trees.items():
            # Each tree gets a config and store made by its own CLI: the trees may differ in schema version.
            tree_home = home / label
            tree_home.mkdir()
            base = [sys.executable, "-c", _entry(tree)]
            env = _env(tree, tree_home)
            config = tree_home / "config.toml"
            for argv in (["init", str(config)], ["--config", str(config), "ingest", str(dump)]):
                subprocess.run([*base, *argv], env=env, cwd=tree_home, check=True, stdout=subprocess.DEVNULL)
            cases[f"{label}: digest --version"] = ([*base, "--version"], env)
            cases[f"{label}: digest --help"] = ([*base, "--help"], env)
            cases[f"{label}: digest status"] = ([*base, "--config", str(config), "status"], env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for argv, env in cases.values():  # warm the page cache once
            _time(argv, env)
        for _ in range(rounds):
            order = list(cases)
            random.shuffle(order)
            for name in order:
                times[name].append(_time(*cases[name]))
    floor = statistics.median(times["import click"])
    print(f"{rounds} rounds, interleaved; median wall time")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:<24} {median * 1000:7.1f} ms   x{median / floor:4.1f} of import click")


if __name__ == "__main__":
    main()
