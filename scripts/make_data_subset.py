"""Make the small subset of the suite that ships inside the package (src/trex/assets/data/).

Run from the repository root:

    python scripts/make_data_subset.py --source ../shared/data

For every registry task and split it draws up to --train / --eval instances with a seeded RNG (string seed
"<seed>:<task>:<split>", so adding a task does not change the others), keeps them in file order, and writes
them in the registry's common JSONL format (`<task>/<split>.jsonl`, read back by `trex.data.load_task`),
plus `index.json` (counts, seed, source files with sha256) and a README.md carrying the licence notes of
every source file over from the suite's manifest.json. Output is byte-identical for the same inputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
from collections.abc import Iterable
from pathlib import Path

from trex.data.registry import INSTANCES_INDEX, OFFICIAL_EVAL_FILE, REGISTRY, SHIPPED_DATA, load_task

logger = logging.getLogger("make_data_subset")

README_HEAD = """# Shipped subset of the T-REX multitask suite

Made by `scripts/make_data_subset.py` from the staged suite (`../shared/data`; see its MANIFEST.md and
SOURCES.md for provenance). Each `<task>/<split>.jsonl` holds up to {n_train} training and {n_eval}
evaluation instances drawn with seed {seed}, in the registry's common format (one `TaskInstance` per line;
schema in docs/data.md). The `uid` of each line names the staged file and record it came from.

The data keep the licences of their datasets, several of which are non-commercial (WiC, ANLI, Alpaca:
CC-BY-NC-4.0). The package's Apache-2.0 licence covers the code, not these files. Licence notes of every
source file, as recorded in the suite's manifest.json:

| Source file | Used by | Licence | Upstream (repo @ commit : path) |
|---|---|---|---|
"""


def _sample(instances: list, k: int, seed: str) -> list:
    if len(instances) <= k:
        return instances
    keep = sorted(random.Random(seed).sample(range(len(instances)), k))
    return [instances[i] for i in keep]


def make_subset(
    source: Path, out: Path, n_train: int, n_eval: int, seed: int, tasks: Iterable[str] | None = None
) -> dict:
    """Write the subset of `tasks` (default: the whole registry) under `out`, replacing it; return the index."""
    manifest = {f["path"]: f for f in json.loads((source / "manifest.json").read_text())["files"]}
    if out.exists():
        shutil.rmtree(out)
    index: dict = {"format": "trex-instances/1", "seed": seed, "tasks": {}}
    used_by: dict[str, list[str]] = {}
    for name in tasks or REGISTRY:
        spec = REGISTRY[name]
        entry: dict = {}
        official = spec.official_eval if all((source / s.path).is_file() for s in spec.official_eval or ()) else None
        for split, cap in (("train", n_train), ("eval", n_eval), (OFFICIAL_EVAL_FILE, n_eval)):
            sources = official if split == OFFICIAL_EVAL_FILE else spec.sources[split]
            if not sources:
                continue
            if split == OFFICIAL_EVAL_FILE:  # the authors' evaluation split, where it differs from eval
                instances = load_task(name, "eval", source, eval_split="official")
            else:
                instances = load_task(name, split, source)
            chosen = _sample(instances, cap, f"{seed}:{name}:{split}")
            path = out / name / f"{split}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(i.to_json() + "\n" for i in chosen), encoding="utf-8")
            entry[split] = len(chosen)
            entry[f"{split}_sources"] = [s.path for s in sources]
            for s in sources:
                used_by.setdefault(s.path, []).append(name)
        index["tasks"][name] = entry
        logger.info("%-45s train %4s  eval %4s", name, entry.get("train", "-"), entry.get("eval", "-"))
    index["sources"] = {p: manifest[p]["sha256"] for p in sorted(used_by)}
    (out / INSTANCES_INDEX).write_text(json.dumps(index, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    rows = [
        f"| `{p}` | {', '.join(sorted(set(used_by[p])))} | {manifest[p]['license']} | "
        f"{manifest[p]['source_repo']} @ {manifest[p]['source_commit'][:10]} : {manifest[p]['source_path']} |"
        for p in sorted(used_by)
    ]
    readme = README_HEAD.format(n_train=n_train, n_eval=n_eval, seed=seed) + "\n".join(rows) + "\n"
    (out / "README.md").write_text(readme, encoding="utf-8")
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("../shared/data"), help="the staged suite")
    parser.add_argument("--out", type=Path, default=SHIPPED_DATA, help="output folder (replaced)")
    parser.add_argument("--train", type=int, default=200, help="max training instances per task")
    parser.add_argument("--eval", type=int, default=100, help="max evaluation instances per task")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    make_subset(args.source, args.out, args.train, args.eval, args.seed)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    logger.info("wrote %s (%.2f MB)", args.out, size / 1e6)


if __name__ == "__main__":
    main()
