#!/usr/bin/env bash
# Create benchmarks/.venv-zenml with the pinned ZenML that bench_pipelines.py compares
# loopml's pipelines against. ZenML gets its own virtualenv because it pins a long list of
# dependencies (its own SQLAlchemy, pydantic, ...) that must never touch the project's.
# Idempotent: a stamp file records what was installed, so a second run returns at once.
# The install is given at most ZENML_INSTALL_TIMEOUT seconds (default 300); when it fails
# or times out the script exits non-zero and the benchmark falls back to a plain-Python
# anchor (and says so).
#
# Usage: bash benchmarks/setup_zenml.sh          (from the repository root or anywhere)
#        FORCE=1 bash benchmarks/setup_zenml.sh  (reinstall)
set -euo pipefail

ZENML_VERSION="0.98.0"
INSTALL_TIMEOUT="${ZENML_INSTALL_TIMEOUT:-300}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${here}/.venv-zenml"
stamp="${venv}/.zenml-${ZENML_VERSION}"
python_bin="${PYTHON:-python3}"

# The repository's .gitignore lists .venv-anchors only; a "*" .gitignore inside the
# virtualenv keeps it out of git without touching the shared file.
ignore_venv() { [[ -f "${venv}/.gitignore" ]] || printf '*\n' > "${venv}/.gitignore"; }

if [[ -z "${FORCE:-}" && -f "${stamp}" && -x "${venv}/bin/python" ]]; then
    ignore_venv
    echo "zenml: zenml==${ZENML_VERSION} already installed in ${venv}"
    exit 0
fi

if [[ ! -x "${venv}/bin/python" ]]; then
    echo "zenml: creating ${venv}"
    "${python_bin}" -m venv "${venv}"
fi
ignore_venv

# A stale stamp from another version must not survive a partial upgrade.
rm -f "${venv}"/.zenml-*

echo "zenml: installing zenml[local]==${ZENML_VERSION} (at most ${INSTALL_TIMEOUT} s)"
timeout "${INSTALL_TIMEOUT}" "${venv}/bin/python" -m pip install --quiet \
    --disable-pip-version-check "zenml[local]==${ZENML_VERSION}"

installed="$("${venv}/bin/python" -c 'import zenml; print(zenml.__version__)')"
if [[ "${installed}" != "${ZENML_VERSION}" ]]; then
    echo "zenml: expected zenml ${ZENML_VERSION}, got ${installed}" >&2
    exit 1
fi
touch "${stamp}"
echo "zenml: zenml==${installed} ready in ${venv}"
