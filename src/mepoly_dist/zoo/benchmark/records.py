"""A run's small text records, from its run directory or from a compacted records table.

``mepoly train`` leaves in its run directory, besides the model and the logs, a few small text files:
``metrics.json`` (the final evaluation), ``eval_curve.csv`` (the in-training evaluations),
``config.yml`` (what the run was trained with), ``timing.json`` and, where a benchmark evaluated the
late checkpoints, ``checkpoint_goal_eval.csv``.  Those are all a report needs.  A **records table**
keeps them for a whole sweep in one JSON-lines file, one line per run::

    {"run": "three_goals__mepoly__0", "metrics": {...}, "config": {...}, "timing": {...},
     "curves": {"eval_curve": {"timesteps": [...], "success_rate": [...], ...}, ...},
     "notes": {"drift_mean": 0.45}}

``curves`` holds each CSV file column by column (numbers parsed, so every value is kept), and
``notes`` what a report measured on the run's model while it existed (the mean drift length of
the Smooth World figures), since the tables keep no models.

:class:`Runs` reads either form, so a report is made the same way from live run directories and
from a table; ``python -m mepoly_dist.zoo.benchmark.records DIR ... --out TABLE.jsonl`` compacts
run (or legacy records) directories into a table.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ["RECORD_FILES", "TABLE_SUFFIX", "RunRecord", "Runs", "is_table", "read_table", "write_table", "update_table",
           "compact"]

#: the files of a run directory that its record keeps (models and TensorBoard logs are left out)
RECORD_FILES = ("metrics.json", "eval_curve.csv", "checkpoint_goal_eval.csv", "config.yml", "timing.json")
#: the file suffix of a records table
TABLE_SUFFIX = ".jsonl"


def is_table(path) -> bool:
    """Whether ``path`` names a records table (``*.jsonl``) rather than a directory of runs."""
    return str(path).endswith(TABLE_SUFFIX)


def _number(text: str):
    """A CSV cell as the number it spells (int, else float), or the text itself."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_csv(path: Path) -> dict[str, list]:
    """A CSV file with a header row, column by column."""
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle)) or [[]]
    return {name: [_number(row[i]) for row in rows] for i, name in enumerate(header)}


@dataclass
class RunRecord:
    """One run's records: ``metrics`` (None while it has not finished), ``config``, ``timing``,
    ``curves`` (CSV stem -> columns), ``notes`` (values a report measured on its model) and, where
    the record was read from a run directory, that directory (``path``: models and checkpoints)."""

    name: str
    metrics: dict | None = None
    config: dict | None = None
    timing: dict | None = None
    curves: dict[str, dict[str, list]] = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    path: Path | None = None

    @classmethod
    def from_run_dir(cls, run_dir) -> RunRecord:
        """The record of a run directory (or of a legacy records directory with the same files)."""
        run_dir = Path(run_dir)

        def load(name, parse):
            file = run_dir / name
            return parse(file.read_text()) if file.exists() else None

        curves = {Path(name).stem: _read_csv(run_dir / name) for name in RECORD_FILES
                  if name.endswith(".csv") and (run_dir / name).exists()}
        return cls(run_dir.name, metrics=load("metrics.json", json.loads), config=load("config.yml", yaml.safe_load),
                   timing=load("timing.json", json.loads), curves=curves, path=run_dir)

    @classmethod
    def from_json(cls, data: dict) -> RunRecord:
        """The record of one line of a records table."""
        return cls(data["run"], metrics=data.get("metrics"), config=data.get("config"), timing=data.get("timing"),
                   curves=data.get("curves", {}), notes=data.get("notes", {}))

    def to_json(self) -> dict:
        """The line of a records table (empty parts left out)."""
        data = {"run": self.name, "metrics": self.metrics, "config": self.config, "timing": self.timing,
                "curves": self.curves, "notes": self.notes}
        return {k: v for k, v in data.items() if v or k == "run"}

    def rows(self, curve: str) -> list[dict]:
        """The rows of one of the run's CSV files (``"eval_curve"``, ``"checkpoint_goal_eval"``), as dicts."""
        columns = self.curves.get(curve) or {}
        return [dict(zip(columns, values)) for values in zip(*columns.values())]

    def set_rows(self, curve: str, header: list[str], rows: list) -> None:
        """Replace one of the run's curves by ``rows`` (sequences in the order of ``header``)."""
        self.curves[curve] = {name: [row[i] for row in rows] for i, name in enumerate(header)}

    def checkpoints(self) -> list[Path]:
        """The run directory's checkpoints ``model_<steps>_steps.zip``, by steps (none for a table's record)."""
        if self.path is None:
            return []
        return sorted((self.path / "checkpoints").glob("model_*_steps.zip"), key=lambda p: int(p.stem.split("_")[1]))

    def has_model(self) -> bool:
        """Whether the run's final model is at hand (``model.zip`` in its run directory)."""
        return self.path is not None and (self.path / "model.zip").exists()


def read_table(path) -> dict[str, RunRecord]:
    """The records of a table, by run name (an absent file has none)."""
    path = Path(path)
    if not path.exists():
        return {}
    records = [RunRecord.from_json(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
    return {record.name: record for record in records}


def write_table(path, records) -> Path:
    """Write ``records`` to the table ``path``, one line per run, sorted by run name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(record.to_json()) for record in sorted(records, key=lambda r: r.name)]
    path.write_text("".join(line + "\n" for line in lines))
    return path


def update_table(path, records) -> Path:
    """Add ``records`` to the table ``path`` (created if absent).  A run already in the table is
    updated only where it is the same run (the same metrics: its notes are merged, those of the new
    record winning); a different run under a name the table holds raises ``ValueError`` and writes
    nothing, so a rerun never silently replaces a recorded run (give it another seed, or another table)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path):
        table = read_table(path)
        clashes = [r.name for r in records if r.name in table and table[r.name].metrics != r.metrics]
        if clashes:
            raise ValueError(f"{path} already holds different runs named {', '.join(sorted(clashes))}: a rerun does not replace a "
                             "recorded run; record it in another table (or under another seed)")
        for record in records:
            old = table.get(record.name)
            if old is not None:
                record.notes = {**old.notes, **record.notes}
            table[record.name] = record
        return write_table(path, table.values())


@contextlib.contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on the table ``path`` (created if absent), so that benchmark processes running
    side by side add their runs one after the other instead of overwriting each other's (POSIX ``flock``;
    no lock where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: one process at a time is the user's to ensure
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Runs:
    """The runs of a runs directory (``DIR/<run>/``, e.g. ``mepoly train`` outputs or legacy records
    directories) or of a records table (``FILE.jsonl``), by run name."""

    def __init__(self, path):
        self.path = Path(path)
        self.table = read_table(self.path) if is_table(self.path) else None
        if self.table is None and not self.path.is_dir() and self.path.exists():
            raise ValueError(f"{self.path} is neither a runs directory nor a records table (*{TABLE_SUFFIX})")

    def __repr__(self) -> str:
        return f"Runs({str(self.path)!r})"

    def get(self, name: str) -> RunRecord | None:
        """The run's record, or None where there is no such run."""
        if self.table is not None:
            return self.table.get(name)
        run_dir = self.path / name
        return RunRecord.from_run_dir(run_dir) if run_dir.is_dir() else None

    def finished(self, name: str) -> RunRecord | None:
        """The run's record where the run has finished (it has metrics), else None."""
        record = self.get(name)
        return record if record is not None and record.metrics is not None else None

    def names(self) -> list[str]:
        """The names of all runs."""
        if self.table is not None:
            return sorted(self.table)
        return sorted(p.name for p in self.path.iterdir() if p.is_dir()) if self.path.is_dir() else []


def compact(run_dirs) -> list[RunRecord]:
    """The records of run directories (or of legacy records directories), for :func:`write_table`."""
    return [RunRecord.from_run_dir(run_dir) for run_dir in run_dirs]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Compact run directories (or legacy records directories) into a records table.")
    parser.add_argument("dirs", nargs="+", help="directories holding one run directory per run (DIR/<run>/metrics.json, ...)")
    parser.add_argument("--out", required=True, help=f"the records table to create or update (*{TABLE_SUFFIX})")
    args = parser.parse_args(argv)
    if not is_table(args.out):
        parser.error(f"--out must end in {TABLE_SUFFIX}")
    records = compact(run for d in args.dirs for run in sorted(Path(d).iterdir()) if run.is_dir())
    update_table(args.out, records)
    print(f"{len(records)} runs in {args.out}")


if __name__ == "__main__":
    main()
