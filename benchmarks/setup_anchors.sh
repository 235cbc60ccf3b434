#!/usr/bin/env bash
# Create benchmarks/.venv-anchors with the reference ("anchor") tools that the
# benchmarks compare loopml against. Idempotent: a stamp file records what was
# installed, so a second run returns in well under a second.
#
# Usage: bash benchmarks/setup_anchors.sh          (from the repository root or anywhere)
#        FORCE=1 bash benchmarks/setup_anchors.sh  (reinstall)
set -euo pipefail

MLFLOW_VERSION="3.17.2"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${here}/.venv-anchors"
stamp="${venv}/.anchors-mlflow-${MLFLOW_VERSION}"
python_bin="${PYTHON:-python3}"

if [[ -z "${FORCE:-}" && -f "${stamp}" && -x "${venv}/bin/python" ]]; then
    echo "anchors: mlflow==${MLFLOW_VERSION} already installed in ${venv}"
    exit 0
fi

if [[ ! -x "${venv}/bin/python" ]]; then
    echo "anchors: creating ${venv}"
    "${python_bin}" -m venv "${venv}"
fi

# A stale stamp from another version must not survive a partial upgrade.
rm -f "${venv}"/.anchors-mlflow-*

echo "anchors: installing mlflow==${MLFLOW_VERSION} (this takes a few minutes the first time)"
"${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "mlflow==${MLFLOW_VERSION}"

installed="$("${venv}/bin/python" -c 'import mlflow; print(mlflow.__version__)')"
if [[ "${installed}" != "${MLFLOW_VERSION}" ]]; then
    echo "anchors: expected mlflow ${MLFLOW_VERSION}, got ${installed}" >&2
    exit 1
fi
touch "${stamp}"
echo "anchors: mlflow==${installed} ready in ${venv}"
