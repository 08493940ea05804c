// The live node holds its etcd lease (issue 18): a lone primary cut off from etcd (etcd SIGSTOPped, or
// its connection cut) releases nothing once its lease is gone; another node claims only once that
// lease expired, and the old one halts when it hears of the newer epoch; a newer epoch claimed while it
// is connected fences it at once (etcd's watch). Real etcd, real processes.
import { expect, test } from 'vitest';
import { Relay } from '../dist/cli/relay.js';
import { EtcdArbiter } from '../dist/hypervisor/node/arbiter-etcd.js';
import { replicationRecordFor } from '../dist/hypervisor/node/replication-record.js';
import { useEtcd } from './etcd-cluster.js';
import { type FtjsProcess, spawnFtjs, TEST_SECRET, waitFor } from './helpers.js';

const etcd = useEtcd();

const LEASE_MS = 1000;
/** A response read by the client may trail its release by a scheduling delay on a loaded machine. */
const RECEIPT_SLACK_MS = 300;

/** Clients writing one PUT after another; each response's receipt time is kept. */
function load(url: string, clients = 4): { received: number[]; stop(): Promise<void> } {
  const received: number[] = [];
  let on = true;
  const loops = Array.from({ length: clients }, async (_, c) => {
    for (let i = 0; on; i++) {
      try {
        const r = await fetch(`${url}/kv/c${c}-${i}`, { method: 'PUT', body: String(i), signal: AbortSignal.timeout(30_000) });
        await r.text();
        if (r.status === 200) received.push(performance.now());
      } catch {
        // The node halted with the request held: no response, which is the point.
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  });
  return {
    received,
    async stop() {
      on = false;
      await Promise.all(loops);
    },
  };
}

async function lonePrimary(prefix: string): Promise<{ node: FtjsProcess; url: string; arbiter: string }> {
  const arbiter = etcd.arbiterUrl(prefix);
  const node = spawnFtjs(['primary', 'guest-apps/kv.js', '--port', '0', '--replication-port', '0', '--arbiter', arbiter, '--node-id', 'p', '--lease-ms', String(LEASE_MS)], {
    FTJS_SECRET: TEST_SECRET,
  });
  const line = await node.waitForLog((l) => typeof l.replication === 'string' && typeof l.url === 'string', 'the primary to serve');
  return { node, url: line.url as string, arbiter };
}

test('etcd SIGSTOPped: the lone primary releases nothing once its lease is gone; when etcd answers again and its epoch is still the newest, it takes a new lease and serves', async () => {
  const { node, url } = await lonePrimary(`lease-stop-${process.pid}`);
  const clients = load(url);
  const member = etcd.members[0]!;
  try {
    await waitFor(() => clients.received.length >= 50 || null, 'writes acknowledged before the partition');
    member.process.kill('SIGSTOP');
    const cutAt = performance.now();
    await node.waitForLog((l) => /lease ran out/.test(String(l.msg)), 'the primary to say its lease ran out', 20_000);
    // Past the lease, and past the etcd lease's TTL (three leases): the clients keep sending, nothing comes back.
    const before = clients.received.length;
    await waitFor(() => performance.now() - cutAt > 4 * LEASE_MS || null, 'four leases to pass', 20_000);
    const resumedAt = performance.now();
    const late = clients.received.filter((t) => t > cutAt + LEASE_MS + RECEIPT_SLACK_MS);
    expect(late, `responses ${late.map((t) => Math.round(t - cutAt)).join(', ')} ms after etcd stopped`).toEqual([]);
    expect(clients.received.length).toBe(before);
    member.process.kill('SIGCONT');
    await node.waitForLog((l) => /the etcd lease on epoch 1 had expired .* a new lease is taken/.test(String(l.msg)), 'the primary to take a new lease', 20_000);
    await waitFor(() => clients.received.length > before + 20 || null, 'responses again', 20_000);
    expect(node.exitCode).toBeNull();
    // Nothing between the lease running out and etcd answering again.
    const gap = clients.received.filter((t) => t > cutAt + LEASE_MS + RECEIPT_SLACK_MS && t < resumedAt);
    expect(gap).toEqual([]);
  } finally {
    member.process.kill('SIGCONT');
    await node.stop('SIGKILL');
    await clients.stop();
  }
}, 90_000);

test('the primary cut off from etcd (its connection relayed and cut): nothing released after its lease; another node claims once the lease expired; healed, the old one halts', async () => {
  const port = Number(new URL(etcd.members[0]!.clientUrl).port);
  const relay = new Relay(port);
  const relayPort = await relay.listen();
  const prefix = `lease-cut-${process.pid}`;
  const node = spawnFtjs(
    ['primary', 'guest-apps/kv.js', '--port', '0', '--replication-port', '0', '--arbiter', `etcd://127.0.0.1:${relayPort}/${prefix}`, '--node-id', 'p', '--lease-ms', String(LEASE_MS)],
    {
      FTJS_SECRET: TEST_SECRET,
    },
  );
  const url = (await node.waitForLog((l) => typeof l.replication === 'string' && typeof l.url === 'string', 'the primary to serve')).url as string;
  const clients = load(url);
  const other = new EtcdArbiter(etcd.arbiterUrl(prefix), 'intruder');
  try {
    await waitFor(() => clients.received.length >= 50 || null, 'writes acknowledged first');
    relay.cut();
    const cutAt = performance.now();
    // The claimer's side of the lease: it goes ahead only once the holder's lease key is gone (expired).
    await waitFor(async () => ((await other.previousHolders(2))?.length === 0 ? true : null), "the old primary's etcd lease to expire", 20_000);
    expect((await other.claim(2, 'primary')).result).toBe('won');
    const claimedAt = performance.now();
    // The intruder takes no backups, and says so: the fenced node exits (75) instead of joining it.
    expect(await other.recordReplication(replicationRecordFor(2, 'intruder', null, new Date().toISOString()))).toBe(true);
    const late = clients.received.filter((t) => t > cutAt + LEASE_MS + RECEIPT_SLACK_MS);
    expect(late, `responses ${late.map((t) => Math.round(t - cutAt)).join(', ')} ms after the cut`).toEqual([]);
    expect(Math.max(...clients.received)).toBeLessThan(claimedAt);
    relay.heal();
    expect(await node.exited).toBe(75);
    expect(node.lines.some((l) => /epoch 2 .*(exists|was claimed)/.test(String(l.msg)))).toBe(true);
    expect(clients.received.filter((t) => t > cutAt + LEASE_MS + RECEIPT_SLACK_MS)).toEqual([]);
  } finally {
    relay.close();
    await other.close();
    await node.stop('SIGKILL');
    await clients.stop();
  }
}, 90_000);

test("a newer epoch claimed by another node fences the lone primary at once (etcd's watch), well within the lease", async () => {
  const { node, url, arbiter } = await lonePrimary(`lease-newer-${process.pid}`);
  const clients = load(url);
  const other = new EtcdArbiter(arbiter, 'intruder');
  try {
    await waitFor(() => clients.received.length >= 50 || null, 'writes acknowledged first');
    expect((await other.claim(2, 'primary')).result).toBe('won');
    const claimedAt = performance.now();
    expect(await other.recordReplication(replicationRecordFor(2, 'intruder', null, new Date().toISOString()))).toBe(true);
    await node.waitForLog((l) => /^primary halted: epoch 2 was claimed \(seen by the arbiter's watch\)/.test(String(l.msg)), 'the primary to be fenced', 10_000);
    const fencedMs = performance.now() - claimedAt;
    expect(fencedMs).toBeLessThan(LEASE_MS);
    // The intruder recorded that it takes no backups: nothing to join, it exits 75.
    expect(await node.exited).toBe(75);
    const late = clients.received.filter((t) => t > claimedAt + LEASE_MS);
    expect(late).toEqual([]);
    // It gave its lease back when it halted: nothing holds an epoch before 2 any more.
    expect(await other.previousHolders(2)).toEqual([]);
  } finally {
    await other.close();
    await node.stop('SIGKILL');
    await clients.stop();
  }
}, 90_000);
