// The arbiter (hypervisor/node/arbiter.ts) on a real temporary directory: the epoch test-and-set that
// keeps two nodes from both running alone. Exclusive create decides; the file says who and when.

import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { Arbiter, epochFileName, sealFileName } from '../dist/hypervisor/node/arbiter.js';
import { tempDir } from './helpers.js';

const dirs: string[] = [];
function freshDir(): string {
  const dir = tempDir('ftjs-arbiter-');
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

test('two arbiters claiming the same epoch at once: exactly one wins, every time', async () => {
  const dir = freshDir();
  const a = new Arbiter(dir, 'node-a');
  const b = new Arbiter(dir, 'node-b');
  for (let epoch = 1; epoch <= 100; epoch++) {
    // Alternate who starts first, so neither always has the head start.
    const [first, second] = epoch % 2 ? [a, b] : [b, a];
    const results = await Promise.all([first.claim(epoch, 'backup'), second.claim(epoch, 'primary')]);
    const won = results.filter((r) => r.result === 'won');
    expect(won, `epoch ${epoch}: ${JSON.stringify(results)}`).toHaveLength(1);
    expect(
      results.filter((r) => r.result === 'lost'),
      `epoch ${epoch}`,
    ).toHaveLength(1);
    const winner = results[0]!.result === 'won' ? first : second;
    // The file names the winner, whoever lost.
    expect((await a.owner(epoch))?.nodeId).toBe(winner.nodeId);
  }
  expect(readdirSync(dir).filter((n) => n.startsWith('epoch-'))).toHaveLength(100);
  expect(await a.newestEpoch()).toBe(100);
  expect(await b.newestEpoch()).toBe(100);
});

test('the epoch file holds who and when; newestEpoch reads it back; a loser is told who holds it', async () => {
  const dir = freshDir();
  const arbiter = new Arbiter(dir, 'node-a');
  expect(await arbiter.newestEpoch()).toBe(0);
  const before = Date.now();
  const won = await arbiter.claim(1, 'primary');
  const after = Date.now();
  expect(won.result).toBe('won');
  expect(won.detail).toContain(path.join(dir, epochFileName(1)));

  const claim = JSON.parse(readFileSync(path.join(dir, 'epoch-0000000001'), 'utf8')) as Record<string, unknown>;
  expect(claim).toMatchObject({ epoch: 1, nodeId: 'node-a', role: 'primary', pid: process.pid });
  expect(typeof claim.host).toBe('string');
  const claimedAt = Date.parse(claim.claimedAt as string);
  expect(claimedAt).toBeGreaterThanOrEqual(before);
  expect(claimedAt).toBeLessThanOrEqual(after);
  expect(await arbiter.owner(1)).toEqual(claim);
  expect(await arbiter.newestEpoch()).toBe(1);

  const lost = await new Arbiter(dir, 'node-b').claim(1, 'backup');
  expect(lost.result).toBe('lost');
  expect(lost.detail).toContain('node-a');
  // Files that are not epoch claims are not epochs.
  writeFileSync(path.join(dir, 'epoch-99'), 'x');
  writeFileSync(path.join(dir, 'notes.txt'), 'x');
  expect(await arbiter.newestEpoch()).toBe(1);
});

test('a claim for an epoch older than the newest loses, even where its own file was free', async () => {
  const dir = freshDir();
  const a = new Arbiter(dir, 'node-a');
  const b = new Arbiter(dir, 'node-b');
  expect((await a.claim(1, 'primary')).result).toBe('won');
  expect((await b.claim(5, 'backup')).result).toBe('won');
  // Epoch 3 was never claimed, but epoch 5 exists: someone moved on already.
  const stale = await a.claim(3, 'primary');
  expect(stale.result).toBe('lost');
  expect(stale.detail).toContain('epoch 5');
  expect((await a.claim(1, 'primary')).result).toBe('lost');
  expect(await a.newestEpoch()).toBe(5);
});

test('the same node claiming again an epoch it already holds (a claim that timed out, then landed) wins', async () => {
  const dir = freshDir();
  const a = new Arbiter(dir, 'node-a');
  expect((await a.claim(2, 'backup')).result).toBe('won');
  expect((await new Arbiter(dir, 'node-a').claim(2, 'backup')).result).toBe('won');
  expect((await new Arbiter(dir, 'node-b').claim(2, 'backup')).result).toBe('lost');
});

test('a missing directory is unreachable: no claim is won and no epoch is guessed', async () => {
  const dir = path.join(freshDir(), 'gone');
  const arbiter = new Arbiter(dir, 'node-a');
  const result = await arbiter.claim(1, 'backup');
  expect(result.result).toBe('unreachable');
  expect(result.detail).toContain(dir);
  expect(await arbiter.newestEpoch()).toBeNull();
  expect(await arbiter.owner(1)).toBeNull();
});

/** What a claim leaves when it lands after its claimer gave up on it (a slow directory) and crashed: an epoch file, no seal. */
function landedLate(dir: string, epoch: number, nodeId: string, seals: boolean = true): void {
  const claim = { epoch, nodeId, role: 'backup', pid: 1, host: 'h', claimedAt: new Date().toISOString(), ...(seals ? { seals: 1 } : {}) };
  writeFileSync(path.join(dir, epochFileName(epoch)), `${JSON.stringify(claim)}\n`);
}

test('an epoch claimed by a version that never seals is never voided: its holder may be serving', async () => {
  const dir = freshDir();
  const a = new Arbiter(dir, 'node-a');
  expect((await a.claim(1, 'primary')).result).toBe('won');
  expect(JSON.parse(readFileSync(path.join(dir, epochFileName(1)), 'utf8')).seals).toBe(1);
  landedLate(dir, 2, 'old-node', false);
  for (const mayVoid of [false, true]) {
    const lost = await a.claim(2, 'primary', undefined, mayVoid);
    expect(lost).toEqual({ result: 'lost', detail: expect.stringMatching(/^epoch 2 is held by old-node /) });
  }
  expect(readdirSync(dir).includes(sealFileName(2))).toBe(false);
});

test('an epoch its holder never activated: a loser is told so, voids it on a claim with mayVoid, and wins the next; the holder then loses it', async () => {
  const dir = freshDir();
  const a = new Arbiter(dir, 'node-a');
  expect((await a.claim(1, 'primary')).result).toBe('won');
  expect(JSON.parse(readFileSync(path.join(dir, sealFileName(1)), 'utf8'))).toMatchObject({ epoch: 1, kind: 'activated', nodeId: 'node-a' });
  landedLate(dir, 2, 'node-b');
  const first = await a.claim(2, 'primary');
  expect(first).toMatchObject({ result: 'lost', unactivated: true });
  expect(first.detail).toMatch(/epoch 2 is held by node-b .*not activated yet/);
  expect(readdirSync(dir).filter((n) => n.startsWith('seal-'))).toEqual([sealFileName(1)]);
  const second = await a.claim(2, 'primary', undefined, true);
  expect(second).toMatchObject({ result: 'lost', voided: true });
  expect(JSON.parse(readFileSync(path.join(dir, sealFileName(2)), 'utf8'))).toMatchObject({ epoch: 2, kind: 'void', nodeId: 'node-a' });
  // node-b comes back and retries its claim (it landed, so the file names it): void, it lost.
  const late = await new Arbiter(dir, 'node-b').claim(2, 'backup');
  expect(late.result).toBe('lost');
  expect(late.detail).toContain('epoch 2 was voided by node-a before this node activated it');
  expect((await a.claim(3, 'primary')).result).toBe('won');
  // No temporary file of the seal's create is left behind.
  expect(readdirSync(dir).sort()).toEqual([epochFileName(1), epochFileName(2), epochFileName(3), sealFileName(1), sealFileName(2), sealFileName(3)]);
});

test('an activated epoch is never voided, and an old epoch (not the newest) is never voided', async () => {
  const dir = freshDir();
  const a = new Arbiter(dir, 'node-a');
  const b = new Arbiter(dir, 'node-b');
  expect((await a.claim(1, 'primary')).result).toBe('won');
  const lost = await b.claim(1, 'backup', undefined, true);
  expect(lost.result).toBe('lost');
  expect(lost.unactivated).toBeUndefined();
  expect(lost.voided).toBeUndefined();
  expect((await a.claim(1, 'primary')).result).toBe('won');
  landedLate(dir, 2, 'node-c');
  expect((await a.claim(3, 'primary')).result).toBe('won');
  expect(await b.claim(2, 'backup', undefined, true)).toMatchObject({ result: 'lost' });
  expect(readdirSync(dir).includes(sealFileName(2))).toBe(false);
});

test('the holder activating and a loser voiding race: exactly one seal stands, and the holder wins only if it is "activated"', async () => {
  const dir = freshDir();
  for (let epoch = 1; epoch <= 60; epoch++) {
    landedLate(dir, epoch, 'node-h');
    const holder = new Arbiter(dir, 'node-h');
    const loser = new Arbiter(dir, 'node-l');
    const [h, l] =
      epoch % 2
        ? await Promise.all([holder.claim(epoch, 'primary'), loser.claim(epoch, 'backup', undefined, true)])
        : (await Promise.all([loser.claim(epoch, 'backup', undefined, true), holder.claim(epoch, 'primary')])).reverse();
    const seal = JSON.parse(readFileSync(path.join(dir, sealFileName(epoch)), 'utf8')) as { kind: string; nodeId: string };
    if (seal.kind === 'activated') {
      expect(seal.nodeId).toBe('node-h');
      expect(h!.result, `epoch ${epoch}`).toBe('won');
      expect(l!).toMatchObject({ result: 'lost' });
      expect(l!.voided).toBeUndefined();
    } else {
      expect(seal).toMatchObject({ kind: 'void', nodeId: 'node-l' });
      expect(h!.result, `epoch ${epoch}`).toBe('lost');
      expect(l!).toMatchObject({ result: 'lost', voided: true });
    }
  }
});
