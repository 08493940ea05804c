// The drills' generic workload, for any guest with a keyed store: `PUT <prefix>/<key>` (the body is
// the value) and `GET <prefix>/<key>` (the value, as text or as JSON { value }). Each write has a
// fresh key and value and is retried with the same Idempotency-Key until acknowledged; reads ask for
// a key this client already had acknowledged and must see its value. Reconciliation reads every
// acknowledged key back from the live node.
//
// What it cannot see: a PUT applied twice stores the same value, so duplicates are harmless here
// and are not counted (bank.js's ledger counts them).

import type { ClientLoad, Reconciled } from './drill-service.js';
import { type Call, ClosedLoop } from './drill-workload.js';

/** A write is retried (same key) until acknowledged, for at most this long. */
const WRITE_RETRY_MS = 15_000;

export interface KvAck {
  key: string;
  value: string;
  node: string;
  epoch: number;
  atMs: number;
}

/** The value a GET answered: JSON { value } (kv.js), or the body itself. */
export function valueOf(text: string): string {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed !== null && typeof parsed === 'object' && typeof (parsed as { value?: unknown }).value === 'string') return (parsed as { value: string }).value;
  } catch {
    /* not JSON: the body is the value */
  }
  return text;
}

const keyPath = (prefix: string, key: string) => `${prefix}/${encodeURIComponent(key)}`;

export class KvLoad extends ClosedLoop implements ClientLoad {
  readonly acks: KvAck[] = [];

  constructor(
    private readonly call: Call,
    private readonly random: () => number,
    private readonly keyPrefix: string,
    private readonly prefix: string,
  ) {
    super();
  }

  protected async client(c: number): Promise<void> {
    const mine: KvAck[] = [];
    for (let n = 0; !this.stopIssuing; n++) {
      if (n % 4 === 3 && mine.length > 0) {
        await this.read(mine[Math.floor(this.random() * mine.length)]!);
        continue;
      }
      const key = `${this.keyPrefix}-${c}-${n}`;
      const value = `v${Math.floor(this.random() * 1e9)}-${key}`;
      this.issued++;
      const ack = await this.write(key, value);
      if (ack) {
        mine.push(ack);
        this.acks.push(ack);
      }
    }
  }

  /** An acknowledged key read back: any answer but the value (or a failure mid-failover) breaks read-your-writes. */
  private async read(ack: KvAck): Promise<void> {
    try {
      const r = await this.call('GET', keyPath(this.prefix, ack.key));
      if (r.status >= 500) return; // a read may fail during the failover; reads are not retried
      if (r.status !== 200) this.violations.push(`read of acknowledged key ${ack.key} got ${r.status} from ${r.node} (epoch ${r.epoch})`);
      else if (valueOf(r.text) !== ack.value) this.violations.push(`read of acknowledged key ${ack.key} from ${r.node} saw ${JSON.stringify(valueOf(r.text))}, not ${JSON.stringify(ack.value)}`);
      else this.successes.push(Date.now());
    } catch {
      /* network failure during the failover */
    }
  }

  private async write(key: string, value: string): Promise<KvAck | null> {
    const deadline = Date.now() + WRITE_RETRY_MS;
    for (;;) {
      try {
        const r = await this.call('PUT', keyPath(this.prefix, key), value, key);
        if (r.status >= 200 && r.status < 300) {
          const now = Date.now();
          this.successes.push(now);
          return { key, value, node: r.node, epoch: r.epoch, atMs: now };
        }
        if (r.status < 500) throw new Error(`write ${key} refused: ${r.status} ${r.text.slice(0, 200)}`);
      } catch (error) {
        if ((error as Error).message.startsWith('write ')) throw error;
      }
      if (Date.now() > deadline) {
        this.violations.push(`write ${key} was never acknowledged within ${WRITE_RETRY_MS} ms`);
        return null;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Every acknowledged key must hold its value on the live node. */
export async function reconcileKv(liveUrl: string, prefix: string, acks: readonly KvAck[]): Promise<Reconciled> {
  const violations: string[] = [];
  let writesLost = 0;
  let wrong = 0;
  for (const a of acks) {
    const res = await fetch(`${liveUrl}${keyPath(prefix, a.key)}`, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    if (res.status === 404) writesLost++;
    else if (res.status !== 200 || valueOf(text) !== a.value) {
      wrong++;
      if (wrong <= 5) violations.push(`acknowledged key ${a.key} reads ${res.status} ${JSON.stringify(valueOf(text)).slice(0, 80)} on the live node, not ${JSON.stringify(a.value)}`);
    }
  }
  if (writesLost > 0) violations.push(`${writesLost} acknowledged writes are missing on the live node`);
  if (wrong > 5) violations.push(`... and ${wrong - 5} more acknowledged keys with the wrong value`);
  const status = JSON.parse(await (await fetch(`${liveUrl}/_ft/status`, { signal: AbortSignal.timeout(10_000) })).text()) as { divergence?: unknown };
  if (status.divergence) violations.push(`divergence: ${JSON.stringify(status.divergence)}`);
  return { writesLost, duplicates: 0, transfers: acks.length, violations };
}
