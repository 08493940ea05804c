#!/bin/bash
# Times a fresh backup joining a primary by snapshot (figures in BENCHMARKS.md). Run after `npm run build`.
D=$(mktemp -d); export FTJS_SECRET=test-secret-0123456789abcdef
node dist/cli/ftjs.js primary guest-apps/kv.js --port 18191 --replication-port 19191 --shared-dir $D --node-id P --join-by-snapshot-after 0 --max-request-bytes 2097152 > /tmp/jp.log 2>&1 &
sleep 1
node -e "const big='x'.repeat(1024*1024); (async()=>{for(let i=0;i<32;i++){await (await fetch('http://127.0.0.1:18191/kv/big-'+i,{method:'PUT',body:big+i})).text()}})()"
for r in 1 2 3; do
  T0=$(date +%s%3N)
  node dist/cli/ftjs.js backup --primary ws://127.0.0.1:19191 --port 0 --shared-dir $D --node-id B$r > /tmp/jb$r.log 2>&1 &
  BP=$!
  for i in $(seq 1 200); do grep -q "joined by snapshot" /tmp/jb$r.log && break; sleep 0.02; done
  T1=$(date +%s%3N)
  echo "round $r: backup process start -> joined: $((T1-T0)) ms"
  grep -o '"bootMs":[0-9]*' /tmp/jb$r.log | head -1
  kill -9 $BP; sleep 0.8
done
grep "snapshot for a joining" /tmp/jp.log | grep -o '"pauseMs":[0-9.]*,"memoryBytes":[0-9]*,"bytes":[0-9]*,"encodeMs":[0-9]*'
grep "snapshot sent" /tmp/jp.log | grep -o '"ms":[0-9]*'
pkill -9 -f "node-id P"
