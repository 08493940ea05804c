// The drills' client side: keyed transfers (retried with the same Idempotency-Key until acknowledged)
// and reads against the bank.js API through the front door, the reconciliation of what the
// clients were told against the live node's ledger, and the nodes' own warnings as evidence when a round breaks.

import type { LogLine } from './child.js';

/** The heartbeat settings of a drill's pairs, and the go-live budget its rounds are held to. */
export interface DrillTiming {
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  /** Beyond detection (the heartbeat timeout): drain, claim and switch to serving. */
  maxGoLiveMs: number;
  /**
   * `--arbiter etcd://...` and its flags, when the drill's pairs claim epochs in etcd; each pair gets a
   * prefix of its own under the given one. Absent: a fresh shared directory per pair.
   */
  etcd?: { url: string; args: string[] };
}

/** The arbiter flags of the pair named `pairName`: its own etcd prefix, or the shared directory `sharedDir`. */
export function arbiterArgs(timing: DrillTiming, sharedDir: string, pairName: string): string[] {
  if (!timing.etcd) return ['--shared-dir', sharedDir];
  const url = timing.etcd.url.replace(/\/+$/, '');
  const hasPrefix = /^etcds?:\/\/[^/]+\/./.test(url);
  return ['--arbiter', `${hasPrefix ? url : `${url}/ftjs`}/${pairName}`, ...timing.etcd.args];
}

/** The pair's flags for this timing. */
export function timingArgs(timing: DrillTiming): string[] {
  return ['--heartbeat-ms', String(timing.heartbeatMs), '--heartbeat-timeout-ms', String(timing.heartbeatTimeoutMs)];
}

/**
 * A survivor must run alone within the heartbeat timeout (detection) plus the go-live budget of the
 * fault; later is a broken round. null: within the bound (or no go-live at all, reported elsewhere).
 */
export function goLiveViolation(goLiveMs: number | null, timing: DrillTiming): string | null {
  if (goLiveMs === null) return null;
  const boundMs = timing.heartbeatTimeoutMs + timing.maxGoLiveMs;
  if (goLiveMs <= boundMs) return null;
  return `go-live took ${goLiveMs} ms from the fault, over the bound of ${boundMs} ms (heartbeat timeout ${timing.heartbeatTimeoutMs} ms + --max-go-live-ms ${timing.maxGoLiveMs})`;
}

export const ACCOUNTS = 10;
export const OPENING_BALANCE = 100_000;
const CLIENTS = 4;
/** A write is retried (same key) until acknowledged, for at most this long. */
const WRITE_RETRY_MS = 15_000;

export interface Ack {
  key: string;
  from: number;
  to: number;
  transferId: string | null;
  node: string;
  epoch: number;
  atMs: number;
}

export interface CallResult {
  status: number;
  text: string;
  node: string;
  epoch: number;
}

/** `body`: a string goes as text, anything else as JSON. */
export type Call = (method: string, pathname: string, body?: unknown, key?: string) => Promise<CallResult>;

/** A client call through the front door at `door`, with the node and epoch that answered. */
export function caller(door: string): Call {
  return async (method, pathname, body, key) => {
    const text = typeof body === 'string';
    const res = await fetch(door + pathname, {
      method,
      headers: { 'content-type': text ? 'text/plain' : 'application/json', ...(key ? { 'idempotency-key': key } : {}) },
      ...(body === undefined ? {} : { body: text ? body : JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const answer = await res.text();
    return { status: res.status, text: answer, node: res.headers.get('ftjs-node') ?? '?', epoch: Number(res.headers.get('ftjs-epoch') ?? -1) };
  };
}

export async function openAccounts(call: Call, keyPrefix: string): Promise<void> {
  for (let i = 0; i < ACCOUNTS; i++) {
    const r = await call('POST', '/accounts', { id: `acct-${i}`, balance: OPENING_BALANCE }, `${keyPrefix}-open-${i}`);
    if (r.status !== 201) throw new Error(`could not open account acct-${i}: ${r.status} ${r.text}`);
  }
}

/** Client load; `start` begins it, `stop` stops issuing and waits for every write in flight. */
/**
 * A closed loop of CLIENTS concurrent clients, each issuing its next call as soon as the last one
 * answered, until stop(): the lifecycle every drill workload shares (bank transfers, keyed writes).
 */
export abstract class ClosedLoop {
  /** Times of successful client responses (for the client-visible gap). */
  readonly successes: number[] = [];
  readonly violations: string[] = [];
  issued = 0;
  protected stopIssuing = false;
  private running: Promise<unknown> | null = null;

  start(): void {
    if (this.running) throw new Error('the workload is already running');
    this.stopIssuing = false;
    this.running = Promise.all(Array.from({ length: CLIENTS }, (_, c) => this.client(c)));
  }

  async stop(): Promise<void> {
    this.stopIssuing = true;
    await this.running;
    this.running = null;
  }

  protected abstract client(c: number): Promise<void>;
}

export class Workload extends ClosedLoop {
  readonly acks: Ack[] = [];

  constructor(
    private readonly call: Call,
    private readonly random: () => number,
    /** Distinguishes the keys of one run of load from another's. */
    private readonly keyPrefix: string,
  ) {
    super();
  }

  protected async client(c: number): Promise<void> {
    const { call, random } = this;
    for (let n = 0; !this.stopIssuing; n++) {
      if (n % 4 === 3) {
        try {
          const r = await call('GET', `/accounts/acct-${Math.floor(random() * ACCOUNTS)}`);
          if (r.status === 200) this.successes.push(Date.now());
        } catch {
          /* a read may fail during the failover; reads are not retried */
        }
        continue;
      }
      const key = `${this.keyPrefix}-${c}-${n}`;
      const from = Math.floor(random() * ACCOUNTS);
      const to = (from + 1 + Math.floor(random() * (ACCOUNTS - 1))) % ACCOUNTS;
      this.issued++;
      const deadline = Date.now() + WRITE_RETRY_MS;
      for (;;) {
        try {
          const r = await call('POST', '/transfer', { from: `acct-${from}`, to: `acct-${to}`, amount: 1 }, key);
          if (r.status === 201) {
            const now = Date.now();
            this.acks.push({ key, from, to, transferId: (JSON.parse(r.text) as { id: string }).id, node: r.node, epoch: r.epoch, atMs: now });
            this.successes.push(now);
            break;
          }
          if (r.status < 500) throw new Error(`transfer ${key} refused: ${r.status} ${r.text}`);
        } catch (error) {
          if ((error as Error).message.startsWith('transfer')) throw error;
        }
        if (Date.now() > deadline) {
          this.violations.push(`write ${key} was never acknowledged within ${WRITE_RETRY_MS} ms`);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  }
}

export interface Reconciled {
  writesLost: number;
  duplicates: number;
  transfers: number;
  violations: string[];
}

/**
 * Reconciles the live node against what the clients were told: the number of transfers, every
 * account's balance (each acknowledged transfer moved 1 cent), and every acknowledged transfer id
 * among `recent` that the ledger listing (the 1,000 most recent) still covers.
 */
export async function reconcile(liveUrl: string, acks: readonly Ack[], recent: readonly Ack[] = acks): Promise<Reconciled> {
  const violations: string[] = [];
  // The live node may answer 503 for a while (verifying its epoch after a stall, admission held): ask again.
  const get = async (pathname: string): Promise<unknown> => {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await fetch(`${liveUrl}${pathname}`, { signal: AbortSignal.timeout(10_000) });
      const text = await res.text();
      if (res.status === 200) return JSON.parse(text) as unknown;
      if (res.status !== 503 || Date.now() >= deadline) throw new Error(`reconcile: GET ${pathname} on the live node answered ${res.status}: ${text.slice(0, 200)}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  };
  const audit = (await get('/audit')) as { ok: boolean; transfers: number };
  const duplicates = Math.max(0, audit.transfers - acks.length);
  let writesLost = Math.max(0, acks.length - audit.transfers);
  const expected = new Array<number>(ACCOUNTS).fill(OPENING_BALANCE);
  for (const a of acks) {
    expected[a.from]! -= 1;
    expected[a.to]! += 1;
  }
  for (let i = 0; i < ACCOUNTS; i++) {
    const account = (await get(`/accounts/acct-${i}`)) as { balance: number };
    if (account.balance !== expected[i]) violations.push(`acct-${i} holds ${account.balance}, the acknowledged transfers say ${expected[i]}`);
  }
  const listed = audit.transfers - (acks.length - recent.length);
  if (listed <= 1000) {
    const ledger = (await get('/transfers?limit=1000')) as { transfers: Array<{ id: string }> };
    const ids = new Set(ledger.transfers.map((t) => t.id));
    writesLost = Math.max(writesLost, recent.filter((a) => a.transferId && !ids.has(a.transferId)).length);
  }
  if (!audit.ok) violations.push(`the live node's audit fails: ${JSON.stringify(audit)}`);
  if (writesLost > 0) violations.push(`${writesLost} acknowledged writes are missing on the live node`);
  if (duplicates > 0) violations.push(`${duplicates} transfers were applied beyond those acknowledged (duplicates)`);
  const status = (await get('/_ft/status')) as { divergence?: unknown };
  if (status.divergence) violations.push(`divergence: ${JSON.stringify(status.divergence)}`);
  return { writesLost, duplicates, transfers: audit.transfers, violations };
}

/** Longest stretch without a successful client response, from a second before the fault on. */
export function clientGapMs(successes: readonly number[], faultAtMs: number): number {
  const around = successes.filter((t) => t >= faultAtMs - 1000).sort((x, y) => x - y);
  let gap = 0;
  for (let i = 1; i < around.length; i++) gap = Math.max(gap, around[i]! - around[i - 1]!);
  if (around.length > 0) gap = Math.max(gap, around[0]! - faultAtMs);
  return gap;
}

/** Epochs in which more than one node released outputs (a split brain a client could see). */
export function speakerViolations(released: ReadonlyArray<{ node: string; epoch: number }>): { epochs: Record<string, string[]>; violations: string[] } {
  const epochs: Record<string, Set<string>> = {};
  for (const s of released) (epochs[s.epoch] ??= new Set()).add(s.node);
  const violations: string[] = [];
  for (const [epoch, nodes] of Object.entries(epochs)) if (nodes.size > 1) violations.push(`epoch ${epoch}: outputs released by ${[...nodes].join(' and ')}`);
  return { epochs: Object.fromEntries(Object.entries(epochs).map(([e, n]) => [e, [...n]])), violations };
}

/** The last `max` warnings and errors of each node, as `name level: message {fields}`. */
export function evidenceOf(nodes: Array<{ name: string; lines: readonly LogLine[] }>, max = 12): string[] {
  const out: string[] = [];
  for (const n of nodes) {
    const bad = n.lines.filter((l) => l.level >= 40).slice(-max);
    for (const l of bad) {
      const { level, time, msg, pid: _pid, hostname: _host, node: _node, ...fields } = l;
      const extra = Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
      out.push(`${n.name} ${time.slice(11, 23)} ${level >= 50 ? 'error' : 'warn'}: ${msg}${extra}`);
    }
  }
  return out;
}

/**
 * pause-primary: responses of the old primary read by the drill after it was resumed. The drill reads
 * them late when its own process was starved (a response the primary wrote before its SIGSTOP waits in
 * the socket), so a late one is a violation only when the backup that took over had not received its
 * seq when it claimed (`takeoverSeq`: its receivedSeq then): that effect would be missing on the live node.
 */
export function lateReleases(released: ReadonlyArray<{ node: string; seq: number; atMs: number }>, resumedAtMs: number, takeoverSeq: number | null): { violation: string | null; covered: number } {
  const late = released.filter((r) => r.node === 'primary' && r.atMs >= resumedAtMs);
  const beyond = late.filter((r) => takeoverSeq === null || r.seq > takeoverSeq);
  return {
    violation:
      beyond.length > 0
        ? `${beyond.length} responses left the old primary after it resumed (the backup was live) with seqs ${beyond.map((r) => r.seq).join(', ')} beyond ${takeoverSeq === null ? 'what the backup is known to have received' : `seq ${takeoverSeq}, the last the backup received before it claimed`}`
        : null,
    covered: late.length - beyond.length,
  };
}

/** The seq the backup had received when it claimed (its "drained … claiming epoch" line), or null. */
export function takeoverSeqOf(backup: { lines: readonly LogLine[] }): number | null {
  const line = backup.lines.find((l) => typeof l.receivedSeq === 'number' && /claiming epoch/.test(l.msg));
  return line ? (line.receivedSeq as number) : null;
}

/** Waits for `promise` at most `ms` (without leaving a timer behind to keep the process alive). */
export async function within(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([promise, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]);
  clearTimeout(timer);
}

/**
 * The checks at the end of every drill round: the live node holds every acknowledged write once
 * (`service.reconcile`), no node reported a divergence, and each epoch had one speaker.
 */
export async function endOfRoundChecks(
  live: { url: string } | null,
  service: { reconcile(liveUrl: string, all: readonly object[], recent: readonly object[]): Promise<{ writesLost: number; duplicates: number; violations: string[] }> },
  acks: readonly object[],
  nodes: ReadonlyArray<{ name: string; lines: ReadonlyArray<{ msg: string }> }>,
  released: ReadonlyArray<{ node: string; epoch: number }>,
): Promise<{ writesLost: number; duplicates: number; epochs: Record<string, string[]>; violations: string[] }> {
  const violations: string[] = [];
  let writesLost = 0;
  let duplicates = 0;
  if (!live) violations.push('no node is live after the round');
  else {
    const reconciled = await service.reconcile(live.url, acks, acks);
    writesLost = reconciled.writesLost;
    duplicates = reconciled.duplicates;
    violations.push(...reconciled.violations);
  }
  for (const p of nodes) if (p.lines.some((l) => /DIVERGENCE/.test(l.msg))) violations.push(`${p.name} reported a divergence`);
  const speakers = speakerViolations(released);
  violations.push(...speakers.violations);
  return { writesLost, duplicates, epochs: speakers.epochs, violations };
}

/**
 * A node that lost its epoch and joined the winner as a fresh backup instead of exiting (cli/pair.ts):
 * a node kept, not a violation (it released nothing since it was fenced, and its held outputs were dropped).
 */
export const REJOINED = /as a fresh backup/;

/** The node lost its epoch as it should: it exited 75, or it joined the winner again (REJOINED). */
export function fencedAsExpected(p: { exitCode: number | null; lines: ReadonlyArray<{ msg: string }> }): boolean {
  return p.exitCode === 75 || p.lines.some((l) => REJOINED.test(l.msg));
}

/** Health polls of a round's end: at most this many, LIVE_POLL_MS apart. */
const LIVE_POLLS = 100;
const LIVE_POLL_MS = 50;

/**
 * The node that answers /_ft/health with 200 (live), polled until one does; two at once is a
 * violation (pushed to `violations`). null: none became live.
 */
export async function findLiveNode<P extends { name: string }>(candidates: ReadonlyArray<{ p: P; url: string }>, violations: string[]): Promise<{ p: P; url: string } | null> {
  for (let i = 0; i < LIVE_POLLS; i++) {
    const up = await Promise.all(
      candidates.map(async (c) => {
        try {
          const res = await fetch(`${c.url}/_ft/health`, { signal: AbortSignal.timeout(1000) });
          await res.arrayBuffer();
          return res.status === 200 ? c : null;
        } catch {
          return null;
        }
      }),
    );
    const live = up.filter((x) => x !== null);
    if (live.length > 1) violations.push(`two nodes report live: ${live.map((n) => n.p.name).join(', ')}`);
    if (live.length >= 1) return live[0]!;
    await new Promise((resolve) => setTimeout(resolve, LIVE_POLL_MS));
  }
  return null;
}
