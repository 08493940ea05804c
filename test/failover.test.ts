// Failover without split brain (issue 4 acceptance): real processes, SIGKILL/SIGSTOP, a real shared
// directory, a cut logging channel. The drill checks the invariants of each round itself; these tests
// run it and also exercise the cases it does not cover (an unreachable shared directory).

import { existsSync, readFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { goLiveViolation } from '../dist/cli/drill-workload.js';
import { ftjs, type PairProcesses, send, startPair, status, waitFor } from './helpers.js';

interface DrillJson {
  timing: { heartbeatMs: number; heartbeatTimeoutMs: number; maxGoLiveMs: number };
  summary: { rounds: number; passed: number; writesAcked: number; writesLost: number; duplicates: number; goLiveMs: { max: number } };
  rounds: Array<{ violations: string[]; liveNode: string | null; writesAcked: number; epochs: Record<string, string[]> }>;
}

// kill-backup and partition rounds are covered by the simulator (test/sim.test.ts, npm run sim); a
// real SIGKILL and a real SIGSTOP stay here.
describe.each(['kill-primary', 'pause-primary'])('drill --fault %s', (fault) => {
  test('every acknowledged write survives, nothing applies twice, one speaker per epoch', async () => {
    const result = await ftjs(['drill', '--rounds', '1', '--fault', fault, '--seed', '42', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const drill = JSON.parse(result.stdout) as DrillJson;
    expect(drill.rounds[0]!.violations).toEqual([]);
    expect(drill.summary.passed).toBe(1);
    expect(drill.summary.writesAcked).toBeGreaterThan(20);
    expect(drill.summary.writesLost).toBe(0);
    expect(drill.summary.duplicates).toBe(0);
    const expectedLive = fault === 'kill-backup' ? 'primary' : fault === 'partition' ? drill.rounds[0]!.liveNode : 'backup';
    expect(drill.rounds[0]!.liveNode).toBe(expectedLive);
    for (const nodes of Object.values(drill.rounds[0]!.epochs)) expect(nodes.length).toBe(1);
    // Live within the heartbeat timeout plus the go-live budget (defaults: 300 + 1000 ms); the drill
    // would have failed the round otherwise.
    expect(drill.timing).toEqual({ heartbeatMs: 100, heartbeatTimeoutMs: 300, maxGoLiveMs: 1000 });
    expect(drill.summary.goLiveMs.max).toBeLessThanOrEqual(drill.timing.heartbeatTimeoutMs + drill.timing.maxGoLiveMs);
  });
});

test('the drill fails a round whose go-live exceeds the heartbeat timeout plus --max-go-live-ms', async () => {
  const timing = { heartbeatMs: 100, heartbeatTimeoutMs: 300, maxGoLiveMs: 1000 };
  expect(goLiveViolation(1300, timing)).toBeNull();
  expect(goLiveViolation(null, timing)).toBeNull(); // no go-live at all is its own violation
  expect(goLiveViolation(1301, timing)).toBe('go-live took 1301 ms from the fault, over the bound of 1300 ms (heartbeat timeout 300 ms + --max-go-live-ms 1000)');
  const refused = await ftjs(['drill', '--fault', 'kill-primary', '--max-go-live-ms', '0']);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain('--max-go-live-ms must be a positive integer, got "0"');
  const inverted = await ftjs(['drill', '--fault', 'kill-primary', '--heartbeat-ms', '100', '--heartbeat-timeout-ms', '100']);
  expect(inverted.code).not.toBe(0);
  expect(inverted.stderr).toContain('--heartbeat-timeout-ms (100) must exceed --heartbeat-ms (100)');
});

// Consecutive failovers of one service with fresh backups joining each live node are covered by the
// simulator (joins by snapshot under faults) and, with real processes and SIGKILL, by test/up.test.ts.
test('drill --reprotect is refused for any fault but kill-primary, saying why', async () => {
  const refused = await ftjs(['drill', '--rounds', '1', '--fault', 'kill-backup', '--reprotect']);
  expect(refused.code).not.toBe(0);
  expect(refused.stderr).toContain('--reprotect drills consecutive failovers of one service: use it with --fault kill-primary');
});

describe('shared directory', () => {
  let pair: PairProcesses | null = null;
  afterEach(async () => {
    await pair?.stop();
    pair = null;
  });

  test('unreachable: the backup never goes live on a guess; it waits, and goes live once the directory is back', async () => {
    pair = await startPair('guest-apps/kv.js');
    const { primary, backup, sharedDir } = pair;
    expect((await send(primary.url, { method: 'PUT', path: '/kv/k', body: 'acked' })).status).toBe(200);
    const hidden = `${sharedDir}.away`;
    renameSync(sharedDir, hidden);
    primary.child.kill('SIGKILL');
    // The backup notices, drains and tries to claim: the directory is gone, so it must keep waiting.
    await backup.waitForLog((l) => /shared directory unreachable/.test(l.msg), 'the backup to find the directory unreachable');
    // It keeps trying (every 250 ms) but says so only every few seconds, with how long and how often.
    const reminder = await backup.waitForLog((l) => /^shared directory still unreachable for \d+ s, \d+ attempts/.test(l.msg), 'a reminder that it still waits');
    expect(reminder.unreachableAttempts).toBeGreaterThan(1);
    expect(backup.lines.filter((l) => /unreachable/.test(l.msg))).toHaveLength(2);
    expect((await fetch(`${backup.url}/_ft/health`)).status).toBe(503);
    expect((await status(backup.url)).role).toBe('claiming');
    expect((await send(backup.url, { method: 'GET', path: '/kv/k' })).status).toBe(503);

    renameSync(hidden, sharedDir);
    await waitFor(async () => (await fetch(`${backup.url}/_ft/health`)).status === 200, 'the backup to go live once the directory is back');
    const get = await send(backup.url, { method: 'GET', path: '/kv/k' });
    expect(JSON.parse(get.body).value).toBe('acked');
  });

  test('unreachable: a primary whose backup died never goes alone on a guess; it holds every output, and wins the epoch once the directory is back', async () => {
    pair = await startPair('guest-apps/kv.js', { heartbeatTimeoutMs: 600 });
    const { primary, backup, sharedDir } = pair;
    expect((await send(primary.url, { method: 'PUT', path: '/kv/k', body: 'acked' })).status).toBe(200);
    const hidden = `${sharedDir}.away`;
    const epoch2 = (dir: string) => path.join(dir, 'epoch-0000000002');
    renameSync(sharedDir, hidden);
    backup.child.kill('SIGKILL');
    await primary.waitForLog((l) => /^backup lost: /.test(l.msg), 'the primary to declare its backup lost');
    await primary.waitForLog((l) => /shared directory unreachable/.test(l.msg), 'the primary to find the directory unreachable');
    expect((await status(primary.url)).role).toBe('claiming');
    expect((await fetch(`${primary.url}/_ft/health`)).status).toBe(503);

    // A keyed write still runs (the primary takes traffic while it claims), but its response is held.
    let answered = false;
    const before = (await status(primary.url)).tasks as number;
    const held = fetch(`${primary.url}/kv/k`, { method: 'PUT', body: 'while away', headers: { 'idempotency-key': 'away-1' } }).then((res) => {
      answered = true;
      return res;
    });
    held.catch(() => {}); // awaited below
    await waitFor(async () => {
      const s = await status(primary.url);
      return (s.tasks as number) > before && (s.heldOutputs as number) >= 1;
    }, 'the PUT to run and its response to be held');
    // Many attempts later (the reminder comes every few seconds), still nothing released, no epoch 2.
    await primary.waitForLog((l) => /^shared directory still unreachable for \d+ s, \d+ attempts/.test(l.msg), 'a reminder that it still waits');
    expect(answered).toBe(false);
    expect((await fetch(`${primary.url}/_ft/health`)).status).toBe(503);
    expect((await status(primary.url)).role).toBe('claiming');
    expect(existsSync(epoch2(hidden))).toBe(false);
    expect(existsSync(sharedDir)).toBe(false);

    renameSync(hidden, sharedDir);
    const res = await held;
    expect(res.status).toBe(200);
    expect(res.headers.get('ftjs-epoch')).toBe('2');
    expect(res.headers.get('ftjs-node')).toBe('primary');
    expect(JSON.parse(readFileSync(epoch2(sharedDir), 'utf8'))).toMatchObject({ epoch: 2, nodeId: 'primary', role: 'primary' });
    expect((await fetch(`${primary.url}/_ft/health`)).status).toBe(200);
    await primary.waitForLog((l) => /^shared directory reachable again after \d+ s/.test(l.msg), 'the end of the outage in the log');
    await primary.waitForLog((l) => /^released \d+ held outputs/.test(l.msg) && (l.releasedOutputs as number) >= 1, 'the release of the held outputs in the log');
    await primary.waitForLog((l) => /^won epoch 2 /.test(l.msg) && typeof l.claimMs === 'number', 'the claim time in the log');
    expect(JSON.parse((await send(primary.url, { method: 'GET', path: '/kv/k' })).body).value).toBe('while away');
  });
});
