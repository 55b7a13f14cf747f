#!/usr/bin/env bash
# Kernel tests under AddressSanitizer, in a throw-away clone (never in the
# shared tree: other engineers' tests would load the instrumented kernels).
#
#   tests/memory/asan.sh [CLONE_DIR]        default /tmp/nnkit-asan
#
# Clones the committed HEAD of this checkout, builds every kernel family
# (FAMILIES in setup.py) in place, at the best ISA level this CPU runs
# (NNKIT_BUILD_LEVELS=best), with -fsanitize=address using the active
# Python's numpy/scipy/cython (nothing is installed anywhere), and runs, with
# libasan preloaded and the clone first on sys.path:
#   every kernel family's tests (kernels, rnn, conv, norms, optimizers, trace)
#   and the fuzz slice (hostile shapes/layouts/dtypes straight at the kernels).
# Any invalid read or write aborts the run with ASan's report (halt_on_error).
# Leak detection is off: CPython and NumPy keep allocations alive at exit.
set -euo pipefail
src=$(git -C "$(dirname "$0")" rev-parse --show-toplevel)
dir=${1:-/tmp/nnkit-asan}
asan_lib=$(gcc -print-file-name=libasan.so)
[ -f "$asan_lib" ] || { echo "libasan not found (gcc -print-file-name=libasan.so)"; exit 1; }
rm -rf "$dir"
git clone -q "$src" "$dir"
cd "$dir"
echo "== ASan build of $(git log --oneline -1)"
CFLAGS="-fsanitize=address -fno-omit-frame-pointer" LDFLAGS="-fsanitize=address" \
  NNKIT_BUILD_LEVELS=best python setup.py -q build_ext --inplace >/dev/null
PYTHONPATH="$dir" LD_PRELOAD="$asan_lib" ASAN_OPTIONS=detect_leaks=0 python -c "
import pkgutil, nnkit._kernels as k, nnkit._kernels.dense as d
assert d.__file__.startswith('$dir'), d.__file__      # the clone's kernels, not the shared tree's
print('kernels:', sorted(m.name for m in pkgutil.iter_modules(k.__path__)), 'from', '$dir')"
tests=(tests/kernels tests/dense tests/softmax tests/batchnorm tests/whitening tests/layers
       tests/rnn tests/conv tests/norms tests/training/test_optim_numpy.py
       tests/walkthroughs/test_trace_time.py tests/fuzz tests/memory/test_threads.py)
existing=()
for t in "${tests[@]}"; do [ -e "$t" ] && existing+=("$t"); done
echo "== pytest under ASan: ${existing[*]}"
start=$(date +%s)
PYTHONPATH="$dir" ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 \
  LD_PRELOAD="$asan_lib" NNKIT_FUZZ_EXAMPLES="${NNKIT_FUZZ_EXAMPLES:-15}" \
  python -m pytest -q -p no:cacheprovider "${existing[@]}"
echo "ASan: no invalid read or write ($(( $(date +%s) - start )) s)"
