// Clients of the simulated service and the checks on their histories. Each client sends one request at
// a time through the front door and retries it (same Idempotency-Key) until it is answered, so every
// write a client moves past was acknowledged; what it reads back must then reflect every one of them.
//   kv:   each client owns a few keys; a read must return exactly the last acknowledged write.
//   bank: keyed transfers between a few accounts; every answer for one key is the same transfer
//         (exactly once), /audit always balances, and every acknowledged transfer is in the final list.

import type { Owner, World } from './world.js';

export interface HttpRequest {
  method: string;
  path: string;
  body: string;
  key: string | null;
}

export interface HttpResponse {
  status: number;
  body: string;
  node: string;
  epoch: number;
}

export type Send = (client: Client, request: HttpRequest, answer: (response: HttpResponse | null) => void) => void;

/** A client gives up waiting for one attempt after this long, then retries. */
const ATTEMPT_TIMEOUT_MS = 1_500;

export abstract class Client implements Owner {
  crashed = false;
  pausedUntilMs = 0;
  acked = 0;
  lastAckAtMs = 0;
  stopped = false;
  /** Set when the client's history breaks an invariant. */
  violation: string | null = null;
  private attempt = 0;

  constructor(
    readonly id: string,
    protected readonly world: World,
    private readonly send: Send,
    private readonly thinkMs: [number, number],
  ) {}

  start(delayMs: number): void {
    this.world.at(delayMs, this, () => this.next());
  }

  protected abstract nextRequest(): HttpRequest | null;
  protected abstract onAnswer(request: HttpRequest, response: HttpResponse): void;

  private next(): void {
    if (this.stopped) return;
    const request = this.nextRequest();
    if (!request) return;
    this.issue(request);
  }

  /** Sends `request` until a non-503 answer arrives. */
  protected issue(request: HttpRequest): void {
    const attempt = ++this.attempt;
    let done = false;
    const retry = (): void => {
      if (done || attempt !== this.attempt) return;
      done = true;
      this.world.at(this.world.int(50, 200), this, () => this.issueAgain(request));
    };
    this.world.at(ATTEMPT_TIMEOUT_MS, this, retry);
    this.send(this, request, (response) => {
      if (done || attempt !== this.attempt) return;
      if (response === null || response.status === 503) return retry();
      done = true;
      this.acked++;
      this.lastAckAtMs = this.world.nowMs;
      this.onAnswer(request, response);
      this.world.at(this.world.int(this.thinkMs[0], this.thinkMs[1]), this, () => this.next());
    });
  }

  private issueAgain(request: HttpRequest): void {
    if (this.stopped) return;
    this.issue(request);
  }

  protected fail(what: string): void {
    this.violation ??= `${this.id}: ${what}`;
  }
}

export class KvClient extends Client {
  private n = 0;
  /** key -> the value of its last acknowledged PUT. */
  readonly lastAcked = new Map<string, string>();
  /** key -> the value of a PUT sent and not (yet) answered: it may or may not have taken effect. */
  private readonly unanswered = new Map<string, string>();

  protected nextRequest(): HttpRequest {
    const key = `${this.id}-k${this.world.int(0, 2)}`;
    if (this.world.chance(0.5)) return { method: 'GET', path: `/kv/${key}`, body: '', key: null };
    const value = `${this.id}-v${++this.n}`;
    this.unanswered.set(key, value);
    return { method: 'PUT', path: `/kv/${key}`, body: value, key: `${this.id}-put-${this.n}` };
  }

  protected onAnswer(request: HttpRequest, response: HttpResponse): void {
    const key = request.path.slice(4);
    if (request.method === 'PUT') {
      if (response.status !== 200) return this.fail(`PUT ${key} answered ${response.status}: ${response.body}`);
      this.lastAcked.set(key, request.body);
      if (this.unanswered.get(key) === request.body) this.unanswered.delete(key);
      return;
    }
    this.checkRead(key, response);
  }

  /**
   * The values a read of `key` sent now may return: the last acknowledged one, and the one of a PUT
   * still in flight or abandoned when the client stopped (a read concurrent with a write may see either).
   */
  acceptable(key: string): Array<string | undefined> {
    const pending = this.unanswered.get(key);
    return pending === undefined ? [this.lastAcked.get(key)] : [this.lastAcked.get(key), pending];
  }

  checkRead(key: string, response: HttpResponse, acceptable: Array<string | undefined> = [this.lastAcked.get(key)]): void {
    const want = acceptable[0];
    if (response.status === 404) {
      if (want !== undefined) this.fail(`acknowledged write lost: GET ${key} is 404 (node ${response.node}, epoch ${response.epoch}), but ${want} was acknowledged`);
      return;
    }
    if (response.status !== 200) return this.fail(`GET ${key} answered ${response.status}`);
    const got = (JSON.parse(response.body) as { value: string }).value;
    if (!acceptable.includes(got)) this.fail(`acknowledged write lost or stale read: GET ${key} = ${got} (node ${response.node}, epoch ${response.epoch}), last acknowledged ${want}`);
  }
}

export const BANK_ACCOUNTS = ['a0', 'a1', 'a2', 'a3'];

export class BankClient extends Client {
  private n = 0;
  private setupDone: boolean;
  private setupStep = 0;
  /** Idempotency-Key -> the transfer id the first 201 answer carried. */
  readonly transfers = new Map<string, string>();

  constructor(
    id: string,
    world: World,
    send: Send,
    thinkMs: [number, number],
    private readonly opener: boolean,
    private readonly ready: () => boolean,
  ) {
    super(id, world, send, thinkMs);
    this.setupDone = !opener;
  }

  protected nextRequest(): HttpRequest | null {
    if (!this.setupDone) {
      const id = BANK_ACCOUNTS[this.setupStep++]!;
      if (this.setupStep === BANK_ACCOUNTS.length) this.setupDone = true;
      return { method: 'POST', path: '/accounts', body: JSON.stringify({ id, balance: 10_000 }), key: `open-${id}` };
    }
    if (!this.ready()) {
      // Waits (by asking something harmless) until the accounts exist.
      return { method: 'GET', path: '/audit', body: '', key: null };
    }
    if (this.world.chance(0.2)) return { method: 'GET', path: '/audit', body: '', key: null };
    const from = this.world.pick(BANK_ACCOUNTS);
    const to = this.world.pick(BANK_ACCOUNTS.filter((a) => a !== from));
    return { method: 'POST', path: '/transfer', body: JSON.stringify({ from, to, amount: this.world.int(1, 500) }), key: `${this.id}-t${++this.n}` };
  }

  get opened(): boolean {
    return this.opener && this.setupDone && this.acked >= BANK_ACCOUNTS.length;
  }

  protected onAnswer(request: HttpRequest, response: HttpResponse): void {
    if (request.path === '/audit') {
      if (response.status !== 200) return this.fail(`GET /audit answered ${response.status}`);
      const audit = JSON.parse(response.body) as { ok: boolean; total: number; expected: number };
      if (!audit.ok) this.fail(`the ledger does not balance: total ${audit.total}, expected ${audit.expected} (node ${response.node})`);
      return;
    }
    if (request.path === '/accounts') {
      if (response.status !== 201) this.fail(`opening an account answered ${response.status}: ${response.body}`);
      return;
    }
    if (response.status === 409 || response.status === 400) return; // insufficient funds is an answer
    if (response.status !== 201) return this.fail(`transfer answered ${response.status}: ${response.body}`);
    const id = (JSON.parse(response.body) as { id: string }).id;
    const before = this.transfers.get(request.key!);
    if (before !== undefined && before !== id) this.fail(`not exactly once: key ${request.key} answered transfer ${before}, then ${id}`);
    this.transfers.set(request.key!, id);
  }

  /** The transfers acknowledged so far: a final list read sent now must hold every one of them. */
  acknowledged(): Map<string, string> {
    return new Map(this.transfers);
  }

  /**
   * 201 answers seen for one key more than once are checked in onAnswer; this checks the final list
   * against the transfers acknowledged when it was requested (one acknowledged later may follow it).
   */
  checkFinal(list: Array<{ id: string }>, count: number, acknowledged: Map<string, string> = this.transfers): void {
    const ids = new Set<string>();
    for (const t of list) {
      if (ids.has(t.id)) this.fail(`transfer ${t.id} applied twice`);
      ids.add(t.id);
    }
    if (count > list.length) return; // the list is capped; nothing more to check
    for (const [key, id] of acknowledged) if (!ids.has(id)) this.fail(`acknowledged transfer lost: ${key} (${id}) is not in the final list`);
  }
}
