#!/usr/bin/env bash
# Create benchmarks/.venv-feast with the pinned Feast that bench_features.py compares
# loopml's feature store against: the local provider, the file and DuckDB offline stores,
# and the SQLite and Redis online stores. Feast gets its own virtualenv because it pins its
# own pandas, pyarrow, SQLAlchemy and pydantic ranges, which must never touch the project's.
# pandas and pyarrow are pinned to the versions the project's environment has, so both tools
# read the shared Parquet files with the same libraries.
# Idempotent: a stamp file records what was installed, so a second run returns at once.
# The install is given at most FEAST_INSTALL_TIMEOUT seconds (default 600); when it fails
# the script exits non-zero and the benchmark reports loopml's numbers alone (and says so).
#
# Usage: bash benchmarks/setup_feast.sh          (from the repository root or anywhere)
#        FORCE=1 bash benchmarks/setup_feast.sh  (reinstall)
set -euo pipefail

FEAST_VERSION="0.67.0"
PANDAS_VERSION="2.3.3"
PYARROW_VERSION="22.0.0"
INSTALL_TIMEOUT="${FEAST_INSTALL_TIMEOUT:-600}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${here}/.venv-feast"
stamp="${venv}/.feast-${FEAST_VERSION}-pandas-${PANDAS_VERSION}-pyarrow-${PYARROW_VERSION}"
python_bin="${PYTHON:-python3}"

# A "*" .gitignore inside the virtualenv keeps it out of git without touching the shared file.
ignore_venv() { [[ -f "${venv}/.gitignore" ]] || printf '*\n' > "${venv}/.gitignore"; }

if [[ -z "${FORCE:-}" && -f "${stamp}" && -x "${venv}/bin/python" ]]; then
    ignore_venv
    echo "feast: feast==${FEAST_VERSION} already installed in ${venv}"
    exit 0
fi

if [[ ! -x "${venv}/bin/python" ]]; then
    echo "feast: creating ${venv}"
    "${python_bin}" -m venv "${venv}"
fi
ignore_venv

# A stale stamp from another version must not survive a partial upgrade.
rm -f "${venv}"/.feast-*

echo "feast: installing feast[redis,duckdb]==${FEAST_VERSION} pandas==${PANDAS_VERSION}" \
    "pyarrow==${PYARROW_VERSION} (at most ${INSTALL_TIMEOUT} s; a few minutes the first time)"
timeout "${INSTALL_TIMEOUT}" "${venv}/bin/python" -m pip install --quiet \
    --disable-pip-version-check \
    "feast[redis,duckdb]==${FEAST_VERSION}" \
    "pandas==${PANDAS_VERSION}" \
    "pyarrow==${PYARROW_VERSION}" \
    "psutil"

installed="$("${venv}/bin/python" -c '
import feast, pandas, pyarrow
print(feast.__version__, pandas.__version__, pyarrow.__version__)
')"
expected="${FEAST_VERSION} ${PANDAS_VERSION} ${PYARROW_VERSION}"
if [[ "${installed}" != "${expected}" ]]; then
    echo "feast: expected feast/pandas/pyarrow ${expected}, got ${installed}" >&2
    exit 1
fi
touch "${stamp}"
echo "feast: feast==${FEAST_VERSION} (pandas ${PANDAS_VERSION}, pyarrow ${PYARROW_VERSION})" \
    "ready in ${venv}"
