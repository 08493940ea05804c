// Durable checkpoints without a shared disk (issue 18): each node checkpoints to its own
// --checkpoint-dir, the arbiter (shared directory or etcd) records which node's directory holds the
// newest durable checkpoint, and a restore refuses an older directory, naming the one to use.
import { cpSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { Arbiter } from '../dist/hypervisor/node/arbiter.js';
import { EtcdArbiter } from '../dist/hypervisor/node/arbiter-etcd.js';
import { type CheckpointRecord, newestNamedSeq, olderThanRecorded, readDirRecord, recordFor, writeDirRecord } from '../dist/hypervisor/node/checkpoint-record.js';
import { rejoinTarget, replicationRecordFor, WINNER_LOOKUP_MS } from '../dist/hypervisor/node/replication-record.js';
import { EXIT_LOST_EPOCH } from '../dist/hypervisor/node/role.js';
import { useEtcd } from './etcd-cluster.js';
import { type FtjsProcess, ftjs, spawnFtjs, TEST_SECRET, tempDir, waitFor } from './helpers.js';

describe('the record', () => {
  test('shared directory: one record per epoch, the newest epoch wins; a directory older than the record is refused with where to go', async () => {
    const dir = tempDir('ftjs-shared-');
    expect(await readDirRecord(dir)).toBeNull();
    expect(await writeDirRecord(dir, recordFor(1, 'a', '/data/a', 40))).toBe(true);
    expect(await writeDirRecord(dir, recordFor(1, 'a', '/data/a', 90))).toBe(true);
    expect((await readDirRecord(dir))?.seq).toBe(90);
    expect(await writeDirRecord(dir, recordFor(2, 'b', '/data/b', 120))).toBe(true);
    const r = (await readDirRecord(dir))!;
    expect(r).toMatchObject({ epoch: 2, nodeId: 'b', dir: '/data/b', seq: 120 });
    expect(olderThanRecorded(r, '/data/b', 120)).toBeNull();
    expect(olderThanRecorded(null, '/anything', 1)).toBeNull();
    expect(olderThanRecorded(r, '/data/a', 90)).toMatch(/--restore-from \/data\/a: its newest checkpoint or log begins at seq 90, but the arbiter records .* seq 120 .* in \/data\/b on node b/);
    // The directory arbiter records only for the newest epoch.
    const arbiter = new Arbiter(dir, 'c');
    expect((await arbiter.claim(1, 'primary')).result).toBe('won');
    expect(await arbiter.recordCheckpoint(recordFor(1, 'c', '/data/c', 5))).toBe(true);
    expect((await arbiter.claim(2, 'primary')).result).toBe('won');
    expect(await arbiter.recordCheckpoint(recordFor(1, 'c', '/data/c', 500))).toBe(false);
    expect((await arbiter.checkpointRecord())?.seq).toBe(120);
  });
});

const etcd = useEtcd();

const KV = 'guest-apps/kv.js';

// Where each epoch's holder takes backups (hypervisor/node/replication-record.ts): what a node that
// this epoch fences reads to join it as a fresh backup instead of exiting.
for (const kind of ['shared-dir', 'etcd'] as const) {
  test(`${kind}: the replication record rides with its epoch: written only by the newest epoch's holder, read per epoch; a fenced node joins the newest holder`, async () => {
    const shared = tempDir('ftjs-shared-');
    const where = etcd.arbiterUrl(`replrec-${process.pid}`);
    const arbiter = (id: string) => (kind === 'etcd' ? new EtcdArbiter(where, id) : new Arbiter(shared, id));
    const [a, b, c] = [arbiter('a'), arbiter('b'), arbiter('c')];
    // A simulated clock for the lookup's wait: timers fire at once, moving the clock on.
    let nowMs = 0;
    const world = {
      clock: { monoMs: () => nowMs, wallMs: () => nowMs },
      timers: { after: (ms: number, fn: () => void) => ((nowMs += ms), setImmediate(fn), { cancel() {} }), soon: setImmediate, afterCurrentJob: queueMicrotask, every: () => ({ cancel() {} }) },
    };
    const fenced = { reason: 'lease check: epoch 2 exists', exitCode: EXIT_LOST_EPOCH };
    try {
      // Nothing claimed or recorded (an older ftjs's directory reads the same): no address, after waiting it out.
      expect(await a.replicationRecord(1)).toBeNull();
      expect(await rejoinTarget(fenced, a, 'a', world, 250, null)).toEqual(fenced);
      expect(nowMs).toBeGreaterThanOrEqual(WINNER_LOOKUP_MS - 250);
      expect((await a.claim(1, 'primary')).result).toBe('won');
      expect(await a.recordReplication(replicationRecordFor(1, 'a', 'ws://127.0.0.1:9091', 'now'))).toBe(true);
      expect(await b.replicationRecord(1)).toMatchObject({ epoch: 1, nodeId: 'a', url: 'ws://127.0.0.1:9091' });
      // Its own epoch's holder is no one to join.
      expect(await rejoinTarget(fenced, a, 'a', world, 250, null)).toEqual(fenced);
      // Epoch 2's holder takes no backups: recorded as none; the fenced node exits at once (no wait).
      expect((await b.claim(2, 'backup')).result).toBe('won');
      expect(await a.recordReplication(replicationRecordFor(1, 'a', 'ws://127.0.0.1:9092', 'now'))).toBe(false); // not the newest any more
      expect((await b.replicationRecord(1))?.url).toBe('ws://127.0.0.1:9091');
      expect(await b.recordReplication(replicationRecordFor(2, 'b', null, 'now'))).toBe(true);
      nowMs = 0;
      expect(await rejoinTarget(fenced, a, 'a', world, 250, null)).toEqual(fenced);
      expect(nowMs).toBe(0);
      // A wildcard listener names no address either.
      expect(replicationRecordFor(3, 'c', 'ws://0.0.0.0:9093', 'now').url).toBeNull();
      // Epoch 3's holder listens: the fenced node joins it; other halts never rejoin.
      expect((await c.claim(3, 'primary')).result).toBe('won');
      expect(await c.recordReplication(replicationRecordFor(3, 'c', 'wss://node-c:9093', 'now'))).toBe(true);
      expect(await rejoinTarget(fenced, a, 'a', world, 250, null)).toEqual({ ...fenced, rejoin: true, rejoinUrl: 'wss://node-c:9093', winner: { nodeId: 'c', epoch: 3 } });
      expect(await rejoinTarget({ reason: 'diverged', exitCode: 76 }, a, 'a', world, 250, null)).toEqual({ reason: 'diverged', exitCode: 76 });
    } finally {
      for (const x of [a, b, c]) if (x instanceof EtcdArbiter) await x.close();
    }
  });
}

async function put(url: string, key: string, value: string): Promise<void> {
  const r = await fetch(`${url}/kv/${key}`, { method: 'PUT', body: value });
  expect(r.status).toBe(200);
}

for (const kind of ['shared-dir', 'etcd'] as const) {
  test(`${kind}: the arbiter names the node and directory of the newest checkpoint; restore refuses an older directory and restores from that one`, async () => {
    const shared = tempDir('ftjs-shared-');
    const arbiterArgs = kind === 'etcd' ? ['--arbiter', etcd.arbiterUrl(`ckrec-${process.pid}`)] : ['--shared-dir', shared];
    const reader = kind === 'etcd' ? new EtcdArbiter(etcd.arbiterUrl(`ckrec-${process.pid}`), 'reader') : new Arbiter(shared, 'reader');
    const dirA = tempDir('ftjs-node-a-');
    const running: FtjsProcess[] = [];
    const start = (args: string[], id: string) => {
      const p = spawnFtjs(['primary', KV, '--port', '0', '--replication-port', '0', '--node-id', id, ...arbiterArgs, ...args], { FTJS_SECRET: TEST_SECRET });
      running.push(p);
      return p;
    };
    try {
      const a = start(['--checkpoint-every', '10', '--checkpoint-dir', dirA], 'node-a');
      const url = (await a.waitForLog((l) => typeof l.url === 'string' && typeof l.replication === 'string', 'node-a to serve')).url as string;
      const first = await waitFor(async () => (await reader.checkpointRecord()) ?? null, 'the boot checkpoint to be recorded');
      expect(first).toMatchObject({ epoch: 1, nodeId: 'node-a', dir: path.resolve(dirA) });
      // Another node's directory that holds only that first checkpoint.
      const dirB = tempDir('ftjs-node-b-');
      cpSync(dirA, dirB, { recursive: true });
      const copied = await newestNamedSeq(dirB);
      expect(copied).toBeGreaterThanOrEqual(first.seq);
      for (let i = 0; i < 30; i++) await put(url, `k${i}`, `v${i}`);
      const newer = await waitFor(async () => {
        const r: CheckpointRecord | null = await reader.checkpointRecord();
        return r !== null && r.seq > copied ? r : null;
      }, 'a newer checkpoint to be recorded');
      expect(newer.dir).toBe(path.resolve(dirA));
      a.child.kill('SIGKILL');
      await a.exited;

      const refused = await ftjs(['primary', KV, '--port', '0', '--replication-port', '0', '--node-id', 'node-b', ...arbiterArgs, '--restore-from', dirB], { FTJS_SECRET: TEST_SECRET });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`--restore-from ${dirB}: its newest checkpoint or log begins at seq ${copied},`);
      expect(refused.stderr).toMatch(new RegExp(`records a newer durable checkpoint at seq \\d+ .* in ${path.resolve(dirA).replace(/[/\\-]/g, '\\$&')} on node node-a`));

      const restored = start(['--restore-from', dirA], 'node-b');
      const url2 = (await restored.waitForLog((l) => typeof l.url === 'string' && typeof l.replication === 'string', 'the restore to serve', 30_000)).url as string;
      expect(
        restored.lines.some((l) =>
          /the arbiter records the newest durable checkpoint at seq \d+ in .* on node node-a \(host .*\); the newest checkpoint or log in .* begins at seq \d+/.test(String(l.msg)),
        ),
      ).toBe(true);
      const got = await fetch(`${url2}/kv/k29`);
      expect(await got.json()).toEqual({ key: 'k29', value: 'v29' });
    } finally {
      await Promise.all(running.map((p) => p.stop('SIGKILL')));
      if (reader instanceof EtcdArbiter) await reader.close();
    }
  }, 120_000);
}

describe('a channel on a wildcard address', () => {
  test('records the --replication-advertise-host for a fenced node to dial; without it, no address, and says why', async () => {
    const started: FtjsProcess[] = [];
    try {
      const primaryOn = async (extra: string[]) => {
        const dir = tempDir('ftjs-shared-');
        const p = spawnFtjs(['primary', 'guest-apps/kv.js', '--port', '0', '--replication-host', '0.0.0.0', '--replication-port', '0', '--shared-dir', dir, ...extra], {
          FTJS_SECRET: TEST_SECRET,
        });
        started.push(p);
        const line = await p.waitForLog((l) => typeof l.replication === 'string', 'the primary to serve');
        return { p, dir, port: new URL(line.replication as string).port };
      };
      const advertised = await primaryOn(['--replication-advertise-host', '127.0.0.1']);
      const named = await waitFor(() => new Arbiter(advertised.dir, 'reader').replicationRecord(1), 'the replication record of epoch 1');
      expect(named.url).toBe(`ws://127.0.0.1:${advertised.port}`);

      const wildcard = await primaryOn([]);
      const record = await waitFor(() => new Arbiter(wildcard.dir, 'reader').replicationRecord(1), 'the replication record of epoch 1');
      expect(record.url).toBeNull();
      expect(wildcard.p.find((l) => l.msg.includes('no --replication-advertise-host names it'))?.msg).toBe(
        `the logging channel listens on a wildcard address (ws://0.0.0.0:${wildcard.port}) and no --replication-advertise-host names it: no address recorded, so a node this one fences exits instead of joining it`,
      );
    } finally {
      await Promise.all(started.map((p) => p.stop('SIGKILL')));
    }
  });

  test('refuses a wildcard or malformed advertised host, naming the flag', async () => {
    const wildcard = await ftjs(['primary', 'guest-apps/kv.js', '--replication-advertise-host', '0.0.0.0']);
    expect(wildcard.code).toBe(1);
    expect(wildcard.stderr).toContain('--replication-advertise-host must name an address others can dial, not the wildcard "0.0.0.0"');
    const malformed = await ftjs(['backup', '--primary', 'ws://127.0.0.1:1', '--replication-advertise-host', 'a b']);
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toContain('--replication-advertise-host must be a host name or an IP address, got "a b"');
  });
});
