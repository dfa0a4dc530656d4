r"""Rebuild every benchmark report that is made from run records, without training or evaluating.

Usage (from the repository root)::

    python benchmarks/reports.py [NAME ...] [--list] [--results benchmarks/results]

A benchmark folder of ``benchmarks/results/`` that keeps records of its runs (tables of
:mod:`~mepoly_dist.zoo.benchmark.records`) lists in its ``reports.yml`` the reports made from them,
each with the command that makes it::

    - report: smoothworld_seeds.md
      command: python benchmarks/smoothworld.py --report-only --runs-dir benchmarks/results/smoothworld/records/preset.jsonl ...

This runs every such command (or those whose report is named), one after the other in this
process, from the repository root; each report then names its own command in its header, so it
can also be rebuilt alone.  A command must be a report-only one: ``--report-only``, or a script of
:data:`RECORDS_ONLY_SCRIPTS` that never trains.  The hand-written notes below a report's
:data:`~mepoly_dist.zoo.benchmark.results.NOTES_MARKER` are kept.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import runpy
import shlex
import sys
import time
from pathlib import Path

import yaml

__all__ = ["MANIFEST", "RECORDS_ONLY_SCRIPTS", "find_reports", "run_command", "main"]

#: the file of a benchmark folder that lists the reports made from its records
MANIFEST = "reports.yml"
#: benchmark scripts that only read records or run directories (they never train)
RECORDS_ONLY_SCRIPTS = ("benchmarks/smoothworld_sweep.py",)


def find_reports(results) -> list[dict]:
    """``{"folder", "report", "command"}`` of every report listed in ``RESULTS/*/reports.yml``."""
    found = []
    for manifest in sorted(Path(results).glob(f"*/{MANIFEST}")):
        for entry in yaml.safe_load(manifest.read_text()) or []:
            if set(entry) != {"report", "command"}:
                raise ValueError(f"{manifest}: each entry is a mapping of report and command, got {entry!r}")
            found.append(dict(folder=manifest.parent, report=entry["report"], command=" ".join(entry["command"].split())))
    return found


def run_command(command: str) -> None:
    """Run ``python benchmarks/<script>.py ARGS`` in this process (the script as ``__main__``, with
    ``sys.argv`` set as the command gives it), from the current directory; refuse commands that
    could train."""
    argv = shlex.split(command)
    if len(argv) < 2 or argv[0] != "python" or not argv[1].startswith("benchmarks/") or not argv[1].endswith(".py"):
        raise ValueError(f"not a benchmark command (python benchmarks/<script>.py ...): {command}")
    if "--report-only" not in argv and argv[1] not in RECORDS_ONLY_SCRIPTS:
        raise ValueError(f"not a report-only command (it could train): {command}")
    saved = sys.argv
    sys.argv = argv[1:]
    try:
        runpy.run_path(argv[1], run_name="__main__")
    except SystemExit as done:
        if done.code not in (None, 0):
            raise RuntimeError(f"{command} exited with {done.code}") from done
    finally:
        sys.argv = saved


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="rebuild only these reports (file names, e.g. smoothworld_seeds.md)")
    parser.add_argument("--results", default="benchmarks/results", help="the results folder, <repository>/benchmarks/results")
    parser.add_argument("--list", action="store_true", help="list the reports and their commands; rebuild nothing")
    parser.add_argument("--verbose", action="store_true", help="print the reports as they are written")
    args = parser.parse_args(argv)
    results = Path(args.results).resolve()
    root = results.parent.parent  # the commands are relative to the repository root
    reports = find_reports(results)
    unknown = set(args.names) - {r["report"] for r in reports}
    if unknown:
        parser.error(f"no such report in {args.results}/*/{MANIFEST}: {sorted(unknown)}")
    if args.names:
        reports = [r for r in reports if r["report"] in args.names]
    if args.list:
        for r in reports:
            print(f"{r['folder'].relative_to(results)}/{r['report']}: {r['command']}")
        return
    start, cwd = time.perf_counter(), os.getcwd()
    os.chdir(root)
    try:
        for r in reports:
            t0 = time.perf_counter()
            print(f"== {r['folder'].relative_to(results)}/{r['report']}: {r['command']}", flush=True)
            with contextlib.redirect_stdout(sys.stdout if args.verbose else io.StringIO()):
                run_command(r["command"])
            print(f"== rebuilt {r['report']} in {time.perf_counter() - t0:.1f} s", flush=True)
    finally:
        os.chdir(cwd)
    print(f"rebuilt {len(reports)} reports in {time.perf_counter() - start:.1f} s")
