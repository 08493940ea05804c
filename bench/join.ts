// A fresh backup joining a running primary by snapshot, full vs incremental, end to end on loopback.
// The primary holds --mib MiB of poorly compressible guest values (kv.js); for the incremental run it
// writes checkpoints to the shared directory, so the joining backup offers the newest one as its base
// and receives only the pages written since (--writes-after small writes after that checkpoint).
//
//   npm run build && node dist/bench/join.js [--mib 20] [--joins 3] [--writes-after 100]

import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { argNumber, type LogLine, median, projectPath, spawnFtjs } from './util.js';

const mib = argNumber('--mib', 20);
const joins = argNumber('--joins', 3);
const writesAfter = argNumber('--writes-after', 100);
const KV = projectPath('guest-apps/kv.js');
const env = { ...process.env, FTJS_SECRET: 'bench-secret-0123456789abcdef' };

const spawnNode = (args: string[]) => spawnFtjs(args, { env });

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
}

/** 1 MiB of text that deflate cannot shrink much (as real guest data), different for each i. */
function value(i: number): string {
  let x = (i + 1) * 2654435761;
  let out = '';
  while (out.length < 1024 * 1024) {
    x = (Math.imul(x ^ (x >>> 15), 2246822519) + 0x9e3779b9) >>> 0;
    out += x.toString(36);
  }
  return out.slice(0, 1024 * 1024);
}

async function status(url: string): Promise<LogLine> {
  return (await (await fetch(`${url}/_ft/status?hash=0`)).json()) as LogLine;
}

async function measure(kind: 'full' | 'incremental') {
  const shared = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-join-'));
  const checkpointArgs = kind === 'incremental' ? ['--checkpoint-every-ms', '500'] : [];
  const primary = spawnNode([
    'primary',
    KV,
    '--port',
    '0',
    '--replication-port',
    '0',
    '--shared-dir',
    shared,
    '--join-by-snapshot-after',
    '0',
    '--max-request-bytes',
    String(2 * 1024 * 1024),
    ...checkpointArgs,
  ]);
  const results: Array<{ joinMs: number; bytes: number; pauseMs: number; encodeMs: number; memoryBytes: number }> = [];
  try {
    const ready = await primary.waitFor((l) => typeof l.replication === 'string');
    const url = ready.url as string;
    process.stderr.write(`${kind}: primary up on ${url}; filling ${mib} MiB of guest values\n`);
    for (let i = 0; i < mib; i++) {
      const res = await fetch(`${url}/kv/big-${i}`, { method: 'PUT', body: value(i) });
      if (res.status !== 200) throw new Error(`filling the guest: PUT big-${i} got ${res.status} ${await res.text()}`);
      await res.text();
    }
    if (kind === 'incremental') {
      const filled = (await status(url)).seq as number;
      while ((((await status(url)).lastCheckpoint as { seq: number } | null)?.seq ?? 0) < filled) await new Promise((r) => setTimeout(r, 50));
    }
    for (let i = 0; i < writesAfter; i++) await (await fetch(`${url}/kv/small-${i}`, { method: 'PUT', body: `v${i}` })).text();
    for (let j = 0; j < joins; j++) {
      const started = performance.now();
      const backup = spawnNode(['backup', '--primary', ready.replication as string, '--port', '0', '--shared-dir', shared, '--node-id', `b${j}`]);
      try {
        const joined = await backup.waitFor((l) => /^joined by snapshot/.test(String(l.msg)));
        const joinMs = performance.now() - started;
        if (joined.kind !== kind) throw new Error(`expected a ${kind} join, got ${String(joined.kind)}`);
        const sent = (await status(url)).lastJoinSnapshot as { pauseMs: number; bytes: number; memoryBytes: number };
        const line = await primary.waitFor((l) => /^snapshot for a joining backup/.test(String(l.msg)) && l.bytes === joined.bytes);
        results.push({ joinMs, bytes: joined.bytes as number, pauseMs: sent.pauseMs, encodeMs: line.encodeMs as number, memoryBytes: joined.memoryBytes as number });
        process.stderr.write(`${kind} join ${j + 1}/${joins}: ${Math.round(joinMs)} ms, ${joined.bytes} bytes\n`);
      } finally {
        await kill(backup.child);
      }
      // The primary notices the lost backup and runs alone before the next one joins.
      while ((await status(url)).role !== 'live') await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await kill(primary.child);
    rmSync(shared, { recursive: true, force: true });
  }
  const m = (f: (r: (typeof results)[number]) => number) => Number(median(results.map(f)).toFixed(1));
  return { joins: results.length, joinMs: m((r) => r.joinMs), bytes: m((r) => r.bytes), memoryBytes: m((r) => r.memoryBytes), primaryPauseMs: m((r) => r.pauseMs), encodeMs: m((r) => r.encodeMs) };
}

const full = await measure('full');
const incremental = await measure('incremental');
console.log(JSON.stringify({ benchmark: 'join', guestMiB: mib, writesAfterCheckpoint: writesAfter, full, incremental, bytesRatio: Number((full.bytes / incremental.bytes).toFixed(1)) }, null, 2));
