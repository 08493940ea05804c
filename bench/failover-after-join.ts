// Issue 15's "replay backlog" measurement: a fresh backup joins a primary by replaying a long log
// (>= --entries entries), under write load; once the primary reports it protected (its replay
// backlog within --max-replay-lag-ms), the primary is SIGKILLed at a random moment in the next
// --kill-window-ms, and we time from the kill to the backup's health 200 (go-live, as a load
// balancer sees it: detection + drain + claim + switch). Prints one line per round and p50/max.
//
// --hogs N starts N busy loops (`node -e 'for(;;){}'`) once the log is filled and stops them after
// go-live: the join, the catch-up and the drain run on a starved host (filling the log under them
// took 17 minutes a round: the niced primary VM got a tenth of a core).
//
//   npm run build && node dist/bench/failover-after-join.js [--entries 50000] [--rounds 5] [--kill-window-ms 3000] [--heartbeat-timeout-ms 300] [--hogs 0]

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { argNumber, exitOnHelp, type LogLine, median, projectPath, spawnFtjs } from './util.js';

exitOnHelp(`
usage: node dist/bench/failover-after-join.js [--entries 50000] [--rounds 5] [--kill-window-ms 3000] [--heartbeat-timeout-ms 300] [--hogs 0]

A fresh backup joins a primary by replaying a log of --entries entries under write load; once the
primary reports it protected, the primary is SIGKILLed at a random moment in the next
--kill-window-ms, and go-live (kill to the backup's /_ft/health 200) is timed against the bound
(heartbeat timeout + 1 s). --hogs N runs N busy loops through the join and the failover. One JSON
line per round, then a summary line.
`);

const entries = argNumber('--entries', 50_000);
const rounds = argNumber('--rounds', 5);
const killWindowMs = argNumber('--kill-window-ms', 3_000);
const heartbeatTimeoutMs = argNumber('--heartbeat-timeout-ms', 300);
const hogCount = argNumber('--hogs', 0);
const timing = ['--heartbeat-timeout-ms', String(heartbeatTimeoutMs)];
const KV = projectPath('guest-apps/kv.js');
const env = { ...process.env, FTJS_SECRET: 'bench-secret-0123456789abcdef' };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function status(url: string): Promise<LogLine> {
  return (await (await fetch(`${url}/_ft/status?hash=0`)).json()) as LogLine;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
}

async function round(n: number) {
  const shared = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-failover-'));
  // A join by log replay, never by snapshot: the backlog is the whole log.
  const primary = spawnFtjs(['primary', KV, '--port', '0', '--replication-port', '0', '--shared-dir', shared, '--join-by-snapshot-after', String(10 * entries), ...timing], { env });
  let backup: ReturnType<typeof spawnFtjs> | null = null;
  const hogs: ChildProcess[] = [];
  let stop = false;
  try {
    const ready = await primary.waitFor((l) => typeof l.replication === 'string');
    const url = ready.url as string;
    // Fill the log: concurrent writers until the log holds `entries` entries.
    const fill = async (w: number) => {
      for (let i = 0; ((await status(url)).seq as number) < entries; i++) {
        for (let j = 0; j < 50; j++) await (await fetch(`${url}/kv/f${w}-${i}-${j}`, { method: 'PUT', body: 'v' })).text();
      }
    };
    await Promise.all([0, 1, 2, 3].map(fill));
    const seqAtJoin = (await status(url)).seq as number;
    for (let h = 0; h < hogCount; h++) hogs.push(spawn(process.execPath, ['-e', 'for(;;){}'], { stdio: 'ignore' }));
    // Load during the join and after: writes that may queue, or get 503 while admission is held.
    let ok = 0;
    let refused = 0;
    const writers = [0, 1].map(async (w) => {
      for (let i = 0; !stop; i++) {
        const res = await fetch(`${url}/kv/l${w}-${i}`, { method: 'PUT', body: 'v' }).catch(() => null);
        if (res?.status === 200) ok++;
        else refused++;
        await res?.text().catch(() => {});
        if (res?.status !== 200) await sleep(20);
      }
    });
    const joinStarted = performance.now();
    backup = spawnFtjs(['backup', '--primary', ready.replication as string, '--port', '0', '--shared-dir', shared, ...timing], { env });
    const backupUrl = (await backup.waitFor((l) => typeof l.url === 'string' && typeof l.primary === 'string')).url as string;
    let maxBacklog = 0;
    for (;;) {
      const s = await status(url);
      maxBacklog = Math.max(maxBacklog, (s.replayBacklogMs as number | null) ?? 0);
      if (s.protection === 'protected') break;
      // The primary gave up on the backup (it went silent past the timeout) and runs alone.
      if (s.role === 'live') throw new Error(`round ${n}: the primary lost the joining backup (silent past ${heartbeatTimeoutMs} ms) and runs alone in epoch ${s.epoch}`);
      await sleep(20);
    }
    const catchUpMs = performance.now() - joinStarted;
    await sleep(Math.random() * killWindowMs);
    const [atKill, backupAtKill] = await Promise.all([status(url), status(backupUrl)]);
    const killedAt = performance.now();
    await kill(primary.child);
    // The estimate's check: how long the backup took to replay what it held at the kill (it replays on
    // while it detects the loss), against the backlog it reported then.
    let backlogReplayedMs: number | null = null;
    while ((await fetch(`${backupUrl}/_ft/health`).catch(() => null))?.status !== 200) {
      if (backlogReplayedMs === null && ((await status(backupUrl).catch(() => null))?.queuedTasks ?? 1) === 0) backlogReplayedMs = Math.round(performance.now() - killedAt);
      await sleep(5);
    }
    const goLiveMs = performance.now() - killedAt;
    await Promise.all(hogs.splice(0).map(kill));
    const drained = await backup.waitFor((l) => typeof l.drainMs === 'number');
    stop = true;
    await Promise.all(writers);
    const r = {
      round: n,
      seqAtJoin,
      catchUpMs: Math.round(catchUpMs),
      maxReportedBacklogMs: maxBacklog,
      backlogAtKillMs: atKill.replayBacklogMs,
      backupBacklogAtKillMs: backupAtKill.replayBacklogMs,
      backupQueuedAtKill: backupAtKill.queuedTasks,
      backlogReplayedMs,
      drainEstimatedMs: drained.estimatedMs,
      drainTasks: drained.drainedTasks,
      drainMs: drained.drainMs,
      goLiveMs: Math.round(goLiveMs),
      withinBound: goLiveMs <= heartbeatTimeoutMs + 1000,
      writesOk: ok,
      writesRefusedOrFailed: refused,
    };
    console.log(JSON.stringify(r));
    return r;
  } finally {
    stop = true;
    await Promise.all(hogs.splice(0).map(kill));
    await kill(primary.child);
    if (backup) await kill(backup.child);
  }
}

const results = [];
for (let n = 1; n <= rounds; n++) {
  try {
    results.push(await round(n));
  } catch (error) {
    console.log(JSON.stringify({ round: n, failed: (error as Error).message }));
  }
}
const goLive = results.map((r) => r.goLiveMs).sort((a, b) => a - b);
console.log(
  JSON.stringify({
    rounds,
    entries,
    hogs: hogCount,
    goLiveP50Ms: median(goLive),
    goLiveMaxMs: goLive[goLive.length - 1],
    boundMs: heartbeatTimeoutMs + 1000,
    withinBound: results.filter((r) => r.withinBound).length,
    catchUpP50Ms: median(results.map((r) => r.catchUpMs)),
  }),
);
