#!/usr/bin/env bash
# One full session on a lent GPU machine: build, the GPU test tier, then the benchmark. Logs and
# result files go to $OUT (the device tool brings that folder back). Usage:
#   tools/device_session.sh [tests] [examples] [probe] [drain] [entry] [bench WORKLOAD...] [shared N PROGRAM...] [kernels]
#                           [kernels-cold] [kernels-ll] [kernels-lines] [ll-md] [python] [md] [bench-md] [faults]
#                           [soak] [pack]
#   tests: the GPU tier (ctest -L gpu) with EPCOMM_REQUIRE_GPU=1: a skipped test fails the step.
#   EPCOMM_GPU_TESTS=<regex> runs only the GPU tests whose names match (default: all).
#   EPCOMM_BENCH_ARGS: more epcomm-bench flags for the bench step, e.g. "--sms 24 --ce-chunks 2,4,8".
#   shared N PROGRAM...: GPU test programs (test_ll, test_ht, ...) on N ranks that share the local
#   GPUs (EPCOMM_TEST_SHARE_GPUS=1): the ranks' kernels take turns, so this checks correctness of
#   N-rank runs on fewer GPUs, never speed. GTEST_FILTER picks cases. EPCOMM_REQUIRE_GPU=1 there too.
#   md: the multi-domain GPU tests (gpu_test_md; needs EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON) on
#   ranks sharing the GPUs, split by EPCOMM_RANKS_PER_DOMAIN: 2 ranks as 2x1, 4 as 2x2 and 4x1, and
#   8 as 2x4 and 4x2 (a subset of cases: EPCOMM_MD_FILTER_8, default below). EPCOMM_MD_SHAPES picks
#   some (ranks:per_domain, e.g. "2:1 4:2"), to stay within one command's time; GTEST_FILTER the cases.
#   bench-md: epcomm-bench on a multi-domain Buffer (needs -DEPCOMM_WITH_NVSHMEM=ON): 4 ranks sharing
#   the GPUs as 2 domains of 2 (EPCOMM_BENCH_MD_G), 24 SMs, a small ht shape and ht-dsv3's shape cut
#   to 512 tokens; rows checked against the CPU reference, not timed (ranks share a GPU), with the
#   bytes through the NIC and over NVLink; JSON in $OUT/bench_md_*.json.
#   examples: every numbered example, one process per local GPU.
#   drain: tools/probes/drain_probe (one GPU, ~10 s): what a short kernel's event time holds beside
#   its blocks' span, by its last writes (device, mapped host, a system-scope release); $OUT/drain_probe.txt.
#   entry: tools/probes/entry_load_probe (one GPU, ~5 s): how long a load issued at a kernel's entry
#   takes to come back, by where its line is and what the grid does beside it; $OUT/entry_load_probe.txt.
#   kernels: ncu (real clocks) over a few whole 1-rank ht-dsv3 dispatch calls: each epcomm kernel's
#   duration, how long its busiest SM ran it, its shared-memory carveout (EPCOMM_NCU_KERNELS,
#   EPCOMM_NCU_SKIP, EPCOMM_NCU_COUNT choose the kernels and launches).
#   kernels-cold: as kernels, with ncu's cache control on (every cache flushed before each profiled
#   launch), to tell what cold caches cost the short kernels (layout, notify).
#   kernels-ll: ncu (real clocks) over 1-rank low-latency launches of EPCOMM_NCU_LL_WORKLOADS
#   (default "ll-dsv3 ll-small"): each kernel's duration, busiest-SM time, DRAM and L2 bytes (to
#   check the byte count of bench/NOTES.md section 11). EPCOMM_NCU_LL_SKIP / _COUNT choose launches.
#   kernels-lines: ncu warp-state sampling per source line (every sample, real clocks) of the
#   preamble kernels (layout, notify, and the two in one launch) in 1-rank ht-dsv3 calls and of the low-latency kernels in 1-rank
#   ll-dsv3 calls: $OUT/lines-<name>.ncu-rep and its source page as CSV, $OUT/lines-<name>.csv (CUDA
#   lines with their samples; the build has -lineinfo; tools/probes/ncu_lines.py sums them per line)
#   and the sections in words
#   ($OUT/lines-<name>-details.txt: warp states per kernel), for where inside a kernel its time goes.
#   EPCOMM_NCU_LINES_COUNT launches of each kernel (default 4), after EPCOMM_NCU_SKIP (12).
#   ll-md: low-latency mode across NVLink domains on ranks sharing the GPUs (needs
#   EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON): the cases of gpu_test_ll_md and gpu_test_ll_nvshmem (4 ranks
#   as 2 domains of 2) and rank masking's low-latency cases (3 domains of 1), one case at a time, each
#   under EPCOMM_LL_MD_CASE_S (60), the step under EPCOMM_LL_MD_BUDGET_S (540); log in $OUT/ll_md.log.
#   python: the Python package on this machine's PyTorch (docs/python.md): installed with pip from the
#   tree (no build isolation: nothing can be fetched here, the image has nanobind and scikit-build-core)
#   or from a carried wheel (EPCOMM_PY_WHEEL=path), into build-py/gpu-site; then its CPU tier, its GPU
#   tier (python/tests/gpu: 2 and 4 ranks sharing the GPUs, gloo; a skip fails the step, except of a
#   test that needs two GPUs;
#   EPCOMM_PY_TESTS=<pytest -k expression> picks tests), epcomm-bench's ll-dsv3 and ll-small rows on
#   one rank, and python/tests/gpu/overhead.py (the same calls from Python; then EPCOMM_PY_PROFILE (200) eager calls of each under cProfile) beside them in
#   $OUT/python_overhead.json. EPCOMM_PY_PARTS picks among "cpu gpu overhead" (default: all three),
#   e.g. to split them over two calls. Writes more files than the device tool brings back: end with pack.
#   faults: epcomm-faults (the fault matrix of issue 22) on 2 ranks sharing the GPU(s): $OUT/faults.json,
#   $OUT/faults.txt (the table), each case's rank logs under $OUT/faults/<case>/. EPCOMM_FAULTS_CASES
#   picks cases (comma-separated name parts, e.g. "notify,ll_"), EPCOMM_FAULTS_TIMEOUT_MS the timeout
#   (default 3000), EPCOMM_FAULTS_RANKS_PER_DOMAIN=1 the two ranks as two NVLink domains (every phase on
#   its multi-domain path; needs EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON). A failed case, or a skip
#   (EPCOMM_REQUIRE_GPU=1), fails the step.
#   soak: the soak of issue 22 (tools/faults/soak.cpp) on 2 ranks sharing the GPU(s): $OUT/soak.json and
#   $OUT/soak.log. EPCOMM_SOAK_LL_PAIRS / EPCOMM_SOAK_HT_PAIRS / EPCOMM_SOAK_CHECK_EVERY set the counts
#   (default here 20000 / 2000 / 200, to fit one 10-minute call; the issue's full counts are 100000 /
#   10000). Then $OUT/faults_table.md from whichever of the two JSONs exist.
#   bench-base WORKLOAD...: the bench step's runs (same EPCOMM_BENCH_ARGS) by a baseline tree: the
#   sources in EPCOMM_BASE_SRC (e.g. `git archive <commit> | tar x -C .dev/base`, carried), built into
#   build-base with the same options, its commit named by EPCOMM_BASE_COMMIT; results in
#   $OUT/base-<workload>.{json,txt}. Beside the bench
#   step in the same call, it gives a change's before and after on the same card and clocks.
#   ab ROUNDS SPEC...: this tree against the baseline tree of bench-base (EPCOMM_BASE_SRC, built the
#   same way), alternated: each round runs every SPEC ("WORKLOAD" or "WORKLOAD:ARGS", e.g.
#   "ht-dsv3:--sms 24") by this build, then by the baseline, so that both see the same clocks and
#   neighbours; $OUT/<tag><round>-{new,base}-<workload>.{json,txt} (tag: EPCOMM_AB_TAG, default ab)
#   and tools/bench/ab_table.py's table of each pair. EPCOMM_HT_TRACE=1 or EPCOMM_LL_TRACE=1 in
#   the step's environment traces both sides (give such runs their own tag).
#   pack: everything written to $OUT so far goes into $OUT/out.tgz (the device tool brings back
#   only a few files).
# GoogleTest sources may be carried in .gtest (the GPU machine has no libgtest-dev).
# The machine's copy of .git may name an older commit than the tree it runs: give the true one as
# EPCOMM_COMMIT=<hash> (epcomm-bench writes it into its results).
set -uo pipefail
export NCCL_NVLS_ENABLE=0 NVSHMEM_DISABLE_NVLS=1 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_REMOTE_TRANSPORT=none
OUT=${OUT:-/tmp/epcomm-out}
mkdir -p "$OUT"
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build-gpu"
cd "$root" || exit 1
{ nvidia-smi -L; nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,compute_mode --format=csv; nvidia-smi topo -m; } > "$OUT/machine.txt" 2>&1
head -3 "$OUT/machine.txt"
gtest=()
[ -f "$root/.gtest/CMakeLists.txt" ] && gtest=(-DEPCOMM_GTEST_SOURCE_DIR="$root/.gtest")
# EPCOMM_CMAKE_ARGS passes more options, e.g. -DEPCOMM_WITH_NVSHMEM=ON (found from the Python package).
# shellcheck disable=SC2086
if ! cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "${gtest[@]}" ${EPCOMM_CMAKE_ARGS:-} > "$OUT/build.log" 2>&1 ||
   ! cmake --build "$build" -j "$(nproc)" >> "$OUT/build.log" 2>&1; then
  echo "build failed"; grep -E "error|Error" "$OUT/build.log" | head -40; exit 1
fi
echo "build ok"
gpus=$(nvidia-smi -L | grep -c '^GPU')
py_part() { case " ${EPCOMM_PY_PARTS:-cpu gpu overhead} " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
is_step() { case "$1" in tests | md | bench-md | examples | probe | drain | entry | bench | bench-base | ab | shared | kernels | kernels-cold | kernels-ll | kernels-lines | ll-md | python | faults | soak | pack) return 0 ;; *) return 1 ;; esac; }
# The README's markdown of the fault and soak JSONs written so far.
faults_table() {
  local args=()
  [ -f "$OUT/faults.json" ] && args+=(--faults "$OUT/faults.json")
  [ -f "$OUT/soak.json" ] && args+=(--soak "$OUT/soak.json")
  [ ${#args[@]} -gt 0 ] && python3 "$root/tools/faults/faults_table.py" "${args[@]}" > "$OUT/faults_table.md"
}
# ncu at real clocks over the launches of kernels matching $2 in a 1-rank epcomm-bench run (its
# flags after $5), cache control $1, launches skipped/counted $3/$4; output in $OUT/<$5>.txt.
ncu_bench() {
  local cache=$1 kernels=$2 skip=$3 count=$4 name=$5; shift 5
  local ncu; ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
  timeout 300 "$ncu" --target-processes all --clock-control none --cache-control "$cache" -k regex:"$kernels" \
    --launch-skip "$skip" --launch-count "$count" \
    --metrics gpu__time_duration.sum,gpc__cycles_elapsed.max,sm__cycles_active.max,launch__shared_mem_config_size,launch__grid_size,launch__block_size${EPCOMM_NCU_METRICS:+,$EPCOMM_NCU_METRICS} \
    "$build/tools/epcomm-run" -n 1 --timeout 280 "$build/tools/bench/epcomm-bench" "$@" \
    --warmup 5 --iters 5 --no-check > "$OUT/$name.txt" 2>&1
  rc=$?; [ $rc -ne 0 ] && status=$rc
  echo "== $name (rc $rc)"
  grep -E "^  [^ ].*\(.*\)x\(|gpu__time_duration|cycles_elapsed|cycles_active|shared_mem_config|bytes" "$OUT/$name.txt" |
    sed 's/, Context.*//' | cut -c1-110 | tail -72
}
# One epcomm-bench run of workload $3 by the build in $1 (EPCOMM_BENCH_ARGS added), into
# $OUT/$2$3.json and .txt.
bench_workload() {
  local dir=$1 name=$2$3
  # shellcheck disable=SC2086
  "$dir/tools/epcomm-run" -n "$gpus" --timeout 400 "$dir/tools/bench/epcomm-bench" --workload "$3" \
    --json "$OUT/$name.json" ${EPCOMM_BENCH_ARGS:-} > "$OUT/$name.txt" 2>&1
  rc=$?; [ $rc -ne 0 ] && status=$rc
  echo "== $name (rc $rc)"; [ -n "${EPCOMM_BENCH_QUIET:-}" ] || grep -v "^\[rank 1\]" "$OUT/$name.txt" | tail -30
}
# The baseline tree (EPCOMM_BASE_SRC) built into build-base, bench and launcher only; 1 on failure.
build_base() {
  base="$root/build-base"
  if [ -z "${EPCOMM_BASE_SRC:-}" ] || [ ! -f "$EPCOMM_BASE_SRC/CMakeLists.txt" ]; then
    echo "baseline: EPCOMM_BASE_SRC names no source tree"; return 1
  fi
  # shellcheck disable=SC2086
  if ! cmake -S "$EPCOMM_BASE_SRC" -B "$base" -G Ninja -DCMAKE_BUILD_TYPE=Release "${gtest[@]}" ${EPCOMM_CMAKE_ARGS:-} \
      > "$OUT/base_build.log" 2>&1 || ! cmake --build "$base" -j "$(nproc)" --target epcomm-bench epcomm-run >> "$OUT/base_build.log" 2>&1; then
    echo "baseline: build failed"; grep -E "error|Error" "$OUT/base_build.log" | head -20; return 1
  fi
}
status=0
while [ $# -gt 0 ]; do
  case "$1" in
    tests)
      shift
      # A skip is a failure here (EPCOMM_REQUIRE_GPU=1: a program or case that would skip exits 1),
      # so "100% tests passed" means every test ran. With fewer GPUs than the tests' ranks, the
      # ranks share the GPUs (correctness only, as in the shared step).
      ranks=$(sed -n 's/^EPCOMM_GPU_TEST_RANKS:STRING=//p' "$build/CMakeCache.txt"); ranks=${ranks:-2}
      share=()
      [ "$gpus" -lt "$ranks" ] && share=(EPCOMM_TEST_SHARE_GPUS=1 "EPCOMM_TIMEOUT_MS=${EPCOMM_TIMEOUT_MS:-120000}")
      [ ${#share[@]} -gt 0 ] && echo "tests: $ranks ranks share $gpus GPU(s) (correctness only)"
      env EPCOMM_REQUIRE_GPU=1 "${share[@]}" ctest --test-dir "$build" -L gpu -R "${EPCOMM_GPU_TESTS:-.}" \
        --output-on-failure > "$OUT/gpu_tests.log" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      grep -E "tests passed|Passed|Failed|\*\*\*|FAILED|Timeout|did not run" "$OUT/gpu_tests.log" | grep -v "^\[rank.*OK \]" | tail -40
      if grep -qE "\*\*\*Skipped|did not run" "$OUT/gpu_tests.log"; then
        echo "tests: some tests were skipped, which fails this step"; status=1
      fi
      ;;
    md)
      shift
      if [ ! -x "$build/tests/gpu_test_md" ]; then
        echo "md: gpu_test_md was not built (EPCOMM_CMAKE_ARGS=-DEPCOMM_WITH_NVSHMEM=ON)"; status=1; continue
      fi
      for shape in ${EPCOMM_MD_SHAPES:-2:1 4:2 4:1 8:4 8:2}; do
        n=${shape%%:*}; g=${shape##*:}
        filter=${GTEST_FILTER:-*}
        [ "$n" -eq 8 ] && [ -z "${GTEST_FILTER:-}" ] && filter=${EPCOMM_MD_FILTER_8:-Md.Bf16:Md.Fp8ColumnMajorScales:Md.WorstCaseBf16:Md.RankWithNoTokens:MdPeerGone.*}
        start=$(date +%s)
        EPCOMM_REQUIRE_GPU=1 EPCOMM_TEST_SHARE_GPUS=1 EPCOMM_RANKS_PER_DOMAIN=$g GTEST_FILTER="$filter" \
          EPCOMM_TIMEOUT_MS=${EPCOMM_TIMEOUT_MS:-120000} "$build/tools/epcomm-run" -n "$n" \
          --timeout "${EPCOMM_SHARED_TIMEOUT_S:-590}" "$build/tests/gpu_test_md" > "$OUT/md_${n}_g$g.log" 2>&1
        rc=$?; [ $rc -ne 0 ] && status=$rc
        echo "== md: $n ranks, $g per domain (rc $rc, $(( $(date +%s) - start )) s)"
        grep -E "PASSED|FAILED|skipped|Failure|error" "$OUT/md_${n}_g$g.log" | grep -v "^\[rank [1-9]" | tail -20
      done
      ;;
    bench-md)
      shift
      for shape in "small 256 2048 4 16" "dsv3-t512 512 7168 8 256"; do
        read -r name t h k e <<< "$shape"
        start=$(date +%s)
        EPCOMM_REQUIRE_GPU=1 EPCOMM_TIMEOUT_MS=${EPCOMM_TIMEOUT_MS:-120000} "$build/tools/epcomm-run" -n 4 \
          --timeout "${EPCOMM_SHARED_TIMEOUT_S:-400}" "$build/tools/bench/epcomm-bench" \
          --ranks-per-domain "${EPCOMM_BENCH_MD_G:-2}" --sms 24 --tokens "$t" --hidden "$h" --topk "$k" \
          --experts "$e" --json "$OUT/bench_md_$name.json" > "$OUT/bench_md_$name.txt" 2>&1
        rc=$?; [ $rc -ne 0 ] && status=$rc
        echo "== bench-md $name: 4 ranks, ${EPCOMM_BENCH_MD_G:-2} per domain (rc $rc, $(( $(date +%s) - start )) s)"
        grep -v "^\[rank [1-9]\]" "$OUT/bench_md_$name.txt" | tail -24
      done
      ;;
    examples)
      shift
      for ex in "$build"/examples/[0-9][0-9]_*; do
        [ -x "$ex" ] || continue
        name=$(basename "$ex")
        "$build/tools/epcomm-run" -n "$gpus" --timeout 120 "$ex" > "$OUT/example_$name.log" 2>&1
        rc=$?; [ $rc -ne 0 ] && status=$rc
        echo "== example $name (rc $rc)"; tail -4 "$OUT/example_$name.log"
      done
      ;;
    probe)
      shift
      "$build/tools/nvlink_store_probe" > "$OUT/store_probe.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== store probe (rc $rc)"; tail -40 "$OUT/store_probe.txt"
      "$build/tools/nvlink_pull_probe" > "$OUT/pull_probe.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== pull probe (rc $rc)"; tail -30 "$OUT/pull_probe.txt"
      timeout 300 "$build/tools/local_copy_probe" > "$OUT/local_copy_probe.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== local copy probe (rc $rc)"; grep -A20 "who waits" "$OUT/local_copy_probe.txt" | cut -c1-150
      timeout 120 "$build/tools/copy_call_probe" > "$OUT/copy_call_probe.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== copy call probe (rc $rc)"; cat "$OUT/copy_call_probe.txt"
      ;;
    drain)
      shift
      timeout 60 "$build/tools/drain_probe" > "$OUT/drain_probe.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== drain probe (rc $rc)"; cat "$OUT/drain_probe.txt"
      ;;
    entry)
      shift
      timeout 60 "$build/tools/entry_load_probe" > "$OUT/entry_load_probe.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== entry load probe (rc $rc)"; cat "$OUT/entry_load_probe.txt"
      ;;
    ll-md)
      shift
      start=$(date +%s)
      # One process group per case, each under its own bound (EPCOMM_LL_MD_CASE_S), the whole step
      # under EPCOMM_LL_MD_BUDGET_S: a case that stalls is named and the others still run (at
      # 39577aa the whole program stalled unnamed; case by case at bbebea6 the first cases passed
      # in ~1 s each). EPCOMM_LOG=info names each collective step of a Buffer's construction; the
      # program's [ll progress] lines name each case's waits. Log: $OUT/ll_md.log.
      : > "$OUT/ll_md.log"
      for spec in "test_ll_md 4 2 Ll.*" "test_ll_nvshmem 4 2 Ll.*" "test_rank_mask_md 3 1 RankMask.LowLatency*"; do
        read -r prog n g filter <<< "$spec"
        cases=$(GTEST_FILTER="$filter" timeout 60 "$build/tools/epcomm-run" -n 1 --timeout 55 "$build/tests/gpu_$prog" \
          --gtest_list_tests 2>/dev/null | sed 's/^\[rank 0\] //' | awk '/^[A-Za-z]/ {suite=$1} /^  [A-Za-z]/ {print suite $1}')
        [ -n "$cases" ] || { echo "ll-md: no cases listed by gpu_$prog" | tee -a "$OUT/ll_md.log"; status=1; continue; }
        for c in $cases; do
          left=$(( ${EPCOMM_LL_MD_BUDGET_S:-540} - ($(date +%s) - start) ))
          if [ "$left" -lt 20 ]; then echo "ll-md: out of time before $prog $c" | tee -a "$OUT/ll_md.log"; status=1; break 2; fi
          bound=$(( left < ${EPCOMM_LL_MD_CASE_S:-60} ? left : ${EPCOMM_LL_MD_CASE_S:-60} ))
          t=$(date +%s)
          echo "=== $prog ($n ranks, $g per domain): $c" >> "$OUT/ll_md.log"
          EPCOMM_LOG=${EPCOMM_LOG:-info} EPCOMM_REQUIRE_GPU=1 EPCOMM_TEST_SHARE_GPUS=1 EPCOMM_RANKS_PER_DOMAIN=$g \
            EPCOMM_TIMEOUT_MS=${EPCOMM_TIMEOUT_MS:-30000} GTEST_FILTER="$c" timeout "$bound" \
            "$build/tools/epcomm-run" -n "$n" --timeout "$(( bound - 2 ))" "$build/tests/gpu_$prog" >> "$OUT/ll_md.log" 2>&1
          rc=$?; [ $rc -ne 0 ] && status=$rc
          echo "ll-md: $prog $c rc $rc, $(( $(date +%s) - t )) s" | tee -a "$OUT/ll_md.log"
        done
      done
      echo "== ll-md ($(( $(date +%s) - start )) s)"
      ;;
    bench)
      shift
      while [ $# -gt 0 ] && ! is_step "$1"; do bench_workload "$build" "" "$1"; shift; done
      ;;
    bench-base)
      shift
      workloads=()
      while [ $# -gt 0 ] && ! is_step "$1"; do workloads+=("$1"); shift; done
      build_base || { status=1; continue; }
      for w in "${workloads[@]}"; do EPCOMM_COMMIT=${EPCOMM_BASE_COMMIT:-baseline} bench_workload "$base" base- "$w"; done
      ;;
    ab)
      rounds=$2; shift 2
      specs=()
      while [ $# -gt 0 ] && ! is_step "$1"; do specs+=("$1"); shift; done
      build_base || { status=1; continue; }
      tag=${EPCOMM_AB_TAG:-ab}
      for r in $(seq 1 "$rounds"); do
        for spec in "${specs[@]}"; do
          w=${spec%%:*}; spec_args=""
          [ "$spec" != "$w" ] && spec_args=${spec#*:}
          EPCOMM_BENCH_QUIET=1 EPCOMM_BENCH_ARGS="$spec_args" bench_workload "$build" "$tag$r-new-" "$w"
          EPCOMM_BENCH_QUIET=1 EPCOMM_BENCH_ARGS="$spec_args" EPCOMM_COMMIT=${EPCOMM_BASE_COMMIT:-baseline} \
            bench_workload "$base" "$tag$r-base-" "$w"
          python3 "$root/tools/bench/ab_table.py" "$OUT/$tag$r-base-$w.json" "$OUT/$tag$r-new-$w.json" \
            > "$OUT/$tag$r-table-$w.txt" 2>&1
          rc=$?; [ $rc -ne 0 ] && status=$rc
          echo "== $tag$r $w: base against new (ab_table rc $rc)"; cat "$OUT/$tag$r-table-$w.txt"
        done
      done
      ;;
    shared)
      n=$2; shift 2
      while [ $# -gt 0 ] && ! is_step "$1"; do
        p=$1; shift
        start=$(date +%s)
        EPCOMM_REQUIRE_GPU=1 EPCOMM_TEST_SHARE_GPUS=1 EPCOMM_TIMEOUT_MS=${EPCOMM_TIMEOUT_MS:-120000} \
          "$build/tools/epcomm-run" -n "$n" --timeout "${EPCOMM_SHARED_TIMEOUT_S:-400}" "$build/tests/gpu_$p" \
          > "$OUT/shared_${n}_$p.log" 2>&1
        rc=$?; [ $rc -ne 0 ] && status=$rc
        echo "== shared $n ranks: $p (rc $rc, $(( $(date +%s) - start )) s)"
        grep -E "PASSED|FAILED|skipped|Failure|error" "$OUT/shared_${n}_$p.log" | grep -v "^\[rank [1-9]" | tail -20
      done
      ;;
    kernels)
      shift
      ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
      timeout 300 "$ncu" --target-processes all --clock-control none --cache-control none \
        -k regex:"${EPCOMM_NCU_KERNELS:-dispatch_layout_kernel|ht_notify_kernel|ht_prepare_kernel|ht_dispatch_kernel|ht_combine_kernel}" \
        --launch-skip "${EPCOMM_NCU_SKIP:-12}" --launch-count "${EPCOMM_NCU_COUNT:-12}" \
        --metrics gpu__time_duration.sum,gpc__cycles_elapsed.max,sm__cycles_active.max,launch__shared_mem_config_size,launch__grid_size,launch__block_size \
        "$build/tools/epcomm-run" -n 1 --timeout 280 "$build/tools/bench/epcomm-bench" --workload ht-dsv3 --sms 24 \
        --warmup 5 --iters 5 --no-check > "$OUT/kernels.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== kernels (rc $rc)"
      grep -E "^  [^ ].*\(.*\)x\(|gpu__time_duration|cycles_elapsed|cycles_active|shared_mem_config" "$OUT/kernels.txt" |
        sed 's/, Context.*//' | cut -c1-110 | tail -72
      ;;
    kernels-cold)
      shift
      ncu_bench all "${EPCOMM_NCU_KERNELS:-dispatch_layout_kernel|ht_notify_kernel|ht_prepare_kernel}" \
        "${EPCOMM_NCU_SKIP:-12}" "${EPCOMM_NCU_COUNT:-12}" kernels-cold --workload ht-dsv3 --sms 24
      ;;
    kernels-lines)
      shift
      ncu=$(command -v ncu || echo /usr/local/cuda/bin/ncu)
      for spec in "preamble;dispatch_layout_kernel|ht_layout_notify_kernel;ht_notify_kernel;ht-dsv3;--sms 24" \
                  "ll;ll_dispatch_(direct_)?kernel;ll_combine_kernel;ll-dsv3;"; do
        IFS=';' read -r name k1 k2 workload extra <<< "$spec"
        # shellcheck disable=SC2086
        timeout 240 "$ncu" --target-processes all --clock-control none --cache-control none \
          --section SpeedOfLight --section LaunchStats --section SourceCounters --section WarpStateStats \
          --warp-sampling-interval 0 --import-source yes \
          -k regex:"$k1|$k2" --launch-skip "${EPCOMM_NCU_SKIP:-12}" --launch-count "$(( 2 * ${EPCOMM_NCU_LINES_COUNT:-4} ))" \
          -f -o "$OUT/lines-$name" "$build/tools/epcomm-run" -n 1 --timeout 220 "$build/tools/bench/epcomm-bench" \
          --workload "$workload" $extra --warmup 5 --iters 5 --no-check > "$OUT/lines-$name.log" 2>&1
        rc=$?; [ $rc -ne 0 ] && status=$rc
        # NOTE: the CUDA view alone came back without metric columns on the H100 image (session 23:
        # "Line No","Source" only); the SASS view carries the samples per instruction with each
        # instruction's source line, and cuda,sass interleaves both (what session 11 summed).
        "$ncu" --import "$OUT/lines-$name.ncu-rep" --page source --csv --print-source cuda \
          > "$OUT/lines-$name.csv" 2> "$OUT/lines-$name.err"
        echo "== kernels-lines $name (rc $rc, import rc $?): $(wc -l < "$OUT/lines-$name.csv") CSV lines"
        for view in sass cuda,sass; do
          "$ncu" --import "$OUT/lines-$name.ncu-rep" --page source --csv --print-source "$view" \
            > "$OUT/lines-$name-${view/,/-}.csv" 2>> "$OUT/lines-$name.err"
          echo "   $view view: $(wc -l < "$OUT/lines-$name-${view/,/-}.csv") CSV lines"
        done
        # The sections in words (warp states: what the warps waited on, per kernel).
        "$ncu" --import "$OUT/lines-$name.ncu-rep" --page details > "$OUT/lines-$name-details.txt" 2>> "$OUT/lines-$name.err"
        # The top lines per kernel (instantiation), small enough to keep with the results.
        python3 "$root/tools/probes/ncu_lines.py" --top 30 "$OUT/lines-$name-cuda-sass.csv" \
          > "$OUT/lines-$name-top.txt" 2>> "$OUT/lines-$name.err"
        echo "   top lines: lines-$name-top.txt (rc $?)"
        # The same ranked by the instructions each line executed (what a warp's long path issues).
        python3 "$root/tools/probes/ncu_lines.py" --top 30 --sort instructions "$OUT/lines-$name-cuda-sass.csv" \
          > "$OUT/lines-$name-top-instructions.txt" 2>> "$OUT/lines-$name.err"
      done
      ;;
    kernels-ll)
      shift
      for w in ${EPCOMM_NCU_LL_WORKLOADS:-ll-dsv3 ll-small}; do
        EPCOMM_NCU_METRICS=${EPCOMM_NCU_METRICS:-dram__bytes_read.sum,dram__bytes_write.sum,lts__t_bytes.sum} \
          ncu_bench none "ll_dispatch_(direct_)?kernel|ll_combine_kernel" "${EPCOMM_NCU_LL_SKIP:-2}" \
          "${EPCOMM_NCU_LL_COUNT:-16}" "kernels-$w" --workload "$w"
      done
      ;;
    python)
      shift
      site="$root/build-py/gpu-site"
      rm -rf "$site"
      if [ -n "${EPCOMM_PY_WHEEL:-}" ]; then
        python3 -m pip install --no-deps --target "$site" "$EPCOMM_PY_WHEEL" > "$OUT/python_install.log" 2>&1
      else
        # The extension carries the NVSHMEM transport when the C++ build does (the multi-domain tests need it).
        py_defs=()
        case " ${EPCOMM_CMAKE_ARGS:-} " in *-DEPCOMM_WITH_NVSHMEM=ON*) py_defs=(-C cmake.define.EPCOMM_WITH_NVSHMEM=ON) ;; esac
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) python3 -m pip install --no-build-isolation --no-deps --target "$site" \
          -C build-dir="$root/build-py/gpu-skbuild" "${py_defs[@]}" "$root" > "$OUT/python_install.log" 2>&1
      fi
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== python: install (rc $rc)"; tail -3 "$OUT/python_install.log"
      [ $rc -ne 0 ] && continue
      export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
      if py_part cpu; then
        python3 -m pytest -q -p no:cacheprovider python/tests --ignore=python/tests/gpu > "$OUT/python_cpu_tests.log" 2>&1
        rc=$?; [ $rc -ne 0 ] && status=$rc
        echo "== python: CPU tier (rc $rc)"; tail -3 "$OUT/python_cpu_tests.log"
      fi
      if py_part gpu; then
        start=$(date +%s)
        EPCOMM_TIMEOUT_MS=${EPCOMM_TIMEOUT_MS:-120000} python3 -m pytest -v -rs -p no:cacheprovider python/tests/gpu \
          ${EPCOMM_PY_TESTS:+-k "$EPCOMM_PY_TESTS"} > "$OUT/python_gpu_tests.log" 2>&1
        rc=$?; [ $rc -ne 0 ] && status=$rc
        echo "== python: GPU tier, 2 and 4 shared ranks (rc $rc, $(( $(date +%s) - start )) s)"
        grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed" "$OUT/python_gpu_tests.log" | tail -30
        # Only a test that needs two GPUs may skip (on a machine of one).
        if grep -E "SKIPPED" "$OUT/python_gpu_tests.log" | grep -qv "needs two GPUs"; then
          echo "python: some GPU tests were skipped, which fails this step"; status=1
        fi
      fi
      py_part overhead || continue
      bench_json=()
      for w in ll-dsv3 ll-small; do
        "$build/tools/epcomm-run" -n 1 --timeout 300 "$build/tools/bench/epcomm-bench" --workload "$w" \
          --json "$OUT/python_bench_$w.json" > "$OUT/python_bench_$w.txt" 2>&1
        rc=$?; [ $rc -ne 0 ] && status=$rc
        echo "== python: epcomm-bench $w on one rank (rc $rc)"
        [ $rc -eq 0 ] && bench_json+=("$OUT/python_bench_$w.json")
      done
      timeout 500 python3 python/tests/gpu/overhead.py --out "$OUT/python_overhead.json" --bench-json "${bench_json[@]}" --profile "${EPCOMM_PY_PROFILE:-200}" \
        > "$OUT/python_overhead.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== python: overhead (rc $rc)"; grep -E "difference|Error|error" "$OUT/python_overhead.txt" | tail -40
      ;;
    faults)
      shift
      start=$(date +%s)
      # EPCOMM_FAULTS_RANKS_PER_DOMAIN=1: the matrix across two NVLink domains (the NVSHMEM build's epcomm-faults-md).
      faults_bin="$build/tools/faults/epcomm-faults"
      [ "${EPCOMM_FAULTS_RANKS_PER_DOMAIN:-0}" != 0 ] && faults_bin="$build/tools/faults/epcomm-faults-md"
      EPCOMM_REQUIRE_GPU=1 timeout 580 "$faults_bin" --out "$OUT/faults" --json "$OUT/faults.json" \
        --timeout-ms "${EPCOMM_FAULTS_TIMEOUT_MS:-3000}" ${EPCOMM_FAULTS_CASES:+--cases "$EPCOMM_FAULTS_CASES"} \
        --ranks-per-domain "${EPCOMM_FAULTS_RANKS_PER_DOMAIN:-0}" > "$OUT/faults.txt" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== faults (rc $rc, $(( $(date +%s) - start )) s)"; sed -n '/^case /,$p' "$OUT/faults.txt" | cut -c1-160 | tail -90
      faults_table
      ;;
    soak)
      shift
      start=$(date +%s)
      EPCOMM_REQUIRE_GPU=1 EPCOMM_TEST_SHARE_GPUS=1 EPCOMM_TIMEOUT_MS=${EPCOMM_TIMEOUT_MS:-120000} EPCOMM_SOAK_JSON="$OUT/soak.json" \
        EPCOMM_SOAK_LL_PAIRS=${EPCOMM_SOAK_LL_PAIRS:-20000} EPCOMM_SOAK_HT_PAIRS=${EPCOMM_SOAK_HT_PAIRS:-2000} \
        EPCOMM_SOAK_CHECK_EVERY=${EPCOMM_SOAK_CHECK_EVERY:-200} \
        "$build/tools/epcomm-run" -n 2 --timeout 570 "$build/tests/gpu_soak" > "$OUT/soak.log" 2>&1
      rc=$?; [ $rc -ne 0 ] && status=$rc
      echo "== soak (rc $rc, $(( $(date +%s) - start )) s)"
      grep -E "PASSED|FAILED|Failure|skipped|error" "$OUT/soak.log" | grep -v "^\[rank [1-9]" | tail -20
      [ -f "$OUT/soak.json" ] && cat "$OUT/soak.json"
      faults_table
      ;;
    pack)
      shift
      tar czf "$OUT.tgz.part" -C "$OUT" . && find "$OUT" -mindepth 1 -delete && mv "$OUT.tgz.part" "$OUT/out.tgz"
      ;;
    *) echo "unknown step $1"; exit 2 ;;
  esac
done
exit $status
