#!/bin/bash
# A joining backup (by snapshot) whose main thread is held 3 s after its boot, default settings, under two hogs.
cd "$(dirname "$0")/../.."
D=$(mktemp -d); head -c 32 /dev/urandom | base64 > $D/secret
node -e 'for(;;){}' & H1=$!; node -e 'for(;;){}' & H2=$!
node dist/cli/ftjs.js primary guest-apps/kv.js --shared-dir $D --port 18961 --replication-port 18962 --secret-file $D/secret --node-id p --join-by-snapshot-after 0 > $D/p.log 2>&1 & P=$!
for i in $(seq 150); do curl -s localhost:18961/_ft/health >/dev/null && break; sleep 0.2; done
for i in $(seq 20); do curl -s -X PUT -d v$i localhost:18961/kv/k$i >/dev/null; done
START=$(date +%s.%N)
FTJS_TEST_JOIN_STALL_MS=3000 node dist/cli/ftjs.js backup --primary ws://127.0.0.1:18962 --shared-dir $D --port 18963 --secret-file $D/secret --node-id b > $D/b.log 2>&1 & B=$!
for i in $(seq 600); do curl -s localhost:18961/_ft/status?hash=0 | grep -q '"protection":"protected"' && break; sleep 0.1; done
END=$(date +%s.%N)
echo "protected after $(echo "$END - $START" | bc) s (from the backup's start)"
curl -s -o /dev/null -w "PUT after: %{http_code}\n" -X PUT -d x localhost:18961/kv/after
echo "primary: $(curl -s localhost:18961/_ft/status?hash=0 | grep -o '"role":"[a-z]*"\|"epoch":[0-9]*\|"protection":"[a-z ]*"' | tr '\n' ' ')"
echo "backup:  $(curl -s localhost:18963/_ft/status?hash=0 | grep -o '"role":"[a-z]*"\|"epoch":[0-9]*' | tr '\n' ' ')"
grep -h 'joined by snapshot\|did not run for [0-9]\{4\}\|not suspected yet\|lost:\|halting\|claiming' $D/p.log $D/b.log | sed 's/.*"msg":"\([^"]*\)".*/\1/' | cut -c1-200 | head -8
kill -9 $P $B $H1 $H2 2>/dev/null; wait 2>/dev/null; rm -rf $D
