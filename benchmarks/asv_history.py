"""Keep the committed asv results in one series per machine, whatever path the Python was run from.

asv names an ``existing`` environment after the interpreter's path
(``existing-py_work_main_.venv_bin_python``) and files the results under that path as the ``python``
parameter, so a CI checkout in another directory would start a new line on the dashboard. After each
``asv run``, CI calls::

    python -m benchmarks.asv_history benchmarks/asv_results

which renames every result of an ``existing`` environment to ``existing-py<major.minor>`` and sets its
``python`` parameter to ``<major.minor>``. Results of the same commit are merged benchmark by benchmark
(the newer file wins on a clash).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def stable_name(python: str) -> str:
    """``"3.11"`` for any path or version string of a Python 3.11 interpreter (the running one if a path)."""
    if python.replace(".", "").isdigit():
        return python
    return f"{sys.version_info[0]}.{sys.version_info[1]}"


def normalise(results_dir: Path) -> list[Path]:
    """Rename path-named ``existing`` results under ``results_dir/<machine>/``; returns the files written."""
    written = []
    for path in sorted(results_dir.glob("*/*.json")):
        if path.name == "machine.json":
            continue
        data: dict[str, Any] = json.loads(path.read_text())
        python = str(data.get("python", ""))
        if not data.get("env_name", "").startswith("existing-") or python.replace(".", "").isdigit():
            continue
        version = stable_name(python)
        data["python"] = version
        data["params"]["python"] = version
        data["env_name"] = f"existing-py{version}"
        target = path.with_name(f"{data['commit_hash'][:8]}-{data['env_name']}.json")
        if target.exists():
            older = json.loads(target.read_text())
            older["results"].update(data["results"])
            older["durations"].update(data.get("durations", {}))
            data = {**data, "results": older["results"], "durations": older["durations"]}
        target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        path.unlink()
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results_dir", type=Path, nargs="?", default=Path("benchmarks/asv_results"))
    args = parser.parse_args()
    for path in normalise(args.results_dir):
        print(f"asv results: {path}")


if __name__ == "__main__":
    main()
