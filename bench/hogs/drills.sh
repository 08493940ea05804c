#!/bin/bash
# Issue 15: ftjs drills under two CPU hogs (one busy loop per core), default settings. Run from the
# repository root after `npm run build`. Each argument is NAME=DRILL-FLAGS; output goes to $OUT/NAME.txt,
# a one-line summary per drill to $OUT/log. The hogs die with the script.
#   bench/hogs/drills.sh "kill-primary=--fault kill-primary --rounds 10" "reprotect=--reprotect --fault kill-primary --rounds 10"
OUT=${OUT:-/tmp/ftjs-hog-drills}; mkdir -p "$OUT"
node -e 'for(;;){}' & H1=$!
node -e 'for(;;){}' & H2=$!
trap 'kill $H1 $H2 2>/dev/null' EXIT
echo "hogs $H1 $H2 started $(date -u +%T)" >> "$OUT/log"
for spec in "$@"; do
  name=${spec%%=*}; args=${spec#*=}
  echo "== $name: node dist/cli/ftjs.js drill $args  (start $(date -u +%T), load $(cut -d' ' -f1-3 /proc/loadavg))" >> "$OUT/log"
  timeout 1500 node dist/cli/ftjs.js drill $args > "$OUT/$name.txt" 2>&1
  echo "   rc=$? end $(date -u +%T): $(grep -h '^summary' "$OUT/$name.txt" | tail -1)" >> "$OUT/log"
done
