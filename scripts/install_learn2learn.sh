#!/usr/bin/env bash
# Install learn2learn 0.2.0 into the virtualenv VENV_DIR (Python 3.11).
#
# Why not plain `pip install learn2learn`: the 0.2.0 sdist ships .c files generated
# by an old Cython that don't compile against the 3.11 C API, and it depends on qpth,
# which no longer builds. So: fetch the sdist, regenerate the .c files from the .pyx
# sources with a current Cython, and install without deps. Its remaining runtime deps
# (numpy, scipy, requests, tqdm, torch, torchvision) are the project's own deps;
# gym is installed here because `import learn2learn` imports it at top level.
# qpth and gsutil are deliberately not installed (only used by optional features:
# MetaOptNet's QP layer and the QuickDraw download).
set -euo pipefail

VENV_DIR="${1:?usage: $0 VENV_DIR}"
PY="$VENV_DIR/bin/python"
[ -x "$PY" ] || { echo "install_learn2learn: no python at $PY" >&2; exit 1; }

# Fast path: already installed and importable -> nothing to do.
if "$PY" -c "import learn2learn" >/dev/null 2>&1; then
    echo "install_learn2learn: learn2learn already importable in $VENV_DIR"
    exit 0
fi

BUILD_DIR="$(mktemp -d -t l2l-build.XXXXXX)"
trap 'rm -rf "$BUILD_DIR"' EXIT

# torch/torchvision must come from the project's own pins (another version would
# download GBs), so require them rather than let pip pick one.
"$PY" -c "import torch, torchvision" || {
    echo "install_learn2learn: install the project's torch/torchvision into $VENV_DIR first" >&2
    exit 1
}
# Build tools must be in the venv itself, since we build with --no-build-isolation.
# numpy/scipy/requests/tqdm are project deps too; listing them only fills them in
# when this runs before the project install (pip leaves installed versions alone).
"$PY" -m pip install -q setuptools wheel cython gym numpy scipy requests tqdm

# --no-build-isolation: prepare the metadata with the venv's Cython rather than
# compiling an old Cython from source in an isolated build environment (minutes).
"$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$BUILD_DIR" learn2learn==0.2.0
tar -xzf "$BUILD_DIR"/learn2learn-0.2.0.tar.gz -C "$BUILD_DIR"
SRC="$BUILD_DIR/learn2learn-0.2.0"

# Drop qpth/gsutil from install_requires too, so the installed metadata is
# consistent and `pip check` / later pip runs don't report them missing.
sed -i "/'gsutil',/d; /'qpth>=0.0.15',/d" "$SRC/setup.py"

# Regenerate the stale C sources with the venv's current Cython.
for pyx in meta_dataset task_dataset transforms; do
    "$PY" -m cython -3 "$SRC/learn2learn/data/$pyx.pyx"
done

"$PY" -m pip install -q --no-deps --no-build-isolation "$SRC"
"$PY" -c "import learn2learn; print('install_learn2learn: learn2learn', learn2learn.__version__, 'installed')"
