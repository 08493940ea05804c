// The output buffer: outputs leave in order, only once acknowledged (or direct), and never while the
// role machine's lease is expired (a node woken from a pause finishes no burst on its own).

import { expect, test } from 'vitest';
import { OutputBuffer } from '../dist/recorder/output-buffer.js';

function harness(direct: boolean) {
  let lease = true;
  const released: number[] = [];
  const buffer = new OutputBuffer(direct, () => lease);
  const hold = (seq: number, id = seq) => buffer.hold(seq, () => released.push(id));
  return { buffer, released, hold, setLease: (v: boolean) => (lease = v) };
}

test('held until acknowledged, then released in order up to the acked seq', () => {
  const h = harness(false);
  h.hold(3);
  h.hold(5);
  h.hold(9);
  expect(h.released).toEqual([]);
  h.buffer.ack(5);
  expect(h.released).toEqual([3, 5]);
  expect(h.buffer.held).toBe(1);
  h.buffer.ack(4); // a regressing ack changes nothing
  expect(h.released).toEqual([3, 5]);
  h.buffer.ack(9);
  expect(h.released).toEqual([3, 5, 9]);
});

test('an expired lease stops a burst midway; the rest leaves on retry, in order, once the lease is back', () => {
  let grants = 2; // the lease allows two more releases, then expires (the node was paused mid-burst)
  const out: number[] = [];
  const buffer = new OutputBuffer(false, () => grants-- > 0);
  for (let seq = 1; seq <= 6; seq++) buffer.hold(seq, () => out.push(seq));
  buffer.ack(6);
  expect(out).toEqual([1, 2]);
  expect(buffer.held).toBe(4);
  buffer.retry(); // still expired
  expect(out).toEqual([1, 2]);
  grants = Infinity; // the epoch was confirmed: the lease is valid again
  buffer.retry();
  expect(out).toEqual([1, 2, 3, 4, 5, 6]);
});

test('direct mode: nothing overtakes an output the lease held back', () => {
  const d = harness(true);
  d.setLease(false);
  d.hold(10);
  d.setLease(true);
  d.hold(11);
  expect(d.released).toEqual([]);
  d.buffer.retry();
  expect(d.released).toEqual([10, 11]);
});

test('a halted buffer drops what it holds and never releases again', () => {
  const h = harness(false);
  h.hold(1);
  h.hold(2);
  expect(h.buffer.halt()).toBe(2);
  h.buffer.ack(10);
  h.buffer.setDirect(true);
  h.hold(3);
  h.buffer.retry();
  expect(h.released).toEqual([]);
});

test('the queue under the buffer keeps order across wrap-around and growth', async () => {
  const { Fifo } = await import('../dist/recorder/fifo.js');
  const q = new Fifo<number>(4);
  const model: number[] = [];
  let next = 0;
  // Interleave pushes and shifts so the head wraps the ring several times while it doubles.
  for (let round = 0; round < 200; round++) {
    const pushes = (round * 7) % 5;
    const shifts = (round * 3) % 4;
    for (let i = 0; i < pushes; i++) {
      q.push(next);
      model.push(next++);
    }
    for (let i = 0; i < shifts && model.length > 0; i++) expect(q.shift()).toBe(model.shift());
    expect(q.length).toBe(model.length);
    expect(q.peek()).toBe(model[0]);
    expect(q.peekLast()).toBe(model[model.length - 1]);
  }
  const seen: number[] = [];
  q.forEach((v) => seen.push(v));
  expect(seen).toEqual(model);
  q.clear();
  expect(q.length).toBe(0);
  expect(q.peek()).toBeUndefined();
  expect(() => q.shift()).toThrow(/empty/);
});
