// Epoch activation on a real etcd (hypervisor/node/arbiter.ts, Activation; arbiter-etcd.ts): a claim
// that landed after its claimer gave up leaves an epoch nobody activated; a loser may void it on a
// second look and claim the next; an activated epoch is never voided; activation and void race to one seal.
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EtcdArbiter } from '../dist/hypervisor/node/arbiter-etcd.js';
import { type EtcdCluster, startEtcd } from './etcd-cluster.js';

const pad = (epoch: number) => String(epoch).padStart(10, '0');

describe('etcd arbiter: epoch seals', () => {
  let etcd: EtcdCluster;
  let raw: Etcd3;
  beforeAll(async () => {
    etcd = await startEtcd(1);
    raw = new Etcd3({ hosts: etcd.members.map((m) => m.clientUrl) });
  });
  afterAll(async () => {
    raw?.close();
    await etcd?.stop();
  });

  /** What the claim transaction leaves when it lands after its claimer gave up and crashed: newest and epoch-N, no seal. */
  async function landedLate(prefix: string, epoch: number, nodeId: string, seals = true): Promise<void> {
    await raw
      .if(`/${prefix}/newest`, 'Create', '>', -1)
      .then(
        raw.put(`/${prefix}/newest`).value(pad(epoch)),
        raw.put(`/${prefix}/epoch-${pad(epoch)}`).value(JSON.stringify({ epoch, nodeId, role: 'backup', pid: 1, host: 'h', claimedAt: new Date().toISOString(), ...(seals ? { seals: 1 } : {}) })),
      )
      .commit();
  }
  const seal = async (prefix: string, epoch: number) => JSON.parse((await raw.get(`/${prefix}/seal-${pad(epoch)}`).string()) ?? 'null') as { kind: string; nodeId: string } | null;

  it('an epoch never activated: the loser is told so, voids it with mayVoid, wins the next; the late holder loses it', async () => {
    const a = new EtcdArbiter(etcd.arbiterUrl('late'), 'node-a');
    const b = new EtcdArbiter(etcd.arbiterUrl('late'), 'node-b');
    try {
      expect((await a.claim(1, 'primary', 1000)).result).toBe('won');
      expect(await seal('late', 1)).toMatchObject({ kind: 'activated', nodeId: 'node-a' });
      await landedLate('late', 2, 'node-b');
      const first = await a.claim(2, 'primary', 1000);
      expect(first).toMatchObject({ result: 'lost', unactivated: true });
      expect(first.detail).toMatch(/epoch 2 is held by node-b .*not activated yet/);
      expect(await seal('late', 2)).toBeNull();
      expect(await a.claim(2, 'primary', 1000, true)).toMatchObject({ result: 'lost', voided: true });
      expect(await seal('late', 2)).toMatchObject({ kind: 'void', nodeId: 'node-a' });
      // node-b comes back and retries: its claim had landed (the record names it), but the epoch is void.
      const late = await b.claim(2, 'backup', 1000);
      expect(late.result).toBe('lost');
      expect(late.detail).toContain('epoch 2 was voided by node-a before this node activated it');
      expect((await a.claim(3, 'primary', 1000)).result).toBe('won');
      expect(await seal('late', 3)).toMatchObject({ kind: 'activated', nodeId: 'node-a' });
      // An activated epoch is never voided, and an older epoch is left alone.
      const lost = await b.claim(3, 'backup', 1000, true);
      expect(lost.result).toBe('lost');
      expect(lost.voided).toBeUndefined();
      expect(lost.unactivated).toBeUndefined();
      expect(await seal('late', 3)).toMatchObject({ kind: 'activated', nodeId: 'node-a' });
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('the holder activating and a loser voiding race: exactly one seal stands, and the holder wins only if it says "activated"', async () => {
    const h = new EtcdArbiter(etcd.arbiterUrl('race'), 'node-h');
    const l = new EtcdArbiter(etcd.arbiterUrl('race'), 'node-l');
    try {
      for (let epoch = 1; epoch <= 40; epoch++) {
        await landedLate('race', epoch, 'node-h');
        const [rh, rl] = await Promise.all([h.claim(epoch, 'primary'), l.claim(epoch, 'backup', undefined, true)]);
        const s = await seal('race', epoch);
        if (s?.kind === 'activated') {
          expect(s.nodeId).toBe('node-h');
          expect(rh.result, `epoch ${epoch}`).toBe('won');
          expect(rl.result).toBe('lost');
          expect(rl.voided).toBeUndefined();
        } else {
          expect(s).toMatchObject({ kind: 'void', nodeId: 'node-l' });
          expect(rh.result, `epoch ${epoch}`).toBe('lost');
          expect(rl).toMatchObject({ result: 'lost', voided: true });
        }
      }
    } finally {
      await Promise.all([h.close(), l.close()]);
    }
  });

  it('an epoch claimed by a version that never seals is never voided: its holder may be serving', async () => {
    const a = new EtcdArbiter(etcd.arbiterUrl('old'), 'node-a');
    try {
      expect((await a.claim(1, 'primary')).result).toBe('won');
      await landedLate('old', 2, 'old-node', false);
      for (const mayVoid of [false, true]) {
        const lost = await a.claim(2, 'primary', undefined, mayVoid);
        expect(lost).toEqual({ result: 'lost', detail: expect.stringMatching(/^epoch 2 is held by old-node /) });
      }
      expect(await seal('old', 2)).toBeNull();
    } finally {
      await a.close();
    }
  });
});
