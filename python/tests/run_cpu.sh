#!/usr/bin/env bash
# The Python package's CPU tier: builds and installs the package (pip, scikit-build-core, the
# project's CMake) into a folder of its own, then runs pytest over python/tests (the GPU tier in
# python/tests/gpu skips itself without torch or a GPU). Rebuilds only when a source changed.
#   EPCOMM_PY_BUILD_DIR  where to build and install (default: build-py/ at the repository root)
# Needs nanobind, scikit-build-core, pytest and numpy for python3 (.ci/run installs them); without
# them it says so and exits 0 (machines that cannot reach PyPI still run the C++ tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${EPCOMM_PY_BUILD_DIR:-$root/build-py}
python=${PYTHON:-python3}

if ! "$python" -c "import nanobind, scikit_build_core, pytest, numpy" 2>/dev/null; then
  echo "python tests: skipped (needs: $python -m pip install nanobind scikit-build-core pytest numpy)"
  exit 0
fi

stamp="$dir/site/.installed"
changed=$(find "$root/python" "$root/src" "$root/include" "$root/CMakeLists.txt" "$root/pyproject.toml" \
  -newer "$stamp" -type f -not -path '*/__pycache__/*' -print -quit 2>/dev/null || echo missing)
if [ ! -f "$stamp" ] || [ -n "$changed" ]; then
  echo "python tests: building the package into $dir/site"
  export PATH="$PATH:/usr/local/cuda/bin"
  launcher=()
  if command -v ccache >/dev/null 2>&1; then
    launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
  fi
  rm -rf "$dir/site"
  CMAKE_ARGS="${launcher[*]} ${CMAKE_ARGS:-}" CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$python" -m pip install --quiet --no-build-isolation --no-deps --target "$dir/site" \
    -C build-dir="$dir/skbuild" "$root"
  touch "$stamp"
fi

# Run from outside the source tree so `import epcomm` finds the installed package, not python/.
cd "$dir"
set +e
PYTHONPATH="$dir/site${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pytest -q -p no:cacheprovider "$root/python/tests" "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then  # pytest: no test collected (a filter matched nothing)
  echo "python tests: none collected"
  exit 0
fi
exit "$rc"
