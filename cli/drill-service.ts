// What a drill drives and checks, chosen per guest: bank.js's ledger (transfers between accounts,
// reconciled to the cent, duplicates counted) or the generic keyed store (cli/drill-kv.ts).
//
// A guest declares its workload by answering GET /.well-known/ftjs-drill with JSON:
//   { "workload": "bank" }                  the bank.js API (POST /accounts, POST /transfer, GET /audit, ...)
//   { "workload": "kv", "prefix": "/kv" }   PUT/GET <prefix>/<key>
// `--workload bank|kv` overrides it; a guest that declares nothing gets the keyed store at /kv.

import { type KvAck, KvLoad, reconcileKv } from './drill-kv.js';
import { type Ack, type Call, openAccounts, type Reconciled, reconcile, Workload } from './drill-workload.js';

export const WORKLOADS = ['auto', 'bank', 'kv'] as const;
export type WorkloadChoice = (typeof WORKLOADS)[number];
export const DRILL_DECLARATION_PATH = '/.well-known/ftjs-drill';
export const DEFAULT_KV_PREFIX = '/kv';

export type { Reconciled };

/** Client load; `start` begins it, `stop` stops issuing and waits for every write in flight. */
export interface ClientLoad {
  readonly acks: readonly object[];
  readonly successes: readonly number[];
  readonly violations: readonly string[];
  readonly issued: number;
  start(): void;
  stop(): Promise<void>;
}

export interface DrillService {
  /** What the drill reports it drives, e.g. "bank" or "kv at /kv". */
  readonly description: string;
  /** Once, when the service first serves (bank: open the accounts). */
  prepare(call: Call, keyPrefix: string): Promise<void>;
  load(call: Call, random: () => number, keyPrefix: string): ClientLoad;
  /** `all`: every write acknowledged so far (any round); `recent`: this round's, checked in detail. */
  reconcile(liveUrl: string, all: readonly object[], recent: readonly object[]): Promise<Reconciled>;
}

export const bankService: DrillService = {
  description: 'bank (ledger of transfers)',
  prepare: (call, keyPrefix) => openAccounts(call, keyPrefix),
  load: (call, random, keyPrefix) => new Workload(call, random, keyPrefix),
  reconcile: (liveUrl, all, recent) => reconcile(liveUrl, all as Ack[], recent as Ack[]),
};

export function kvService(prefix: string): DrillService {
  if (!/^\/[^?#]*$/.test(prefix) || prefix.endsWith('/')) throw new Error(`the kv prefix must be a path like "/kv" (no trailing slash), got "${prefix}"`);
  return {
    description: `kv (PUT/GET ${prefix}/<key>)`,
    prepare: async () => {},
    load: (call, random, keyPrefix) => new KvLoad(call, random, keyPrefix, prefix),
    reconcile: (liveUrl, all) => reconcileKv(liveUrl, prefix, all as KvAck[]),
  };
}

/** The service to drill: `--workload`, else the guest's declaration, else the keyed store at /kv. */
export async function chooseService(call: Call, choice: WorkloadChoice, kvPrefix: string | undefined): Promise<DrillService> {
  if (choice === 'bank') return bankService;
  if (choice === 'kv') return kvService(kvPrefix ?? DEFAULT_KV_PREFIX);
  const r = await declaration(call);
  const declared = r.status === 200 ? parseDeclaration(r.text) : null;
  if (declared === null) return kvService(kvPrefix ?? DEFAULT_KV_PREFIX);
  if (declared.workload === 'bank') return bankService;
  if (declared.workload === 'kv') return kvService(kvPrefix ?? (typeof declared.prefix === 'string' ? declared.prefix : DEFAULT_KV_PREFIX));
  throw new Error(`GET ${DRILL_DECLARATION_PATH} declares workload ${JSON.stringify(declared.workload)}; ftjs drill knows "bank" and "kv"`);
}

/** How long the drill waits for the service to answer its declaration other than with a 5xx. */
export const DECLARATION_WAIT_MS = 30_000;

/**
 * GET the declaration, again while the answer is a 5xx: the pair may not be serving yet (the front
 * door finds no live node, or the primary holds admission while its backup catches up). Taking that
 * 503 for "no declaration" drove the keyed store at a bank guest (404 on every write).
 */
async function declaration(call: Call): Promise<{ status: number; text: string }> {
  const deadline = Date.now() + DECLARATION_WAIT_MS;
  for (;;) {
    const r = await call('GET', DRILL_DECLARATION_PATH);
    if (r.status < 500) return r;
    if (Date.now() >= deadline) throw new Error(`GET ${DRILL_DECLARATION_PATH} still answered ${r.status} after ${DECLARATION_WAIT_MS} ms: ${r.text.slice(0, 120)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

function parseDeclaration(text: string): { workload?: unknown; prefix?: unknown } {
  try {
    const parsed = JSON.parse(text) as unknown;
    if (parsed !== null && typeof parsed === 'object') return parsed as { workload?: unknown; prefix?: unknown };
  } catch {
    /* reported below */
  }
  throw new Error(`GET ${DRILL_DECLARATION_PATH} answered 200 but not a JSON object: ${text.slice(0, 120)}`);
}
