// A pair whose epoch claims go to a real etcd (issue 18): `--arbiter etcd://...` instead of a shared
// directory, on primary and backup, and on `ftjs drill`.
import { expect, test } from 'vitest';
import { EtcdArbiter } from '../dist/hypervisor/node/arbiter-etcd.js';
import { useEtcd } from './etcd-cluster.js';
import { type FtjsProcess, ftjs, spawnFtjs, status, TEST_SECRET, waitFor } from './helpers.js';

const etcd = useEtcd();

const timing = ['--heartbeat-ms', '100', '--heartbeat-timeout-ms', '1000'];

test('a pair on etcd fails over: the backup claims epoch 2 through etcd and serves', async () => {
  const arbiter = etcd.arbiterUrl(`pair-${process.pid}`);
  const nodes: FtjsProcess[] = [];
  try {
    const primary = spawnFtjs(['primary', 'guest-apps/kv.js', '--port', '0', '--replication-port', '0', '--arbiter', arbiter, '--node-id', 'p', ...timing], { FTJS_SECRET: TEST_SECRET });
    nodes.push(primary);
    const p = await primary.waitForLog((l) => typeof l.replication === 'string' && typeof l.url === 'string', 'the primary to serve');
    const backup = spawnFtjs(['backup', '--primary', p.replication as string, '--port', '0', '--arbiter', arbiter, '--node-id', 'b', ...timing], { FTJS_SECRET: TEST_SECRET });
    nodes.push(backup);
    const b = await backup.waitForLog((l) => typeof l.url === 'string' && typeof l.primary === 'string', 'the backup to listen');
    await waitFor(async () => (await status(p.url as string)).backupAttached === true || null, 'the backup to attach');
    const put = await fetch(`${p.url as string}/kv/before`, { method: 'PUT', body: 'failover' });
    expect(put.status).toBe(200);
    const primaryStatus = await status(p.url as string);
    expect(primaryStatus.arbiter).toEqual({ kind: 'etcd', location: arbiter });
    expect(primaryStatus.epoch).toBe(1);

    primary.child.kill('SIGKILL');
    await backup.waitForLog((l) => /^LIVE: won epoch 2/.test(l.msg), 'the backup to go live in epoch 2', 20_000);
    const live = await status(b.url as string);
    expect(live).toMatchObject({ epoch: 2, arbiter: { kind: 'etcd', location: arbiter } });
    const got = await fetch(`${b.url as string}/kv/before`);
    expect(await got.json()).toEqual({ key: 'before', value: 'failover' });
    // etcd itself records the claim: newest epoch 2, held by the backup.
    const reader = new EtcdArbiter(arbiter, 'reader');
    try {
      expect(await reader.newestEpoch()).toBe(2);
      expect((await reader.owner(2))?.nodeId).toBe('b');
    } finally {
      await reader.close();
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
  }
}, 60_000);

test('ftjs drill --arbiter etcd://... --fault kill-primary passes with nothing lost', async () => {
  // Timing bounds with room for a loaded 2-core machine: this test is about the claims going through etcd.
  const r = await ftjs([
    'drill',
    '--arbiter',
    etcd.arbiterUrl(`drill-${process.pid}`),
    '--rounds',
    '2',
    '--fault',
    'kill-primary',
    '--json',
    '--seed',
    '7',
    '--heartbeat-timeout-ms',
    '1000',
    '--max-go-live-ms',
    '3000',
  ]);
  expect(r.code, r.stderr.slice(-3000)).toBe(0);
  const report = JSON.parse(r.stdout) as { summary: { passed: number; rounds: number; writesLost: number; writesAcked: number } };
  expect(report.summary).toMatchObject({ passed: 2, rounds: 2, writesLost: 0 });
  expect(report.summary.writesAcked).toBeGreaterThan(0);
}, 180_000);
