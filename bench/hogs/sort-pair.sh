#!/bin/bash
# A primary + backup of a guest that sorts 3x10^6 numbers per request, default settings, under two hogs.
# Prints each request's status and time, then both nodes' role/epoch and any suspicion lines.
cd "$(dirname "$0")/../.."
D=$(mktemp -d); head -c 32 /dev/urandom | base64 > $D/secret
node -e 'for(;;){}' & H1=$!; node -e 'for(;;){}' & H2=$!
node dist/cli/ftjs.js primary bench/hogs/sort-guest.js --shared-dir $D --port 18951 --replication-port 18952 --secret-file $D/secret --node-id p > $D/p.log 2>&1 & P=$!
for i in $(seq 100); do curl -s localhost:18951/_ft/health >/dev/null && break; sleep 0.2; done
node dist/cli/ftjs.js backup --primary ws://127.0.0.1:18952 --shared-dir $D --port 18953 --secret-file $D/secret --node-id b > $D/b.log 2>&1 & B=$!
for i in $(seq 300); do curl -s localhost:18951/_ft/status?hash=0 | grep -q '"protection":"protected"' && break; sleep 0.2; done
echo "protected: $(curl -s localhost:18951/_ft/status?hash=0 | grep -o '"protection":"[a-z ]*"')"
for k in array typed array typed array; do
  curl -s -o $D/out -w "GET /$k?n=3000000 -> %{http_code} in %{time_total} s\n" "localhost:18951/$k?n=3000000"; head -c 150 $D/out; echo
done
curl -s -w " -> %{http_code}\n" "localhost:18951/array?n=100"
sleep 2
echo "primary: $(curl -s localhost:18951/_ft/status?hash=0 | grep -o '"role":"[a-z]*"\|"epoch":[0-9]*\|"protection":"[a-z ]*"' | tr '\n' ' ')"
echo "backup:  $(curl -s localhost:18953/_ft/status?hash=0 | grep -o '"role":"[a-z]*"\|"epoch":[0-9]*' | tr '\n' ' ')"
echo "suspicion/stall lines: primary $(grep -c 'lost:\|not suspected yet\|did not run' $D/p.log), backup $(grep -c 'lost:\|not suspected yet\|did not run' $D/b.log)"
grep -h 'lost:\|not suspected yet\|halting' $D/p.log $D/b.log | cut -c1-250 | head -5
kill -9 $P $B $H1 $H2 2>/dev/null; wait 2>/dev/null
rm -rf $D
