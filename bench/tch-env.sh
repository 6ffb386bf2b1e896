#!/usr/bin/env bash
# Prepares libtorch for the `tch` feature of mgrpo-models and prints the environment it needs.
#
#   eval "$(bench/tch-env.sh)"            # venv at .venv-torch (created on first use)
#   VENV=/opt/torch eval "$(bench/tch-env.sh)"
#   cargo test -p mgrpo-models --features tch   # with MGRPO_TEST_BACKEND=tch to test on libtorch
#
# burn-tch 0.22 (tch / torch-sys 0.22) needs libtorch from PyTorch 2.9.0 exactly. PyPI's wheel
# is the CUDA build (~900 MB download, ~6.7 GB installed with its nvidia packages); it also runs
# on machines without a GPU. Progress goes to stderr; only the exports go to stdout.
set -euo pipefail

VENV="${VENV:-.venv-torch}"
TORCH_VERSION="2.9.0"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "creating virtualenv $VENV" >&2
    "$PYTHON" -m venv "$VENV" >&2
fi
VENV="$(cd "$VENV" && pwd)"

installed="$("$VENV/bin/python" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)"
if [ "${installed%%+*}" != "$TORCH_VERSION" ]; then
    echo "installing torch==$TORCH_VERSION into $VENV (large download)" >&2
    "$VENV/bin/pip" install --quiet "torch==$TORCH_VERSION" >&2
fi

TORCH_LIB="$("$VENV/bin/python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"

cat <<EXPORTS
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:\$PATH"
export LIBTORCH_USE_PYTORCH=1
export LD_LIBRARY_PATH="$TORCH_LIB\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
EXPORTS
