#!/usr/bin/env bash
# Run the serial suite again under each lower SIMD level this machine can fall back to, so that a
# test which only holds for one machine's floating-point last bits fails here, not elsewhere.
#
#   scripts/simd-pytest.sh VENV [pytest args...]
#
# NumPy's dispatched kernels are switched off with NPY_DISABLE_CPU_FEATURES and OpenBLAS's with
# OPENBLAS_CORETYPE: one run without the AVX-512 groups (Haswell kernels), one without AVX2 as well
# (Sandybridge kernels), each only where the machine has what it takes away.
set -euo pipefail
venv=${1:?usage: simd-pytest.sh VENV [pytest args]}
shift
py="$venv/bin/python"

# "NAME|DISABLE|CORETYPE" per level below this machine's best, from NumPy's own feature table.
levels=$("$py" - <<'PYEOF'
from numpy._core import _multiarray_umath as m  # NumPy 2; NumPy 1.x keeps it in numpy.core
found = [f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)]
avx512 = [f for f in found if f.startswith(("AVX512", "X86_V4"))]
avx2 = [f for f in found if f in ("X86_V3", "AVX2", "FMA3")]
if avx512:
    print(f"no-AVX512|{' '.join(avx512)}|Haswell")
if avx2:
    print(f"no-AVX2|{' '.join(avx512 + avx2)}|Sandybridge")
PYEOF
)
if [ -z "$levels" ]; then
    echo "simd-pytest: this CPU dispatches nothing above NumPy's baseline: no lower level to run"
    exit 0
fi
status=0
while IFS='|' read -r name disable coretype; do
    echo "== $name: NPY_DISABLE_CPU_FEATURES=\"$disable\" OPENBLAS_CORETYPE=$coretype pytest"
    NPY_DISABLE_CPU_FEATURES="$disable" OPENBLAS_CORETYPE="$coretype" \
        timeout -k 15 "${SIMD_TEST_TIMEOUT:-1200}" "$py" -m pytest -q -p no:cacheprovider "$@" || status=$?
done <<< "$levels"
exit $status
