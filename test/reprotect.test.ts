// Re-protection, first half: a new backup joins a running primary from a snapshot of its VM
// (compressed, in chunks) and then the log after it, while the primary keeps serving. Afterwards it
// holds the primary's exact state, and a kill of the primary makes it live with every acknowledged write.

import { afterEach, expect, test } from 'vitest';
import { type FtjsProcess, startBackup, startPrimary, status, waitFor, waitInSync } from './helpers.js';

const running: FtjsProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop('SIGKILL')));
});

test('a backup joins a primary holding 20+ MiB of guest state, under load, by snapshot; then takes over with every acknowledged write', async () => {
  const primary = await startPrimary('guest-apps/kv.js', { heartbeatTimeoutMs: 600, primaryArgs: ['--join-by-snapshot-after', '0', '--max-request-bytes', String(2 * 1024 * 1024)] });
  running.push(primary);
  // 32 values of 1 MiB: the guest holds well over 20 MiB of state before any backup exists.
  const big = 'x'.repeat(1024 * 1024);
  for (let i = 0; i < 32; i++) expect((await fetch(`${primary.url}/kv/big-${i}`, { method: 'PUT', body: big + i })).status).toBe(200);
  const engineBaseBytes = 16 * 1024 * 1024;
  expect(((await status(primary.url)).memoryBytes as number) - engineBaseBytes).toBeGreaterThan(20 * 1024 * 1024);

  // Load while the backup joins: every acknowledged write is remembered.
  const acked = new Map<string, string>();
  let stop = false;
  const writers = Array.from({ length: 3 }, async (_, w) => {
    for (let i = 0; !stop; i++) {
      const key = `w${w}-${i}`;
      const res = await fetch(`${primary.url}/kv/${key}`, { method: 'PUT', body: `v${i}` }).catch(() => null);
      if (res && res.status === 200) acked.set(key, `v${i}`);
      await res?.text();
    }
  });
  const backup = await startBackup(primary.replication, primary.sharedDir, { heartbeatTimeoutMs: 600 });
  running.push(backup);
  const joined = await backup.waitForLog((l) => /^joined by snapshot at seq \d+/.test(l.msg), 'the backup to join by snapshot', 30_000);
  expect(joined.bytes as number).toBeGreaterThan(0);
  await waitFor(() => acked.size > 50, 'writes after the join');
  stop = true;
  await Promise.all(writers);

  // The backup holds the primary's exact state at the same seq.
  const synced = await waitInSync(primary.url, backup.url);
  expect(synced.seq).toBeGreaterThan(joined.seq as number);
  const st = await status(primary.url);
  expect((st.lastJoinSnapshot as { pauseMs: number }).pauseMs).toBeGreaterThan(0);

  primary.child.kill('SIGKILL');
  await waitFor(async () => (await fetch(`${backup.url}/_ft/health`)).status === 200, 'the backup to go live');
  expect((await status(backup.url)).epoch).toBe(2);
  for (const [key, value] of acked) {
    const res = await fetch(`${backup.url}/kv/${key}`);
    expect(res.status, key).toBe(200);
    expect(((await res.json()) as { value: string }).value).toBe(value);
  }
  const one = await fetch(`${backup.url}/kv/big-7`);
  expect(((await one.json()) as { value: string }).value).toBe(big + 7);
});

test('incremental join: a backup offers the newest checkpoint on the shared directory as a base and receives only the pages changed since; it reaches the exact state', async () => {
  const primary = await startPrimary('guest-apps/kv.js', {
    heartbeatTimeoutMs: 600,
    primaryArgs: ['--join-by-snapshot-after', '0', '--checkpoint-every-ms', '300', '--max-request-bytes', String(2 * 1024 * 1024)],
  });
  running.push(primary);
  // 16 values of 1 MiB of varied (poorly compressible) text, then a checkpoint of that state.
  const value = (i: number) =>
    Array.from({ length: 1024 * 64 }, (_, j) => ((i * 7919 + j * 104729) % 1_000_003).toString(36).padStart(4, '0').slice(0, 4))
      .join('')
      .slice(0, 1024 * 1024);
  for (let i = 0; i < 16; i++) expect((await fetch(`${primary.url}/kv/big-${i}`, { method: 'PUT', body: value(i) })).status).toBe(200);
  const filledSeq = (await status(primary.url)).seq as number;
  // --checkpoint-every-ms 300: the time trigger writes a checkpoint of the filled state.
  await waitFor(async () => (((await status(primary.url)).lastCheckpoint as { seq: number } | null)?.seq ?? 0) >= filledSeq, 'a checkpoint of the filled state');
  // A few writes after that checkpoint: the delta holds these pages, not the 16 MiB.
  for (let i = 0; i < 10; i++) expect((await fetch(`${primary.url}/kv/small-${i}`, { method: 'PUT', body: `after-${i}` })).status).toBe(200);

  const backup = await startBackup(primary.replication, primary.sharedDir, { heartbeatTimeoutMs: 600 });
  running.push(backup);
  const joined = await backup.waitForLog((l) => /^joined by snapshot at seq \d+/.test(l.msg), 'the backup to join by snapshot', 30_000);
  expect(joined.kind).toBe('incremental');
  const memoryBytes = joined.memoryBytes as number;
  // Far less than the memory, and far less than the whole memory compressed would be (16 MiB of varied text).
  expect(joined.bytes as number).toBeLessThan(memoryBytes / 20);
  const sent = (await status(primary.url)).lastJoinSnapshot as { kind: string; bytes: number; pages: number };
  expect(sent).toMatchObject({ kind: 'incremental', bytes: joined.bytes });
  // Pages changed since the newest checkpoint (0 if the time trigger took one after the small writes too).
  expect(sent.pages).toEqual(expect.any(Number));
  await waitInSync(primary.url, backup.url);
  primary.child.kill('SIGKILL');
  await waitFor(async () => (await fetch(`${backup.url}/_ft/health`)).status === 200, 'the backup to go live');
  expect(await (await fetch(`${backup.url}/kv/big-5`)).json()).toMatchObject({ value: value(5) });
  expect(await (await fetch(`${backup.url}/kv/small-9`)).json()).toMatchObject({ value: 'after-9' });
});

test('a primary alone keeps at most --max-log-buffer-bytes of history, trimming before each batch, and a backup that comes later joins by snapshot', async () => {
  const boundBytes = 20_000;
  const primary = await startPrimary('guest-apps/kv.js', { primaryArgs: ['--max-log-buffer-bytes', String(boundBytes), '--join-by-snapshot-after', '1000000'] });
  running.push(primary);
  const value = 'v'.repeat(2_000);
  for (let round = 0; round < 5; round++) {
    // Concurrent requests: the VM runs them as one batch, appended to the log at once.
    const statuses = await Promise.all(Array.from({ length: 30 }, (_, i) => fetch(`${primary.url}/kv/k${round}-${i}`, { method: 'PUT', body: value }).then((r) => r.status)));
    expect(statuses.every((s) => s === 200 || s === 201)).toBe(true);
    const s = await status(primary.url);
    const retained = s.retainedLog as { firstSeq: number; bytes: number };
    expect(retained.bytes).toBeLessThanOrEqual(boundBytes + 31 * 2_200);
    expect(s.role).toBe('primary');
  }
  // By now far more than the bound was appended: the oldest history is gone, never the node.
  const s = await status(primary.url);
  expect((s.retainedLog as { firstSeq: number }).firstSeq).toBeGreaterThan(1);
  expect(s.logBytesAppended as number).toBeGreaterThan(5 * boundBytes);
  const backup = await startBackup(primary.replication, primary.sharedDir, { nodeId: 'late-backup' });
  running.push(backup);
  await backup.waitForLog((l) => /^joined by snapshot/.test(l.msg), 'the late backup to join by snapshot');
  await waitInSync(primary.url, backup.url);
});
