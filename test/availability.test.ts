// Issue 15, with real processes: a joining backup whose main thread stalls for 3 s right after its
// snapshot boot does not take that for its primary's death; and two primaries started on one shared
// directory: within --lease-ms only one of them serves.

import { afterEach, expect, test } from 'vitest';
import { type FtjsProcess, startBackup, startPrimary, status, waitFor } from './helpers.js';

const running: FtjsProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop('SIGKILL')));
});

const health = async (url: string): Promise<number> => (await fetch(`${url}/_ft/health`).catch(() => null))?.status ?? 0;

test('a joining backup stalled 3 s after its snapshot boot does not claim; it catches up and protects', async () => {
  const primary = await startPrimary('guest-apps/kv.js', { heartbeatTimeoutMs: 300, primaryArgs: ['--join-by-snapshot-after', '0'] });
  running.push(primary);
  for (let i = 0; i < 20; i++) expect((await fetch(`${primary.url}/kv/k${i}`, { method: 'PUT', body: `v${i}` })).status).toBe(200);
  const backup = await startBackup(primary.replication, primary.sharedDir, { heartbeatTimeoutMs: 300, env: { FTJS_TEST_JOIN_STALL_MS: '3000' } });
  running.push(backup);
  await backup.waitForLog((l) => /^joined by snapshot at seq \d+/.test(l.msg), 'the backup to join by snapshot', 30_000);
  await backup.waitForLog((l) => /did not run for \d+ ms .*silence meanwhile is not counted/.test(l.msg), 'the backup to notice its own stall', 15_000);
  // Protected once its replay backlog is within the bound (its heartbeats say so).
  // Generous: under two CPU hogs the catch-up after the stall took 5-7 s from the CLI, over 15 s inside vitest.
  await waitFor(async () => (await status(primary.url)).protection === 'protected', 'the primary to report itself protected', 40_000);
  expect((await fetch(`${primary.url}/kv/after`, { method: 'PUT', body: 'x' })).status).toBe(200);
  const s = await status(backup.url);
  expect(s.role).toBe('backup');
  expect(backup.lines.some((l) => /primary lost|claiming epoch/.test(String(l.msg)))).toBe(false);
  expect((await status(primary.url)).role).toBe('primary');
  expect(typeof (await status(primary.url)).replayBacklogMs).toBe('number');
  // Nor did the primary drop it: the backup's beacon thread kept moving while its main thread was held.
  expect((await status(primary.url)).epoch).toBe(1);
  expect(primary.lines.some((l) => /backup lost/.test(String(l.msg)))).toBe(false);
  expect(primary.lines.some((l) => /backup not suspected yet: .*beacon moved/.test(String(l.msg)))).toBe(true);
}, 90_000);

test('two primaries on one shared directory: within --lease-ms only one serves', async () => {
  const leaseMs = 500;
  const first = await startPrimary('guest-apps/kv.js', { primaryArgs: ['--lease-ms', String(leaseMs)] });
  running.push(first);
  expect(await health(first.url)).toBe(200);
  const second = await startPrimary('guest-apps/kv.js', { sharedDir: first.sharedDir, primaryArgs: ['--lease-ms', String(leaseMs)] });
  running.push(second);
  const servingAt = performance.now();
  // The newer epoch's node serves; the older one's next lease check halts it.
  await waitFor(async () => (await health(first.url)) !== 200, 'the first primary to stop serving', 10_000);
  const overlapMs = performance.now() - servingAt;
  expect(await health(second.url)).toBe(200);
  // A lease period, plus a tick and the readdir and the health probe's own round trip.
  expect(overlapMs).toBeLessThan(leaseMs + 500);
  await first.waitForLog((l) => /lease check: epoch \d+ exists/.test(String(l.msg)), 'the first primary to say why it stopped');
}, 60_000);

test('a backup that loses its claim to the node that serves joins it again, fresh, instead of exiting (a false suspicion costs a delay, never a node)', async () => {
  const primary = await startPrimary('guest-apps/kv.js', { heartbeatTimeoutMs: 300 });
  running.push(primary);
  const backup = await startBackup(primary.replication, primary.sharedDir, { heartbeatTimeoutMs: 300 });
  running.push(backup);
  await waitFor(async () => (await status(primary.url)).protection === 'protected', 'the primary to report itself protected', 30_000);
  // Epoch 2 is taken already when the backup comes to claim it (as when its primary claimed first).
  const { Arbiter } = await import('../dist/hypervisor/node/arbiter.js');
  expect((await new Arbiter(primary.sharedDir, 'someone-else').claim(2, 'primary')).result).toBe('won');
  primary.child.kill('SIGSTOP');
  try {
    await backup.waitForLog((l) => /lost the claim for epoch 2/.test(String(l.msg)), 'the backup to lose its claim', 15_000);
    await backup.waitForLog((l) => /joining it again as a fresh backup/.test(String(l.msg)), 'the backup to join again', 15_000);
    // The fresh backup dials the primary again (stopped: its handshakes time out); the process lives on.
    const rejoinedAt = backup.lines.findIndex((l) => /joining it again/.test(String(l.msg)));
    await backup.waitForLog((l) => /handshake timeout|cannot reach the primary/.test(String(l.msg)) && backup.lines.indexOf(l) > rejoinedAt, 'the fresh backup to dial', 20_000);
    expect(backup.exitCode).toBeNull();
  } finally {
    primary.child.kill('SIGCONT');
  }
}, 60_000);

test('a primary stopped past the timeout is fenced when it wakes, and joins the node that took over as a fresh backup: protected again, no acknowledged write lost', async () => {
  const primary = await startPrimary('guest-apps/kv.js', { heartbeatTimeoutMs: 300 });
  running.push(primary);
  // The backup takes backups once live: its logging channel's address is recorded with its epoch.
  const backup = await startBackup(primary.replication, primary.sharedDir, { heartbeatTimeoutMs: 300, backupArgs: ['--replication-port', '0'] });
  running.push(backup);
  await waitFor(async () => (await status(primary.url)).protection === 'protected', 'the primary to report itself protected', 30_000);
  const acked: string[] = [];
  const put = async (url: string, key: string) => {
    const res = await fetch(`${url}/kv/${key}`, { method: 'PUT', body: `v-${key}`, headers: { 'idempotency-key': key } });
    await res.arrayBuffer();
    if (res.status === 200) acked.push(key);
    return res.status;
  };
  for (let i = 0; i < 10; i++) expect(await put(primary.url, `before-${i}`)).toBe(200);

  primary.child.kill('SIGSTOP');
  try {
    await waitFor(async () => (await health(backup.url)) === 200, 'the backup to take over', 15_000);
    for (let i = 0; i < 10; i++) expect(await put(backup.url, `during-${i}`)).toBe(200);
  } finally {
    primary.child.kill('SIGCONT');
  }
  // Awake, it finds epoch 2 on the shared directory: it halts its outputs, then joins the winner.
  await primary.waitForLog((l) => /epoch 2 was claimed by another node|lease check: epoch 2 exists/.test(String(l.msg)), 'the old primary to learn it was fenced', 15_000);
  await primary.waitForLog(
    (l) => /joining the node that serves now, backup \(epoch 2\), at ws:\/\/127\.0\.0\.1:\d+, as a fresh backup/.test(String(l.msg)),
    'the old primary to join the winner',
    20_000,
  );
  // Same process, same HTTP port: a backup of the new primary, attached and protecting it.
  await waitFor(async () => (await status(backup.url)).protection === 'protected', 'the new primary to be protected again', 40_000);
  const old = await status(primary.url);
  expect(old.role).toBe('backup');
  expect(old.connected).toBe(true);
  expect(old.primary).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
  const live = await status(backup.url);
  expect(live.role).toBe('primary');
  expect(live.epoch).toBe(2);
  expect(live.backupAttached).toBe(true);
  expect(await health(primary.url)).not.toBe(200);
  expect(primary.exitCode).toBeNull();
  // Outputs wait for the rejoined backup's acks again, and nothing acknowledged was lost.
  for (let i = 0; i < 5; i++) expect(await put(backup.url, `after-${i}`)).toBe(200);
  for (const key of acked) {
    const res = await fetch(`${backup.url}/kv/${key}`);
    expect([key, res.status, ((await res.json()) as { value?: string }).value]).toEqual([key, 200, `v-${key}`]);
  }
  await waitFor(async () => ((await status(primary.url)).replayedSeq as number) >= ((await status(backup.url)).seq as number) - 5, 'the rejoined backup to replay the writes', 20_000);
}, 120_000);
