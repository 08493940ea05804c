// Primary and backup in lock-step (issue 3 acceptance): real processes, real sockets on 127.0.0.1,
// real signals, a real shared directory.

import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { ftjs, type PairProcesses, replayJson, send, spawnFtjs, startBackup, startPair, startPrimary, status, tempDir, waitFor, waitInSync } from './helpers.js';
import { MIXED_APPS, mixedWorkload } from './workloads.js';

let pair: PairProcesses | null = null;
afterEach(async () => {
  await pair?.stop();
  pair = null;
});

// Lock-step on bank only: kv's is in every other kv pair here (4 concurrent writers in 'traces across a
// failover', whose backup trace replays bit for bit), in channel-tamper and loader (waitInSync), and in
// the simulator, which runs kv and bank on the production nodes and compares both VMs byte for byte at
// the end of every seed (test/sim.test.ts).
describe('lock-step', () => {
  test.each([['bank', MIXED_APPS.bank]] as const)("after a workload on %s, once quiet, the backup has the primary's seq and state hash", async (service, app) => {
    pair = await startPair(app);
    const steps = mixedWorkload(120, 7).filter((s) => s.service === service);
    expect(steps.length).toBeGreaterThan(20);
    // Concurrent clients, so batches of tasks stream while the backup replays.
    const queue = [...steps];
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        for (let step = queue.shift(); step; step = queue.shift()) {
          const res = await send(pair!.primary.url, step);
          expect(res.status).toBeLessThan(500);
        }
      }),
    );
    const synced = await waitInSync(pair.primary.url, pair.backup.url);
    expect(synced.seq).toBeGreaterThan(steps.length * 2);
    if (service === 'bank') {
      const audit = JSON.parse((await send(pair.primary.url, { method: 'GET', path: '/audit' })).body);
      expect(audit.ok).toBe(true);
    }
    const b = await status(pair.backup.url);
    expect(b.divergence).toBeNull();
    expect(b.receivedSeq).toBeGreaterThanOrEqual(b.replayedSeq as number);
  });
});

// Both nodes' --trace files replaying in full is covered by test/trace-rotation.test.ts (the same
// flags, rotated); replay under another time zone, for every guest, by test/determinism.test.ts.

describe('traces across a failover', () => {
  test("the backup's trace covers the primary's log, the go-live and its own epoch, and replays bit for bit", async () => {
    const dir = tempDir();
    const backupTrace = path.join(dir, 'backup.trace');
    pair = await startPair('guest-apps/kv.js', { heartbeatTimeoutMs: 600, backupArgs: ['--trace', backupTrace] });
    const { primary, backup } = pair;
    // Writers keep the primary busy so that the kill is likely to cut a task in flight.
    let stop = false;
    const writers = Array.from({ length: 4 }, async (_, w) => {
      for (let i = 0; !stop; i++)
        await fetch(`${primary.url}/kv/w${w}-${i}`, { method: 'PUT', body: String(i) })
          .then((r) => r.text())
          .catch(() => undefined);
    });
    await waitFor(async () => ((await status(primary.url)).seq as number) > 200, 'some load on the primary');
    primary.child.kill('SIGKILL');
    stop = true;
    await Promise.all(writers);
    await waitFor(async () => (await fetch(`${backup.url}/_ft/health`)).status === 200, 'the backup to go live');
    for (let i = 0; i < 5; i++) expect((await send(backup.url, { method: 'PUT', path: `/kv/after-${i}`, body: 'live' })).status).toBe(200);
    const live = await status(backup.url);
    await backup.stop('SIGTERM');
    const replay = await replayJson(backupTrace);
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
    expect(replay.summary.lastSeq as number).toBeGreaterThanOrEqual(live.seq as number);
  });
});

describe('the Output Rule, black-box', () => {
  test('with the backup stopped (less than the heartbeat timeout) no response leaves the primary; after SIGCONT they all arrive', async () => {
    pair = await startPair('guest-apps/kv.js', { heartbeatMs: 200, heartbeatTimeoutMs: 10_000 });
    const { primary, backup } = pair;
    expect((await send(primary.url, { method: 'PUT', path: '/kv/warm', body: 'up' })).status).toBe(200);
    await waitInSync(primary.url, backup.url);

    backup.child.kill('SIGSTOP');
    let resumedAt = Infinity;
    const arrivals: Array<{ at: number; seq: number; status: number }> = [];
    const requests = Array.from({ length: 5 }, (_, i) =>
      fetch(`${primary.url}/kv/held-${i}`, { method: 'PUT', body: `v${i}` }).then(async (res) => {
        await res.text();
        arrivals.push({ at: performance.now(), seq: Number(res.headers.get('ftjs-seq')), status: res.status });
      }),
    );
    // The primary ran every request (execution never waits) and holds all five responses.
    await waitFor(async () => ((await status(primary.url)).heldOutputs as number) >= 5, 'five held outputs on the primary');
    const held = await status(primary.url);
    const heldSeenAt = performance.now();
    expect(held.lagEntries as number).toBeGreaterThan(0);
    expect(arrivals).toEqual([]);

    resumedAt = performance.now();
    backup.child.kill('SIGCONT');
    await Promise.all(requests);
    expect(arrivals.length).toBe(5);
    // Count responses seen before the backup could have acknowledged their entry: must be zero.
    const early = arrivals.filter((a) => a.at < resumedAt);
    expect(early.length).toBe(0);
    const b = await status(backup.url);
    for (const a of arrivals) {
      expect(a.status).toBe(200);
      expect(a.seq).toBeLessThanOrEqual(b.receivedSeq as number);
    }
    const after = await status(primary.url);
    expect(after.heldOutputs).toBe(0);
    // The primary's own account of the hold: those batches were appended before we saw them held
    // and acknowledged after SIGCONT.
    const holds = after.outputHoldMs as { batches: number; p50Ms: number; p99Ms: number; maxMs: number };
    expect(holds.batches).toBeGreaterThanOrEqual(1);
    expect(holds.maxMs).toBeGreaterThanOrEqual(resumedAt - heldSeenAt);
    expect(holds.p50Ms).toBeLessThanOrEqual(holds.p99Ms);
    expect(holds.p99Ms).toBeLessThanOrEqual(holds.maxMs);
    await waitInSync(primary.url, backup.url);
  });
});

describe('divergence', () => {
  test('a backup whose replay diverges stops, reports the first divergent seq loudly and exits 76; the primary carries on alone', async () => {
    const primary = await startPrimary('guest-apps/random.js');
    // A deliberately nondeterministic backup: its replay sees one clock reading 1 ms late.
    const backup = await startBackup(primary.replication, primary.sharedDir, { env: { FTJS_TEST_PERTURB_CLOCK_FROM_SEQ: '12' } });
    pair = { primary, backup, sharedDir: primary.sharedDir, stop: async () => void (await Promise.all([primary.stop('SIGKILL'), backup.stop('SIGKILL')])) };
    await waitFor(async () => (await status(primary.url)).backupAttached === true, 'the backup to attach');
    for (let i = 0; i < 5 && backup.exitCode === null; i++) expect((await send(primary.url, { method: 'GET', path: '/now' })).status).toBe(200);
    await backup.exited;
    expect(backup.exitCode).toBe(76);
    const report = backup.find((l) => /^DIVERGENCE/.test(l.msg))!;
    expect(report).toBeDefined();
    expect(report.seq as number).toBeGreaterThanOrEqual(12);
    expect(report.expected).toMatch(/hash|clock|pos/);
    expect(report.actual).toBeDefined();
    // The primary, now unprotected, wins the next epoch and keeps serving.
    await waitFor(async () => (await status(primary.url)).role === 'live', 'the primary to run alone');
    const st = await status(primary.url);
    expect(st.epoch).toBe(2);
    expect((await send(primary.url, { method: 'GET', path: '/now' })).status).toBe(200);
  });
});

describe('lag control', () => {
  test('past --max-lag-ms the primary stops admitting: requests queue, then get 503; it resumes when the backup catches up', async () => {
    pair = await startPair('guest-apps/kv.js', { heartbeatMs: 200, heartbeatTimeoutMs: 20_000, primaryArgs: ['--max-lag-ms', '300', '--max-queued-requests', '3'] });
    const { primary, backup } = pair;
    await waitInSync(primary.url, backup.url);
    const throttles = () => primary.lines.filter((l) => /throttling: backup lag \d+ ms exceeds --max-lag-ms=300/.test(l.msg)).length;
    const before = throttles();
    backup.child.kill('SIGSTOP');
    // The first request runs and its output is held; the lag then grows past 300 ms.
    const first = fetch(`${primary.url}/kv/a`, { method: 'PUT', body: '1' });
    await waitFor(() => throttles() > before, 'the primary to throttle');
    expect((await status(primary.url)).admitting).toBe(false);
    // New requests wait in the queue (not run), and past the queue bound they are refused with 503.
    const queued = [1, 2, 3].map((i) => fetch(`${primary.url}/kv/q${i}`, { method: 'PUT', body: String(i) }));
    await waitFor(async () => (await status(primary.url)).queued === 3, 'three queued requests');
    const refused = await fetch(`${primary.url}/kv/over`, { method: 'PUT', body: 'x' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.text()).toContain('--max-queued-requests');
    const tasksWhileThrottled = (await status(primary.url)).tasks;

    backup.child.kill('SIGCONT');
    const answers = await Promise.all([first, ...queued]);
    expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    await primary.waitForLog((l) => /backup caught up: admitting requests again/.test(l.msg), 'the primary to admit again');
    expect((await status(primary.url)).tasks as number).toBeGreaterThan(tasksWhileThrottled as number);
    await waitInSync(primary.url, backup.url);
  });
});

describe('refusals at the edge', () => {
  test('a wrong secret, another guest, a second backup and garbage bytes are refused and logged; the pair keeps running', async () => {
    pair = await startPair('guest-apps/kv.js');
    const { primary, backup, sharedDir } = pair;

    const wrongSecret = await startBackup(primary.replication, sharedDir, { secret: 'not-the-right-secret-at-all', nodeId: 'intruder' });
    expect(await wrongSecret.exited).toBe(77);
    expect(wrongSecret.stdout).toMatch(/auth/i);

    const otherGuest = await startBackup(primary.replication, sharedDir, { entry: 'guest-apps/bank.js', nodeId: 'other-guest' });
    expect(await otherGuest.exited).toBe(77);
    expect(otherGuest.stdout).toMatch(/guest/i);

    const second = await startBackup(primary.replication, sharedDir, { nodeId: 'second-backup' });
    expect(await second.exited).toBe(77);
    expect(second.stdout).toMatch(/already attached|another backup/i);

    const port = Number(new URL(primary.replication).port);
    const garbage = net.connect(port, '127.0.0.1', () => garbage.write('\x16\x03\x01 garbage \x00\xff\r\n\r\nmore garbage'));
    garbage.on('error', () => {});

    await primary.waitForLog((l) => /refus|auth|garbage|bad request|client error/i.test(l.msg) && /intruder|auth/i.test(JSON.stringify(l)), 'the primary to log the wrong secret');
    await primary.waitForLog((l) => /guest/i.test(l.msg) && /refus|mismatch/i.test(l.msg), 'the primary to log the guest mismatch');
    await primary.waitForLog((l) => /non-WebSocket connection/i.test(l.msg), 'the primary to log the garbage bytes');
    garbage.destroy();

    // The pair is unharmed: the original backup still follows.
    expect((await send(primary.url, { method: 'PUT', path: '/kv/after', body: 'still here' })).status).toBe(200);
    await waitInSync(primary.url, backup.url);
    expect((await status(primary.url)).backupAttached).toBe(true);
  });
});

describe('ftjs up', () => {
  test('brings up the pair behind one front door; requests through it work', async () => {
    const up = spawnFtjs(['up', '--port', '0']);
    try {
      const line = await up.waitForLog((l) => typeof l.frontDoor === 'string', 'the front door');
      const door = line.frontDoor as string;
      const put = await waitFor(async () => {
        const res = await fetch(`${door}/kv/hello`, { method: 'PUT', body: 'world' });
        return res.status === 200 ? res : null;
      }, 'the front door to route to the primary');
      expect(await put.json()).toEqual({ ok: true });
      const get = await fetch(`${door}/kv/hello`);
      expect(await get.json()).toEqual({ key: 'hello', value: 'world' });
      const backupUrl = line.backup as string;
      const backupHealth = await fetch(`${backupUrl}/_ft/health`);
      expect(backupHealth.status).toBe(503);
      const guestOnBackup = await fetch(`${backupUrl}/kv/hello`);
      expect(guestOnBackup.status).toBe(503);
      expect(guestOnBackup.headers.get('retry-after')).toBeTruthy();
    } finally {
      up.child.kill('SIGINT');
      await up.exited;
    }
  });

  test('the front door retries a keyed request on the other node when the live one dies mid-request; an unkeyed one gets 502', async () => {
    const up = spawnFtjs(['up', 'guest-apps/timers.js', '--port', '0', '--heartbeat-timeout-ms', '500']);
    const pids: number[] = [];
    try {
      const line = await up.waitForLog((l) => typeof l.frontDoor === 'string', 'the front door');
      const [door, primaryUrl, backupUrl] = [line.frontDoor, line.primary, line.backup] as string[];
      pids.push(line.primaryPid as number, line.backupPid as number);
      expect(pids.every((pid) => Number.isInteger(pid) && pid > 0)).toBe(true);
      await waitFor(async () => (await status(primaryUrl!)).backupAttached === true && (await fetch(`${door}/`)).status === 200, 'the pair to be up behind the front door');

      /** Starts a slow request through the door and returns once `nodeUrl` has run its task and the backup holds it. */
      const inFlight = async (nodeUrl: string, headers: Record<string, string>) => {
        const before = (await status(nodeUrl)).tasks as number;
        const response = fetch(`${door}/delay?ms=3000`, { headers });
        response.catch(() => {}); // awaited below; a failing test must not add an unhandled rejection
        await waitFor(async () => ((await status(nodeUrl)).tasks as number) > before, 'the slow request to start');
        return { response };
      };

      // Keyed: the primary dies with the request in flight; the door retries it on the backup once
      // it is live, and the backup answers with the original's response (it replayed the request).
      const keyed = await inFlight(primaryUrl!, { 'idempotency-key': 'slow-1' });
      const seq = (await status(primaryUrl!)).seq as number;
      await waitFor(async () => ((await status(backupUrl!)).receivedSeq as number) >= seq, 'the backup to hold the request');
      process.kill(pids[0]!, 'SIGKILL');
      const retried = await keyed.response;
      expect(retried.status, `${retried.status}: ${await retried.clone().text()}`).toBe(200);
      expect(retried.headers.get('ftjs-node')).toBe('backup');
      expect(retried.headers.get('ftjs-epoch')).toBe('2');
      expect(retried.headers.get('idempotent-replayed')).toBe('true');
      expect(((await retried.json()) as { requested: number }).requested).toBe(3000);
      await up.waitForLog((l) => /forwarding failed/.test(l.msg) && l.retriable === true, 'the front door to log the failed attempt');

      // Unkeyed: never sent twice. The live node dies with it in flight: 502 (a retried request
      // would instead wait for a live node and end in 503).
      const unkeyed = await inFlight(backupUrl!, {});
      process.kill(pids[1]!, 'SIGKILL');
      const failed = await unkeyed.response;
      expect(failed.status).toBe(502);
      expect(await failed.text()).toContain('the live node (backup) failed');
    } finally {
      up.child.kill('SIGINT');
      await up.exited;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    }
  });

  test('validates its heartbeat flags before starting anything', async () => {
    const bad = await ftjs(['up', '--port', '0', '--heartbeat-ms', 'soon']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--heartbeat-ms must be a positive integer, got "soon"');
    const inverted = await ftjs(['up', '--port', '0', '--heartbeat-ms', '200', '--heartbeat-timeout-ms', '150']);
    expect(inverted.code).not.toBe(0);
    expect(inverted.stderr).toContain('--heartbeat-timeout-ms (150) must exceed --heartbeat-ms (200)');
  });
});
