// Durable checkpoints and --restore-from (re-protection issue): real processes, kill -9, a real
// shared directory. A primary writes a snapshot of its VM and the log since it every N entries; after
// both nodes are lost, `ftjs primary --restore-from DIR` brings the service back from the newest valid
// checkpoint plus its log, skipping a corrupt or partly written checkpoint with a clear message.

import { appendFileSync, copyFileSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import { type FtjsProcess, ftjs, type LogLine, replayJson, startPair, startPrimary, status, TEST_SECRET, tempDir, waitFor } from './helpers.js';

const KV = 'guest-apps/kv.js';
const BANK = 'guest-apps/bank.js';

const running: FtjsProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop('SIGKILL')));
});

function track<T extends FtjsProcess>(p: T): T {
  running.push(p);
  return p;
}

async function kill9(...procs: FtjsProcess[]): Promise<void> {
  for (const p of procs) p.child.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}

interface CheckpointStatus {
  taken: number;
  inProgress: boolean;
  logWrittenSeq: number;
  logSyncedSeq: number;
  logError: string | null;
}

async function checkpointStatus(url: string): Promise<CheckpointStatus & { seq: number; stateHash: string; lastCheckpoint: { seq: number; pauseMs: number; writeMs: number; bytes: number } | null }> {
  const s = await status(url);
  return { ...(s.checkpoint as CheckpointStatus), seq: s.seq as number, stateHash: s.stateHash as string, lastCheckpoint: s.lastCheckpoint as never };
}

/** Waits until at least `taken` checkpoints are durable, none is in progress, and the log is written through `seq`. */
async function waitDurable(url: string, seq: number, taken = 1): Promise<{ stateHash: string; seq: number }> {
  return waitFor(
    async () => {
      const s = await checkpointStatus(url);
      if (s.taken >= taken && !s.inProgress && s.logWrittenSeq >= seq && s.logError === null) {
        // The state at that point: read twice so no task ran in between.
        const again = await checkpointStatus(url);
        if (again.stateHash === s.stateHash) return { stateHash: s.stateHash, seq: s.seq };
      }
      return null;
    },
    `checkpoints (${taken}) and the log written through seq ${seq}`,
    DURABLE_WAIT_MS,
  );
}

/**
 * Checkpoints compress the VM's memory and fsync: when this file starts beside the suite's heaviest
 * guest work (a clean clone, vitest's first minute), four of them took over 20 s.
 */
const DURABLE_WAIT_MS = 45_000;

async function put(url: string, key: string, value: string): Promise<number> {
  const res = await fetch(`${url}/kv/${key}`, { method: 'PUT', body: value });
  const text = await res.text();
  expect(res.status, `PUT /kv/${key}: ${text}`).toBe(200);
  return Number(res.headers.get('ftjs-seq'));
}

async function getValue(url: string, key: string): Promise<string | null> {
  const res = await fetch(`${url}/kv/${key}`);
  const body = (await res.json()) as { value?: string };
  return res.status === 200 ? (body.value ?? null) : null;
}

function files(dir: string, pattern: RegExp): string[] {
  return readdirSync(dir)
    .filter((n) => pattern.test(n))
    .sort();
}

async function restore(app: string, dir: string, extra: string[] = []): Promise<FtjsProcess & { url: string; restored: LogLine }> {
  const p = track(await startPrimary(app, { sharedDir: dir, primaryArgs: ['--restore-from', dir, ...extra] }));
  const restored = p.find((l) => /^RESTORED from /.test(l.msg));
  expect(restored, 'the RESTORED line').toBeDefined();
  return Object.assign(p, { restored: restored! });
}

describe('restore after both nodes are lost', { timeout: 120_000 }, () => {
  test('kill -9 primary and backup; --restore-from brings back every write the log held, with the state a clean replay gives; and again after a second loss', async () => {
    const dir = tempDir('ftjs-shared-');
    const trace = path.join(tempDir(), 'primary.trace');
    const pair = await startPair(KV, { sharedDir: dir, primaryArgs: ['--checkpoint-every', '25', '--trace', trace] });
    running.push(pair.primary, pair.backup);
    const written = new Map<string, string>();
    let lastSeq = 0;
    // Concurrent writers, so checkpoints are taken while requests are in flight.
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        for (let i = 0; i < 30; i++) {
          const key = `w${w}-${i}`;
          const value = `value-${w}-${i}-${'x'.repeat(i)}`;
          lastSeq = Math.max(lastSeq, await put(pair.primary.url, key, value));
          written.set(key, value);
        }
      }),
    );
    const before = await waitDurable(pair.primary.url, lastSeq, 3);
    await kill9(pair.primary, pair.backup);

    const first = await restore(KV, dir, ['--checkpoint-every', '25']);
    expect(first.restored.durableSeq as number).toBeGreaterThanOrEqual(lastSeq);
    expect(first.restored.chainBroken).toBeNull();
    expect(first.restored.msg).toMatch(new RegExp(`durable end of the log is seq ${first.restored.durableSeq as number}.*ftjs-epoch 1 with ftjs-seq > ${first.restored.durableSeq as number}`));
    expect(pair.primary.lines.filter((l) => /checkpoint failed/.test(l.msg))).toEqual([]);
    // After the first, a checkpoint deflates only the chunks written since and reuses the rest
    // (checkpoint-compress.ts); the restore below is from such a checkpoint.
    const durable = pair.primary.lines.filter((l) => /^checkpoint at seq \d+ durable/.test(l.msg));
    expect(durable.length).toBeGreaterThanOrEqual(3);
    const firstDeflated = durable[0]!.compressedChunks as number;
    expect(firstDeflated).toBeGreaterThan(0);
    expect(durable.slice(1).some((l) => (l.compressedChunks as number) < firstDeflated && (l.reusedChunks as number) > 0)).toBe(true);
    // The state right after the restore (before any request touches it): the primary's state when it
    // was killed, and what a clean replay of the primary's own trace gives.
    const restoredState = await checkpointStatus(first.url);
    expect(restoredState.stateHash).toBe(before.stateHash);
    const replay = await replayJson(trace, {}, ['--lenient']);
    expect(replay.summary.divergence).toBeNull();
    expect(replay.summary.finalStateHash).toBe(before.stateHash);
    expect((await status(first.url)).restoredFrom).toMatchObject({ durableSeq: first.restored.durableSeq });
    for (const [key, value] of written) expect(await getValue(first.url, key), key).toBe(value);

    // It serves and checkpoints on; lose it too, and restore again: the chain continues.
    let lastSeq2 = 0;
    for (let i = 0; i < 40; i++) {
      lastSeq2 = await put(first.url, `after-${i}`, `again-${i}`);
      written.set(`after-${i}`, `again-${i}`);
    }
    const before2 = await waitDurable(first.url, lastSeq2, 1);
    await kill9(first);
    const second = await restore(KV, dir, ['--checkpoint-every', '25']);
    expect(second.restored.durableSeq as number).toBeGreaterThanOrEqual(lastSeq2);
    expect((await checkpointStatus(second.url)).stateHash).toBe(before2.stateHash);
    for (const [key, value] of written) expect(await getValue(second.url, key), key).toBe(value);
    const epoch = (await status(second.url)).epoch as number;
    expect(epoch).toBe(3);
  });

  test('a corrupt checkpoint (one flipped byte) and a partly written one are skipped with a message naming each; the previous good one plus the log chain restores everything', async () => {
    const dir = tempDir('ftjs-shared-');
    const primary = track(await startPrimary(BANK, { sharedDir: dir, primaryArgs: ['--checkpoint-every', '15', '--checkpoint-keep', '4'] }));
    const accounts = ['alice', 'bob', 'carol'];
    for (const id of accounts) {
      const res = await fetch(`${primary.url}/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, balance: 10_000 }) });
      expect(res.status).toBe(201);
    }
    let lastSeq = 0;
    for (let i = 0; i < 60; i++) {
      const res = await fetch(`${primary.url}/transfer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ from: accounts[i % 3], to: accounts[(i + 1) % 3], amount: 1 + i }),
      });
      expect(res.status).toBe(201);
      await res.text();
      lastSeq = Number(res.headers.get('ftjs-seq'));
    }
    const accountsRes = await fetch(`${primary.url}/accounts`);
    const balances = await accountsRes.text();
    const before = await waitDurable(primary.url, Number(accountsRes.headers.get('ftjs-seq')), 4);
    await kill9(primary);

    const checkpoints = files(dir, /^checkpoint-\d{12}\.ftck$/).reverse(); // newest first
    expect(checkpoints.length).toBe(4);
    const [newest, second, third] = checkpoints.map((n) => path.join(dir, n)) as [string, string, string];
    // One flipped byte in the memory image of the newest; the second cut short as by a crash mid-write;
    // and a temporary file of a write that never finished (never even renamed).
    const bytes = readFileSync(newest);
    bytes[Math.floor(bytes.byteLength * 0.7)]! ^= 0x40;
    writeFileSync(newest, bytes);
    truncateSync(second, Math.floor(statSync(second).size / 2));
    writeFileSync(path.join(dir, 'checkpoint-000099999999.ftck.tmp-1-abcdef'), bytes.subarray(0, 1000));
    // And the newest log ends in a torn block, as a crash mid-write leaves it.
    const newestLog = path.join(dir, files(dir, /^log-\d{12}\.trace$/).pop()!);
    appendFileSync(newestLog, Buffer.from([0x40, 0, 0, 0, 0xf1, 1, 2, 3, 4, 5]));

    const restored = await restore(BANK, dir, ['--checkpoint-every', '15']);
    const skippedNewest = restored.find((l) => l.level >= 50 && l.msg.includes(newest))!;
    expect(skippedNewest.msg).toMatch(/^skipping checkpoint .*checksum mismatch.*trying the previous one/);
    const skippedSecond = restored.find((l) => l.level >= 50 && l.msg.includes(second))!;
    expect(skippedSecond.msg).toMatch(/^skipping checkpoint .*truncated.*partly written/);
    expect(restored.restored.checkpoint).toBe(third);
    expect(restored.restored.tornBlock).toMatchObject({ file: newestLog });
    expect(restored.restored.durableSeq as number).toBeGreaterThanOrEqual(lastSeq);
    expect((restored.restored.logs as string[]).length).toBeGreaterThanOrEqual(3);
    expect((await checkpointStatus(restored.url)).stateHash).toBe(before.stateHash);
    expect(await (await fetch(`${restored.url}/accounts`)).text()).toBe(balances);
    const audit = (await (await fetch(`${restored.url}/audit`)).json()) as { ok: boolean; transfers: number };
    expect(audit.ok).toBe(true);
    expect(audit.transfers).toBe(60);
  });

  test('with no valid checkpoint, or another guest, --restore-from refuses with a clear error', async () => {
    const dir = tempDir('ftjs-shared-');
    const primary = track(await startPrimary(KV, { sharedDir: dir, primaryArgs: ['--checkpoint-every', '10'] }));
    for (let i = 0; i < 12; i++) await put(primary.url, `k${i}`, `v${i}`);
    await waitDurable(primary.url, 0, 2);
    await primary.stop('SIGTERM');

    const other = await ftjs(['primary', BANK, '--port', '0', '--replication-port', '0', '--shared-dir', dir, '--restore-from', dir], { FTJS_SECRET: TEST_SECRET });
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/holds guest kv\.js .* but .*bank\.js has hash/);

    const broken = tempDir('ftjs-shared-');
    const newest = files(dir, /^checkpoint-\d{12}\.ftck$/).pop()!;
    copyFileSync(path.join(dir, newest), path.join(broken, newest));
    truncateSync(path.join(broken, newest), 20);
    const none = await ftjs(['primary', KV, '--port', '0', '--replication-port', '0', '--shared-dir', broken, '--restore-from', broken], { FTJS_SECRET: TEST_SECRET });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain(`no valid checkpoint: ${newest}: truncated`);
    expect(none.stdout).toContain(`skipping checkpoint ${path.join(broken, newest)}`);

    const empty = tempDir('ftjs-shared-');
    const nothing = await ftjs(['primary', KV, '--port', '0', '--replication-port', '0', '--shared-dir', empty, '--restore-from', empty], { FTJS_SECRET: TEST_SECRET });
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toMatch(/no checkpoint files/);
  });
});

describe('checkpoint files', () => {
  test('are pruned to --checkpoint-keep (with the logs only they needed); status shows the pause and write figures', async () => {
    const dir = tempDir('ftjs-shared-');
    const primary = track(await startPrimary(KV, { sharedDir: dir, primaryArgs: ['--checkpoint-every', '10', '--checkpoint-keep', '2'] }));
    // Rounds of writes, each past --checkpoint-every, each waited on: six checkpoints after the boot one.
    for (let round = 0; round < 6; round++) {
      let lastSeq = 0;
      for (let i = 0; i < 8; i++) lastSeq = await put(primary.url, `k${round}-${i}`, `v${i}`);
      await waitDurable(primary.url, lastSeq, round + 2);
    }
    const s = await checkpointStatus(primary.url);
    expect(s.lastCheckpoint).toMatchObject({ seq: expect.any(Number), pauseMs: expect.any(Number), writeMs: expect.any(Number), bytes: expect.any(Number) });
    expect(s.lastCheckpoint!.bytes).toBeGreaterThan(0);
    // No-op heartbeats count as entries, so checkpoints keep coming: freeze the node to look.
    primary.child.kill('SIGSTOP');
    const checkpoints = files(dir, /^checkpoint-\d{12}\.ftck$/);
    expect(checkpoints).toHaveLength(2);
    const logs = files(dir, /^log-/);
    // Each kept checkpoint has its log and nothing older survives. The log of a checkpoint still
    // being written may already exist (the chain continues at once): at most one, newer than all.
    const kept = checkpoints.map((c) => c.replace('checkpoint-', 'log-').replace('.ftck', '.trace'));
    expect(logs.slice(0, kept.length)).toEqual(kept);
    expect(logs.length - kept.length).toBeLessThanOrEqual(1);
    if (logs.length > kept.length) expect(logs[logs.length - 1]! > kept[kept.length - 1]!).toBe(true);
    expect(files(dir, /\.tmp-/).length).toBeLessThanOrEqual(1); // at most the one being written
  });

  test('--checkpoint-every-ms takes one after that long if the guest ran, and none while it is idle', async () => {
    const dir = tempDir('ftjs-shared-');
    const primary = track(await startPrimary(KV, { sharedDir: dir, primaryArgs: ['--checkpoint-every-ms', '150'] }));
    const seq = await put(primary.url, 'a', '1');
    await waitDurable(primary.url, seq, 2); // the boot checkpoint, then the timed one
    const taken = (await checkpointStatus(primary.url)).taken;
    // Idle: waiting several periods (observed through status, not a bare sleep) takes no checkpoint.
    const start = Date.now();
    await waitFor(async () => Date.now() - start > 600 && (await status(primary.url)).role === 'primary', 'several periods to pass');
    expect((await checkpointStatus(primary.url)).taken).toBe(taken);
  });
});

describe('checkpoints across a failover', () => {
  test('a backup that went live keeps the service durable: both nodes lost after the failover, restore brings back writes from both epochs', async () => {
    const dir = tempDir('ftjs-shared-');
    const args = ['--checkpoint-every', '50'];
    const pair = await startPair(KV, { sharedDir: dir, heartbeatTimeoutMs: 600, primaryArgs: args, backupArgs: args });
    track(pair.primary);
    track(pair.backup);
    for (let i = 0; i < 20; i++) await put(pair.primary.url, `before-${i}`, `b${i}`);
    await kill9(pair.primary);
    await waitFor(async () => (await fetch(`${pair.backup.url}/_ft/health`)).status === 200, 'the backup to go live');
    let last = 0;
    for (let i = 0; i < 20; i++) last = await put(pair.backup.url, `after-${i}`, `a${i}`);
    // The live backup took a checkpoint at go-live and writes the log after it.
    await waitDurable(pair.backup.url, last, 1);
    await kill9(pair.backup);

    const restored = track(await restore(KV, dir));
    for (let i = 0; i < 20; i++) {
      expect(await getValue(restored.url, `before-${i}`)).toBe(`b${i}`);
      expect(await getValue(restored.url, `after-${i}`)).toBe(`a${i}`);
    }
    expect((await status(restored.url)).epoch).toBe(3);
  });
});
