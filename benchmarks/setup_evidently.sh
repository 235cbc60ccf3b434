#!/usr/bin/env bash
# Create benchmarks/.venv-evidently with the pinned Evidently that bench_data.py
# compares loopml's data validation against. Evidently gets its own virtualenv
# (not .venv-anchors) because Evidently 0.7 needs pandas<3 and pins a long list
# of its own dependencies, which must never touch MLflow's or the project's.
# Idempotent: a stamp file records what was installed, so a second run returns
# in well under a second.
#
# Usage: bash benchmarks/setup_evidently.sh          (from the repository root or anywhere)
#        FORCE=1 bash benchmarks/setup_evidently.sh  (reinstall)
set -euo pipefail

EVIDENTLY_VERSION="0.7.23"
# Evidently 0.7 does not work with pandas 3. Pin the same pandas and pyarrow
# (Parquet reader) versions the project's environment resolves to, so both
# tools read the shared data set with identical libraries.
PANDAS_VERSION="2.3.3"
PYARROW_VERSION="22.0.0"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${here}/.venv-evidently"
stamp="${venv}/.evidently-${EVIDENTLY_VERSION}-pandas-${PANDAS_VERSION}-pyarrow-${PYARROW_VERSION}"
python_bin="${PYTHON:-python3}"

# The repository's .gitignore lists .venv-anchors only; a "*" .gitignore inside the
# virtualenv keeps it out of git without touching the shared file.
ignore_venv() { [[ -f "${venv}/.gitignore" ]] || printf '*\n' > "${venv}/.gitignore"; }

if [[ -z "${FORCE:-}" && -f "${stamp}" && -x "${venv}/bin/python" ]]; then
    ignore_venv
    echo "evidently: evidently==${EVIDENTLY_VERSION} already installed in ${venv}"
    exit 0
fi

if [[ ! -x "${venv}/bin/python" ]]; then
    echo "evidently: creating ${venv}"
    "${python_bin}" -m venv "${venv}"
fi
ignore_venv

# A stale stamp from another version must not survive a partial upgrade.
rm -f "${venv}"/.evidently-*

echo "evidently: installing evidently==${EVIDENTLY_VERSION} pandas==${PANDAS_VERSION}" \
    "pyarrow==${PYARROW_VERSION} (this takes a few minutes the first time)"
"${venv}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "evidently==${EVIDENTLY_VERSION}" \
    "pandas==${PANDAS_VERSION}" \
    "pyarrow==${PYARROW_VERSION}"

installed="$("${venv}/bin/python" -c '
import evidently, pandas, pyarrow
print(evidently.__version__, pandas.__version__, pyarrow.__version__)
')"
expected="${EVIDENTLY_VERSION} ${PANDAS_VERSION} ${PYARROW_VERSION}"
if [[ "${installed}" != "${expected}" ]]; then
    echo "evidently: expected evidently/pandas/pyarrow ${expected}, got ${installed}" >&2
    exit 1
fi
touch "${stamp}"
echo "evidently: evidently==${EVIDENTLY_VERSION} (pandas ${PANDAS_VERSION}," \
    "pyarrow ${PYARROW_VERSION}) ready in ${venv}"
