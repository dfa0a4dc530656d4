#!/usr/bin/env bash
# Build the sdist and the wheel, install each into a fresh virtual environment outside the
# repository, and run the README's Python examples and a short `mepoly train` there (the presets
# must be inside the package).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m venv "$work/build-env"
"$work/build-env/bin/pip" install -q build
"$work/build-env/bin/python" -m build --outdir "$work/dist" "$repo"
ls "$work/dist"

# the README's python blocks, one file each
python3 - "$repo/README.md" "$work" <<'PY'
import re, sys
from pathlib import Path
blocks = re.findall(r"```python\n(.*?)```", Path(sys.argv[1]).read_text(), re.S)
assert blocks, "no python blocks in README.md"
for i, code in enumerate(blocks):
    Path(sys.argv[2], f"readme_example_{i}.py").write_text(code)
PY

for artifact in "$work"/dist/*.whl "$work"/dist/*.tar.gz; do
    echo "== $(basename "$artifact")"
    venv="$work/venv-$(basename "$artifact")"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.13.0 "mepoly-dist[rl] @ file://$artifact"
    (
        cd "$work"
        for example in readme_example_*.py; do
            echo "-- $example"
            "$venv/bin/python" -W error::RuntimeWarning "$example"
        done
        "$venv/bin/mepoly" train lemniscate --steps 2048 --out "$work/run-$(basename "$artifact")" --no-progress-bar
        test -f "$work/run-$(basename "$artifact")/metrics.json"
    )
done
echo "sdist and wheel install and run outside the repository"
