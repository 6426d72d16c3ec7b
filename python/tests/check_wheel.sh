#!/usr/bin/env bash
# The wheels `pip wheel .` builds, and what a wheel may link (issue 20):
# - under CPython 3.12, one wheel tagged cp312-abi3 (Python's stable ABI) holding epcomm/_C.abi3.so;
# - that same wheel installs into a fresh CPython 3.13 virtual environment, where
#   `import epcomm, epcomm.deep_ep` works without PyTorch and the CPU pytest tier passes;
# - its extension and libepcomm need no PyTorch library (libtorch*, libc10*) and no libpython, and
#   leave no PyTorch symbol (c10::, at::, torch::) undefined;
# - under an interpreter older than 3.12 (python3 here, when it is), a wheel for that Python only
#   (cp3X-cp3X: nanobind's stable ABI starts at 3.12).
# Every wheel is built with pip's build isolation (what `pip wheel .` does for a user), so pip fetches
# scikit-build-core and nanobind; ccache (when present) reuses the C++/CUDA objects of earlier builds.
#   PYTHON312, PYTHON313  the interpreters (default: python3.12 / python3.13 when they run, else pyenv's)
#   EPCOMM_PY_BUILD_DIR   where to build (default: build-py/ at the repository root)
# Without a 3.12 or a 3.13 interpreter it says so and exits 0.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
dir=${EPCOMM_PY_BUILD_DIR:-$root/build-py}

# The first of python<version> on PATH, then pyenv's, that runs (a pyenv shim of a version that is
# not selected exists but fails).
find_python() {
  local candidate
  for candidate in "python$1" "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1"; do
    if "$candidate" -c "" >/dev/null 2>&1; then
      echo "$candidate"
      return
    fi
  done
}
py312=${PYTHON312:-$(find_python 3.12)}
py313=${PYTHON313:-$(find_python 3.13)}
if [ -z "$py312" ] || [ -z "$py313" ]; then
  echo "wheel check: skipped (needs CPython 3.12 and 3.13; set PYTHON312 and PYTHON313)"
  exit 0
fi

fail() {
  echo "wheel check: FAILED: $*" >&2
  exit 1
}

# build_wheel PYTHON NAME: builds into $dir/wheels-NAME and prints the wheel's path.
build_wheel() {
  local out="$dir/wheels-$2" launcher=""
  command -v ccache >/dev/null 2>&1 &&
    launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache"
  rm -rf "$out"
  PATH="$PATH:/usr/local/cuda/bin" CMAKE_ARGS="$launcher ${CMAKE_ARGS:-}" \
    CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
    "$1" -m pip wheel --quiet --no-deps -w "$out" -C build-dir="$dir/wheel-build-$2" "$root" >&2
  local wheels=("$out"/epcomm-*.whl)
  if [ ${#wheels[@]} -ne 1 ] || [ ! -f "${wheels[0]}" ]; then
    fail "$1: expected one wheel in $out, got: ${wheels[*]}"
  fi
  echo "${wheels[0]}"
}

# check_linkage FILE: no PyTorch or libpython among its needed libraries, no PyTorch symbol undefined.
check_linkage() {
  local needed
  needed=$(readelf -d "$1" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
  echo "  $(basename "$1") needs: $needed"
  if grep -Eq 'libtorch|libc10|libpython' <<<"$needed"; then fail "$(basename "$1") links $needed"; fi
  if nm -D --undefined-only "$1" | c++filt | grep -Eq '(c10|at|torch)::'; then
    fail "$(basename "$1") leaves PyTorch symbols undefined"
  fi
}

echo "wheel check: $("$py312" --version) builds the wheel"
wheel=$(build_wheel "$py312" cp312)
echo "  $(basename "$wheel")"
[[ "$(basename "$wheel")" == epcomm-*-cp312-abi3-linux_x86_64.whl ]] || fail "expected a cp312-abi3 wheel"

unpacked="$dir/wheel-unpacked"
rm -rf "$unpacked"
"$py312" -m zipfile -e "$wheel" "$unpacked"
for f in epcomm/_C.abi3.so epcomm/libepcomm.so.0 epcomm/deep_ep/__init__.py; do
  [ -f "$unpacked/$f" ] || fail "the wheel holds no $f"
done
check_linkage "$unpacked/epcomm/_C.abi3.so"
check_linkage "$unpacked/epcomm/libepcomm.so.0"

echo "wheel check: the same wheel in a fresh $("$py313" --version) environment"
venv="$dir/venv-cp313"
rm -rf "$venv"
"$py313" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel" pytest numpy
cd "$dir"  # outside the source tree: `import epcomm` finds the installed wheel, not python/
"$venv/bin/python" -c "
import sys, epcomm, epcomm.deep_ep
assert epcomm._C.__file__.endswith('_C.abi3.so'), epcomm._C.__file__
assert 'torch' not in sys.modules
print('  import epcomm, epcomm.deep_ep:', sys.version.split()[0], epcomm._C.__file__)"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/python/tests"

default=${PYTHON:-python3}
if "$default" -c "import sys; sys.exit(sys.version_info >= (3, 12))" 2>/dev/null; then
  tag=$("$default" -c "import sys; print('cp%d%d' % sys.version_info[:2])")
  echo "wheel check: $("$default" --version) builds a wheel of its own"
  wheel=$(build_wheel "$default" "$tag")
  echo "  $(basename "$wheel")"
  [[ "$(basename "$wheel")" == epcomm-*-$tag-$tag-linux_x86_64.whl ]] || fail "expected a $tag-$tag wheel"
fi
echo "wheel check: passed"
