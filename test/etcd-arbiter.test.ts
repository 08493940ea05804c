// The epoch arbiter on a real etcd: one winner per epoch under races, through a leader's death in a
// three-member cluster, 'unreachable' (never a guess) without etcd, and a lease that is lost with it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdArbiter, parseEtcdUrl } from '../dist/hypervisor/node/arbiter-etcd.js';
import { type EtcdCluster, startEtcd } from './etcd-cluster.js';
import { waitFor } from './helpers.js';

describe('parseEtcdUrl', () => {
  it('reads hosts, prefix and TLS, and refuses what is not an etcd URL', () => {
    expect(parseEtcdUrl('etcd://127.0.0.1:2379/svc')).toEqual({ hosts: ['http://127.0.0.1:2379'], prefix: '/svc/', tls: false });
    expect(parseEtcdUrl('etcds://a:1,b:2')).toEqual({ hosts: ['https://a:1', 'https://b:2'], prefix: '/ftjs/', tls: true });
    expect(() => parseEtcdUrl('http://a:1/x')).toThrow(/is not etcd:\/\/host:port/);
    expect(() => parseEtcdUrl('etcd://a/x')).toThrow(/"a" is not host:port/);
  });
});

describe('etcd arbiter, one member', () => {
  let etcd: EtcdCluster;
  beforeAll(async () => {
    etcd = await startEtcd(1);
  });
  afterAll(async () => {
    await etcd?.stop();
  });

  it('100 two-way races give exactly one winner each; the loser is told who holds the epoch', async () => {
    const url = etcd.arbiterUrl('races');
    const a = new EtcdArbiter(url, 'node-a');
    const b = new EtcdArbiter(url, 'node-b');
    try {
      for (let epoch = 1; epoch <= 100; epoch++) {
        const [ra, rb] = await Promise.all([a.claim(epoch, 'backup'), b.claim(epoch, 'primary')]);
        const results = [ra.result, rb.result].sort();
        expect(results, `epoch ${epoch}: ${ra.detail} / ${rb.detail}`).toEqual(['lost', 'won']);
        const loser = ra.result === 'lost' ? ra : rb;
        expect(loser.detail).toMatch(new RegExp(`epoch ${epoch} is held by node-[ab]`));
      }
      expect(await a.newestEpoch()).toBe(100);
      // No epoch at or below the newest can be claimed by another node; its holder claiming it again is
      // told it holds it (a claim whose answer was lost may have landed), as with the shared directory.
      const holder100 = (await a.owner(100))!.nodeId;
      const [holder, other] = holder100 === 'node-a' ? [a, b] : [b, a];
      expect((await other.claim(100, 'backup')).result).toBe('lost');
      expect((await holder.claim(100, 'backup')).result).toBe('won');
      const holder37 = (await a.owner(37))!.nodeId === 'node-a' ? b : a;
      expect((await holder37.claim(37, 'backup')).result).toBe('lost');
      expect((await b.claim(101, 'backup')).result).toBe('won');
      expect((await a.owner(101))?.nodeId).toBe('node-b');
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it("the holder's lease check keeps its lease alive; left unrenewed past its TTL it is retaken only while its epoch is the newest; without etcd, checks and claims are unreachable", async () => {
    const solo = await startEtcd(1);
    const arbiter = new EtcdArbiter(solo.arbiterUrl('lease'), 'node-a', { timeoutMs: 500 });
    const reader = new EtcdArbiter(solo.arbiterUrl('lease'), 'reader', { timeoutMs: 500 });
    try {
      expect((await arbiter.claim(1, 'primary', 1000)).result).toBe('won');
      expect(await reader.previousHolders(2)).toEqual([expect.stringContaining('"nodeId":"node-a"')]);
      // Renewed every half second for three TTLs: the lease key stays.
      const until = performance.now() + 3000;
      while (performance.now() < until) {
        expect(await arbiter.checkLease(1, 1000)).toEqual({ newest: 1 });
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
      expect(await reader.previousHolders(2)).toHaveLength(1);
      // Not renewed: etcd expires it, and the holder's next check says so.
      await waitFor(async () => ((await reader.previousHolders(2))?.length === 0 ? true : null), 'the lease to expire', 20_000);
      // The holder's next check finds it expired and takes a new one, epoch 1 being still the newest.
      const retaken = await arbiter.checkLease(1, 1000);
      expect(retaken).toEqual({ newest: 1, leaseRetaken: expect.stringMatching(/etcd lease on epoch 1 had expired/) });
      expect(await reader.previousHolders(2)).toHaveLength(1);
      // Once another node claimed epoch 2 after an expiry, no new lease is taken: the check says epoch 2.
      await waitFor(async () => ((await reader.previousHolders(2))?.length === 0 ? true : null), 'the new lease to expire', 20_000);
      expect((await reader.claim(2, 'primary')).result).toBe('won');
      expect(await arbiter.checkLease(1, 1000)).toEqual({ newest: 2 });
      expect(await reader.previousHolders(3)).toEqual([]);
      await solo.kill(solo.members[0]!);
      expect(await arbiter.checkLease(1, 1000)).toEqual({ newest: null });
      expect((await arbiter.claim(2, 'primary')).result).toBe('unreachable');
      expect(await arbiter.newestEpoch()).toBeNull();
    } finally {
      await Promise.all([arbiter.close(), reader.close()]);
      await solo.stop();
    }
  }, 60_000);
});

describe('etcd arbiter, three members', () => {
  it('never gives one epoch to two nodes while the leader is killed mid-race; claims carry on on the survivors', async () => {
    const etcd = await startEtcd(3);
    const url = etcd.arbiterUrl('failover');
    const nodes = ['node-a', 'node-b', 'node-c'].map((id) => new EtcdArbiter(url, id, { timeoutMs: 1500 }));
    const winners = new Map<number, string[]>();
    try {
      let killed = false;
      for (let epoch = 1; epoch <= 40; epoch++) {
        if (epoch === 15) {
          await etcd.kill(await etcd.leader());
          killed = true;
        }
        const results = await Promise.all(nodes.map((n) => n.claim(epoch, 'backup')));
        winners.set(
          epoch,
          nodes.filter((_, i) => results[i]!.result === 'won').map((n) => n.nodeId),
        );
        for (const r of results) expect(['won', 'lost', 'unreachable']).toContain(r.result);
      }
      expect(killed).toBe(true);
      for (const [epoch, won] of winners) expect(won.length, `epoch ${epoch}: ${won.join(', ')}`).toBeLessThanOrEqual(1);
      // Once a new leader is elected, epochs are won again.
      const late = [...winners].filter(([epoch, won]) => epoch > 25 && won.length === 1);
      expect(late.length).toBeGreaterThan(10);
      // Every recorded owner agrees with the winner seen by the racers.
      for (const [epoch, won] of late) expect((await nodes[0]!.owner(epoch))?.nodeId).toBe(won[0]);
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
      await etcd.stop();
    }
  }, 120_000);

  it('never gives one epoch to two nodes while the leader is cut off (SIGSTOP: it hears and says nothing) and comes back a follower', async () => {
    const etcd = await startEtcd(3);
    const url = etcd.arbiterUrl('cut');
    const nodes = ['node-a', 'node-b', 'node-c'].map((id) => new EtcdArbiter(url, id, { timeoutMs: 1000 }));
    const winners = new Map<number, string[]>();
    let cut: Awaited<ReturnType<typeof etcd.leader>> | null = null;
    const race = async (epoch: number) => {
      const results = await Promise.all(nodes.map((n) => n.claim(epoch, 'backup')));
      for (const r of results) expect(['won', 'lost', 'unreachable']).toContain(r.result);
      const won = nodes.filter((_, i) => results[i]!.result === 'won').map((n) => n.nodeId);
      winners.set(epoch, won);
      return won.length === 1;
    };
    try {
      let epoch = 1;
      for (; epoch <= 4; epoch++) await race(epoch);
      cut = await etcd.leader();
      cut.process.kill('SIGSTOP');
      // Races go on until claims are won again under a leader elected meanwhile (a loaded host takes
      // its time to elect; the count of races it took is no property of the arbiter).
      const cutFrom = epoch;
      let wonWhileCut = 0;
      for (; wonWhileCut < 3; epoch++) {
        expect(epoch - cutFrom, 'races while the leader is cut off before 3 are won').toBeLessThan(40);
        if (await race(epoch)) wonWhileCut++;
      }
      cut.process.kill('SIGCONT');
      const back = cut;
      cut = null;
      // It rejoins as a follower of the leader elected while it was away.
      await waitFor(async () => (await etcd.leader()).name !== back.name, 'the cluster to be led by another member');
      const backFrom = epoch;
      for (; epoch < backFrom + 16; epoch++) await race(epoch);
      for (const [e, won] of winners) expect(won.length, `epoch ${e}: ${won.join(', ')}`).toBeLessThanOrEqual(1);
      const late = [...winners].filter(([e, won]) => e >= backFrom && won.length === 1);
      expect(late.length).toBeGreaterThan(10);
      for (const [epoch, won] of late) expect((await nodes[0]!.owner(epoch))?.nodeId).toBe(won[0]);
    } finally {
      cut?.process.kill('SIGCONT');
      await Promise.all(nodes.map((n) => n.close()));
      await etcd.stop();
    }
  }, 120_000);
});
