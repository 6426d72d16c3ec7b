#!/usr/bin/env bash
# Runs tools/device_session.sh in several source snapshots in one device call (e.g. main and the
# branches to validate beside it, on the same machine), then packs every snapshot's outputs into one
# archive: the device tool brings back only a few files per call.
#
# Here (no GPU):  for rev in main ll-next; do rm -rf .snap-$rev && mkdir .snap-$rev &&
#                   git archive $rev | tar -x -C .snap-$rev && cp -r .gtest .snap-$rev/ &&
#                   git rev-parse --short $rev > .snap-$rev/COMMIT; done
# On the device:  tools/device_snapshots.sh .snap-main .snap-ll-next -- tests bench ll-dsv3
#   (run from any snapshot: the script is the same in each; carry every .snap-* folder.)
# Each snapshot's outputs go to $OUT/<snapshot>/ (EPCOMM_COMMIT from its COMMIT file), all packed
# into $OUT/snapshots.tgz; a summary of each run's exit status is printed and kept in $OUT/status.txt.
set -uo pipefail
OUT=${OUT:-/tmp/epcomm-out}
snaps=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do snaps+=("$1"); shift; done
[ $# -gt 0 ] && shift
[ ${#snaps[@]} -gt 0 ] || { echo "usage: $0 SNAPSHOT... -- STEPS..."; exit 2; }
status=0
work=$(mktemp -d)
for snap in "${snaps[@]}"; do
  name=$(basename "$snap")
  name=${name#.}
  mkdir -p "$work/$name"
  commit=$(cat "$snap/COMMIT" 2>/dev/null || echo "${EPCOMM_COMMIT:-unknown}")
  (cd "$snap" && EPCOMM_COMMIT="$commit" OUT="$work/$name" ./tools/device_session.sh "$@") \
    > "$work/$name/session.txt" 2>&1
  rc=$?
  [ $rc -ne 0 ] && status=$rc
  echo "$name ($commit): rc $rc" | tee -a "$OUT/status.txt"
  grep -E "tests passed|Failed|epcomm|nccl |^== " "$work/$name/session.txt" | grep -v "^\[rank [1-9]" | tail -40
done
tar -czf "$OUT/snapshots.tgz" -C "$work" .
exit $status
