// Failover without split brain (issue 4 acceptance): real processes, SIGKILL/SIGSTOP, a real shared
// directory, a cut logging channel. The drill checks the invariants of each round itself; these tests
// run it and also exercise the cases it does not cover (an unreachable shared directory).

import { renameSync } from 'node:fs';
import { afterEach, describe, expect, test } from 'vitest';
import { ftjs, send, startPair, status, waitFor, type PairProcesses } from './helpers.js';

interface DrillJson {
  summary: { rounds: number; passed: number; writesAcked: number; writesLost: number; duplicates: number; goLiveMs: { max: number } };
  rounds: Array<{ violations: string[]; liveNode: string | null; writesAcked: number; epochs: Record<string, string[]> }>;
}

describe.each(['kill-primary', 'kill-backup', 'pause-primary', 'partition'])('drill --fault %s', (fault) => {
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
  });
});

test('drill --reprotect: one service through consecutive failovers, a fresh backup joining each new live node; every epoch clean', async () => {
  const result = await ftjs(['drill', '--rounds', '2', '--fault', 'kill-primary', '--reprotect', '--seed', '42', '--json']);
  expect(result.code, result.stderr).toBe(0);
  const drill = JSON.parse(result.stdout) as DrillJson & { reprotect: boolean; rounds: Array<{ joinMs: number | null; joinBytes: number | null }> };
  expect(drill.reprotect).toBe(true);
  expect(drill.summary).toMatchObject({ rounds: 2, passed: 2, writesLost: 0, duplicates: 0 });
  // The same service: each round's live node is the previous round's fresh backup, in the next epoch.
  expect(drill.rounds.map((r) => r.liveNode)).toEqual(['node-1', 'node-2']);
  for (const r of drill.rounds) {
    expect(r.violations).toEqual([]);
    expect(r.writesAcked).toBeGreaterThan(20);
    expect(r.joinBytes).toBeGreaterThan(0);
  }
  expect(Object.keys(drill.rounds[1]!.epochs).sort()).toEqual(['1', '2', '3']);
  for (const nodes of Object.values(drill.rounds[1]!.epochs)) expect(nodes.length).toBe(1);
  // A re-protect drill only makes sense for kill-primary.
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
    await backup.waitForLog((l) => /shared directory unreachable/.test(l.msg) && l !== backup.find((x) => /shared directory unreachable/.test(x.msg)), 'a second attempt');
    expect((await fetch(`${backup.url}/_ft/health`)).status).toBe(503);
    expect((await status(backup.url)).role).toBe('claiming');
    expect((await send(backup.url, { method: 'GET', path: '/kv/k' })).status).toBe(503);

    renameSync(hidden, sharedDir);
    await waitFor(async () => (await fetch(`${backup.url}/_ft/health`)).status === 200, 'the backup to go live once the directory is back');
    const get = await send(backup.url, { method: 'GET', path: '/kv/k' });
    expect(JSON.parse(get.body).value).toBe('acked');
  });
});
