// Scripted request sequences for the example guest services in guest-apps/.
//
// Each workload names its app by a path relative to the repository root and
// lists the requests to send, in order, one after the other (a step is sent
// when the previous response has arrived). The scripts are deterministic in
// content; what the services answer may depend on timing, randomness and the
// clock, which is exactly what a recording has to capture and a replay has to
// reproduce.
//
// Paths are origin-relative ("/kv/a"); the test prefixes whatever origin the
// node listens on. Query strings and path segments are already URL-encoded.
//
// outbound: the upstream server is started by the test at run time, so the
// workload carries the placeholder env { UPSTREAM: '__UPSTREAM__' }. Replace it
// with withUpstream(workloads.outbound, 'http://127.0.0.1:PORT') (no trailing
// slash). The upstream should answer every path (an echo of method, path and
// body is ideal); the workload also probes GET /status/404 and POST /hook.
// One step deliberately fetches http://127.0.0.1:1/ (connection refused -> 502).

import { mulberry32 } from '../dist/cli/seeded-random.js';

export interface Step {
  method: string;
  path: string;
  body?: string;
  headers?: Record<string, string>;
}

export interface Workload {
  /** Path of the guest module, relative to the repository root. */
  app: string;
  env?: Record<string, string>;
  /** Node flags for the recording (limits); a replay takes them from the trace. */
  args?: string[];
  steps: Step[];
}

export const UPSTREAM_PLACEHOLDER = '__UPSTREAM__';

const JSON_HEADERS = { 'content-type': 'application/json' };

const get = (path: string): Step => ({ method: 'GET', path });
const head = (path: string): Step => ({ method: 'HEAD', path });
const del = (path: string): Step => ({ method: 'DELETE', path });
const put = (path: string, body: string, headers?: Record<string, string>): Step => (headers ? { method: 'PUT', path, body, headers } : { method: 'PUT', path, body });
const post = (path: string, body?: string): Step => (body === undefined ? { method: 'POST', path } : { method: 'POST', path, body, headers: JSON_HEADERS });
const postJson = (path: string, value: unknown): Step => post(path, JSON.stringify(value));
const other = (method: string, path: string): Step => ({ method, path });

// ---------------------------------------------------------------------------
// kv.js

function kvSteps(): Step[] {
  const s: Step[] = [get('/'), get('/kv'), get('/kv/missing')];
  for (let i = 0; i < 20; i++) s.push(put(`/kv/key-${i}`, `value-${i}`));
  for (let i = 0; i < 20; i += 3) s.push(get(`/kv/key-${i}`));
  s.push(get('/kv'));
  // Keys are URL-decoded.
  s.push(put('/kv/hello%20world', 'spaces'), get('/kv/hello%20world'));
  s.push(put('/kv/caf%C3%A9', 'unicode \u2615 value'), get('/kv/caf%C3%A9'));
  s.push(put('/kv/a%2Fb', 'slash'), get('/kv/a%2Fb'), get('/kv/a/b'));
  s.push(put('/kv/empty', ''), get('/kv/empty'));
  s.push(put('/kv/big', 'x'.repeat(16_384)), get('/kv/big'));
  s.push(put('/kv/json', '{"nested":{"a":[1,2,3]}}', JSON_HEADERS), get('/kv/json'));
  s.push(head('/kv/key-2'));
  // Overwrite, delete, delete again.
  s.push(put('/kv/key-0', 'updated'), get('/kv/key-0'));
  s.push(del('/kv/key-1'), del('/kv/key-1'), get('/kv/key-1'), del('/kv/never-existed'));
  // Error paths.
  s.push(other('POST', '/kv/key-2'), other('PATCH', '/kv/key-2'), other('DELETE', '/kv'), other('POST', '/'), get('/kv/%E0%A4%A'), get('/kv/'), put('/kv/', 'no key'), get('/nope'), get('/kvx'));
  for (let i = 10; i < 20; i++) s.push(del(`/kv/key-${i}`));
  for (let i = 0; i < 5; i++) s.push(put(`/kv/round-${i}`, String(i * i)), get(`/kv/round-${i}`));
  s.push(get('/kv'));
  return s;
}

// ---------------------------------------------------------------------------
// bank.js

function bankSteps(): Step[] {
  const s: Step[] = [get('/'), get('/audit'), get('/accounts')];
  s.push(
    postJson('/accounts', { id: 'alice', balance: 100_000 }),
    postJson('/accounts', { id: 'bob', balance: 50_000 }),
    postJson('/accounts', { id: 'carol', balance: 0 }),
    postJson('/accounts', { id: 'dave', balance: 25_000 }),
    postJson('/accounts', { id: 'erin' }), // balance defaults to 0
    get('/audit'),
  );
  // Account creation errors.
  s.push(
    postJson('/accounts', { id: 'alice', balance: 1 }), // 409 duplicate
    post('/accounts', 'not json'), // 400
    post('/accounts', '[1,2]'), // 400
    postJson('/accounts', { id: '', balance: 1 }), // 400
    postJson('/accounts', { id: 'x', balance: -5 }), // 400
    postJson('/accounts', { id: 'y', balance: 1.5 }), // 400
    postJson('/accounts', { id: 'z', balance: '100' }), // 400
    postJson('/accounts', { id: '__reserve__', balance: 1 }), // 400
    postJson('/accounts', { id: 'a'.repeat(65), balance: 1 }), // 400
    postJson('/accounts', { id: 'whale', balance: 10_000_000 }), // 409 reserve too small
  );
  s.push(
    get('/accounts'),
    get('/accounts/alice'),
    get('/accounts/nobody'), // 404
    get('/accounts/__reserve__'), // 404: internal
    get('/accounts/%E0%A4%A'), // 400
  );
  // A deterministic stream of transfers; some hit insufficient funds (409).
  const people = ['alice', 'bob', 'carol', 'dave', 'erin'];
  for (let i = 0; i < 36; i++) {
    const from = people[i % people.length]!;
    const to = people[(i + 1 + ((i * 7) % 4)) % people.length]!; // never `from`
    s.push(postJson('/transfer', { from, to, amount: ((i * 1_337) % 9_000) + 1 }));
    if (i % 9 === 8) s.push(get('/audit'));
  }
  // Transfer errors.
  s.push(
    postJson('/transfer', { from: 'carol', to: 'alice', amount: 10_000_000 }), // 409
    postJson('/transfer', { from: 'nobody', to: 'alice', amount: 1 }), // 404
    postJson('/transfer', { from: 'alice', to: 'nobody', amount: 1 }), // 404
    postJson('/transfer', { from: '__reserve__', to: 'alice', amount: 1 }), // 404
    postJson('/transfer', { from: 'alice', to: 'bob', amount: 0 }), // 400
    postJson('/transfer', { from: 'alice', to: 'bob', amount: -5 }), // 400
    postJson('/transfer', { from: 'alice', to: 'bob', amount: 1.5 }), // 400
    postJson('/transfer', { from: 'alice', to: 'bob', amount: '100' }), // 400
    postJson('/transfer', { from: 'alice', to: 'alice', amount: 1 }), // 400
    postJson('/transfer', { from: 'alice' }), // 400
    post('/transfer', '{oops'), // 400
  );
  s.push(
    get('/transfers?limit=5'),
    get('/transfers?limit=0'),
    get('/transfers'),
    get('/transfers?limit=abc'), // 400
    get('/transfers?limit=5000'), // 400
    get('/transfers?limit=-1'), // 400
  );
  s.push(
    get('/transfer'), // 405
    other('DELETE', '/accounts'), // 405
    post('/audit'), // 405
    other('PUT', '/accounts/alice'), // 405
    get('/nope'), // 404
  );
  s.push(get('/accounts'), get('/audit'));
  return s;
}

// ---------------------------------------------------------------------------
// timers.js (timer ids are handed out in order, starting at 1, by successful
// /schedule, /interval and /background requests only)

function timersSteps(): Step[] {
  const s: Step[] = [];
  let nextId = 1;
  const schedule = (ms: number, tag: string) => {
    s.push(post(`/schedule?ms=${ms}&tag=${tag}`));
    return nextId++;
  };
  const interval = (ms: number, count: number, tag: string) => {
    s.push(post(`/interval?ms=${ms}&count=${count}&tag=${tag}`));
    return nextId++;
  };
  const background = (ms: number, tag: string) => {
    s.push(post(`/background?ms=${ms}&tag=${tag}`));
    return nextId++;
  };

  s.push(get('/'), get('/order'), get('/events'), get('/pending'));
  schedule(10, 'a');
  schedule(20, 'b');
  schedule(50, 'c');
  schedule(0, 'zero');
  s.push(get('/pending'), get('/delay?ms=60'), get('/events'));

  interval(10, 3, 'tick');
  s.push(get('/pending'), get('/delay?ms=50'), get('/events?since=4'));

  // Cancel a long timeout and a long interval well before they fire.
  const longTimeout = schedule(5_000, 'long');
  s.push(post(`/cancel/${longTimeout}`), post(`/cancel/${longTimeout}`)); // 200, then 404
  const longInterval = interval(5_000, 2, 'slow');
  s.push(get('/pending'), post(`/cancel/${longInterval}`));

  // A race: cancel a 30 ms timer after ~10 ms (normally still pending).
  const race = schedule(30, 'race');
  s.push(get('/delay?ms=10'), post(`/cancel/${race}`));

  // ctx.waitUntil: the response comes first, the event later.
  background(20, 'bg');
  s.push(get('/events'), get('/delay?ms=40'), get('/events'));

  // A burst of short timers with staggered delays.
  for (let i = 0; i < 10; i++) schedule(10 + ((i * 7) % 41), `burst-${i}`);
  s.push(get('/pending'), get('/delay?ms=60'), get('/events'));

  interval(15, 5, 'five');
  s.push(get('/delay?ms=25'), get('/pending'), get('/delay?ms=100'), get('/events'));

  // Two backgrounds and a timer racing each other.
  background(10, 'bg-a');
  schedule(15, 'between');
  background(30, 'bg-b');
  s.push(get('/delay?ms=50'), get('/events?since=20'));

  // Error paths.
  s.push(
    post('/schedule'), // 400 missing ms
    post('/schedule?ms=-1'), // 400
    post('/schedule?ms=abc'), // 400
    post('/schedule?ms=1.5'), // 400
    post('/schedule?ms=999999'), // 400
    post('/interval?ms=0&count=2'), // 400
    post('/interval?ms=10&count=0'), // 400
    post('/background?ms=x'), // 400
    post('/cancel/abc'), // 400
    post('/cancel/0'), // 400
    post('/cancel/999'), // 404
    get('/delay?ms=-5'), // 400
    get('/events?since=-1'), // 400
    get('/schedule?ms=10'), // 405
    get('/cancel/1'), // 405
    post('/delay?ms=1'), // 405
    post('/events'), // 405
    get('/nope'), // 404
  );
  s.push(get('/order'), get('/delay?ms=20'), get('/pending'), get('/events'));
  return s;
}

// ---------------------------------------------------------------------------
// random.js

function randomSteps(): Step[] {
  const s: Step[] = [get('/'), get('/state')];
  s.push(
    get('/roll'),
    get('/roll?n=5'),
    get('/roll?n=10&sides=20'),
    get('/roll?n=1000&sides=2'),
    get('/state'),
    get('/uuid'),
    get('/uuid?n=5'),
    get('/bytes'),
    get('/bytes?n=1'),
    get('/bytes?n=256'),
    get('/bytes?n=65536'),
    get('/state'),
    get('/now'),
    get('/now'),
    postJson('/shuffle', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    postJson('/shuffle', ['a', 'b', 'c']),
    postJson('/shuffle', []),
    postJson('/shuffle', [{ x: 1 }, { x: 2 }, { x: 3 }, null, true, 'five']),
    get('/state'),
  );
  // Error paths.
  s.push(
    get('/roll?n=0'),
    get('/roll?n=abc'),
    get('/roll?sides=1'),
    get('/roll?n=1001'),
    get('/uuid?n=101'),
    get('/bytes?n=0'),
    get('/bytes?n=65537'),
    post('/shuffle', 'not json'),
    post('/shuffle', '{"a":1}'),
    post('/roll'), // 405
    get('/shuffle'), // 405
    get('/nope'), // 404
  );
  for (let i = 0; i < 12; i++) {
    s.push(get(`/roll?n=${i + 1}&sides=${6 + i}`));
    if (i % 3 === 0) s.push(get(`/uuid?n=${i + 1}`), get(`/bytes?n=${(i + 1) * 8}`));
    if (i % 4 === 1) s.push(get('/now'));
  }
  s.push(get('/state'));
  return s;
}

// ---------------------------------------------------------------------------
// cpu.js

function cpuSteps(): Step[] {
  const s: Step[] = [get('/'), get('/count')];
  s.push(
    get('/work?n=10'),
    get('/work?n=1000'),
    get('/work?n=100000'),
    get('/work?n=1000000'),
    get('/spin?ms=0'),
    get('/spin?ms=5'),
    get('/spin?ms=25'),
    get('/recurse?depth=10'),
    get('/recurse?depth=1000'),
    get('/alloc?mb=1'),
    get('/alloc?mb=2&kind=array'),
    get('/alloc?mb=1&kind=string'),
    get('/count'),
  );
  s.push(
    get('/work'), // 400
    get('/work?n=abc'), // 400
    get('/spin?ms=-1'), // 400
    get('/alloc?mb=1&kind=weird'), // 400
    get('/recurse?depth=-1'), // 400
    other('POST', '/work?n=1'), // 405
    get('/nope'), // 404
    get('/count'),
  );
  // The hostile ones: each must fail as a guest error, and the VM keeps serving.
  s.push(get('/forever'), get('/count'), get('/recurse?depth=1000000'), get('/count'), get('/alloc?mb=4096'), get('/count'), get('/throw'), get('/count'), get('/reject'), get('/count'));
  s.push(get('/work?n=100000'), get('/spin?ms=5'), get('/alloc?mb=1'), get('/count'));
  return s;
}

// ---------------------------------------------------------------------------
// outbound.js

function outboundSteps(): Step[] {
  const s: Step[] = [get('/')];
  s.push(
    get('/proxy?path=/'),
    get('/proxy?path=/hello'),
    get('/proxy?path=/json'),
    get('/proxy?path=/status/404'),
    get('/proxy?path=%2Fecho%3Fx%3D1%26y%3Dtwo'),
    get('/proxy?path=/caf%25C3%25A9'),
    postJson('/notify', { msg: 'hi', n: 1 }),
    post('/notify'), // empty body -> payload null
    postJson('/notify', [1, 2, 3]),
    get('/fanout?paths=/a,/b,/c'),
    get('/fanout?paths=/x'),
    get('/fanout?paths=/1,/2,/3,/4,/5,/6,/7,/8'),
  );
  // Error paths.
  s.push(
    get('/proxy'), // 400
    get('/proxy?path=nope'), // 400
    get('/proxy?path=//evil.example'), // 400
    post('/notify', 'not json'), // 400
    get('/fanout'), // 400
    get('/fanout?paths=/a,bad'), // 400
    get('/fetch?url=http://127.0.0.1:1/'), // 502 connection refused
    get('/fetch?url=notaurl'), // 400
    get('/fetch?url=ftp://example.com/'), // 400
    get('/fetch'), // 400
    post('/proxy?path=/x'), // 405
    get('/notify'), // 405
    get('/nope'), // 404
  );
  for (let i = 0; i < 10; i++) {
    s.push(get(`/proxy?path=/item/${i}`));
    s.push(postJson('/notify', { i, label: `event-${i}` }));
  }
  s.push(get('/fanout?paths=/end-a,/end-b'), get('/'));
  return s;
}

// ---------------------------------------------------------------------------
// probe.js

function probeSteps(): Step[] {
  const s: Step[] = [get('/'), get('/probe')];
  for (let i = 0; i < 6; i++) {
    s.push(get('/clock'), get('/globals'), get('/clock'), get('/probe'));
  }
  s.push(other('POST', '/probe'), get('/nope'), get('/clock'), get('/probe'));
  return s;
}

// ---------------------------------------------------------------------------

export const workloads: Record<string, Workload> = {
  kv: { app: 'guest-apps/kv.js', steps: kvSteps() },
  bank: { app: 'guest-apps/bank.js', steps: bankSteps() },
  timers: { app: 'guest-apps/timers.js', steps: timersSteps() },
  random: { app: 'guest-apps/random.js', steps: randomSteps() },
  // Its hostile steps run into the limits (a loop to the CPU budget, a memory bomb to the heap limit),
  // recorded and replayed twice each: lower limits make each cheaper and prove the same.
  cpu: { app: 'guest-apps/cpu.js', args: ['--task-budget-ms', '300', '--memory-limit-mb', '48'], steps: cpuSteps() },
  outbound: { app: 'guest-apps/outbound.js', env: { UPSTREAM: UPSTREAM_PLACEHOLDER }, steps: outboundSteps() },
  probe: { app: 'guest-apps/probe.js', steps: probeSteps() },
};

/** A copy of `workload` whose env has every '__UPSTREAM__' replaced by `upstream`. */
export function withUpstream(workload: Workload, upstream: string): Workload {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(workload.env ?? {})) env[k] = v.split(UPSTREAM_PLACEHOLDER).join(upstream);
  return { ...workload, env };
}

// ---------------------------------------------------------------------------
// Mixed load: kv and bank requests, interleaved.

export type MixedService = 'kv' | 'bank';

export const MIXED_APPS: Record<MixedService, string> = {
  kv: 'guest-apps/kv.js',
  bank: 'guest-apps/bank.js',
};

export interface MixedStep extends Step {
  /** Which service the step goes to (see MIXED_APPS). */
  service: MixedService;
}

const MIXED_ACCOUNTS = 10;
const MIXED_OPENING_BALANCE = 10_000; // 10 x 10_000 cents, well within the bank's reserve
const MIXED_KEYS = 64;

/**
 * `n` steps: first (up to) 10 bank account openings (mix-0 .. mix-9), then a
 * seeded mix of roughly 60% kv and 40% bank requests. The same (n, seed)
 * always gives the same steps. Run against fresh kv and bank services; on a
 * bank that already has the mix accounts, the openings answer 409 and the
 * rest still works.
 */
export function mixedWorkload(n: number, seed: number): MixedStep[] {
  const rand = mulberry32(seed);
  const int = (max: number) => Math.floor(rand() * max);
  const steps: MixedStep[] = [];
  const account = (i: number) => `mix-${i}`;

  for (let i = 0; i < MIXED_ACCOUNTS && steps.length < n; i++) {
    steps.push({ service: 'bank', ...postJson('/accounts', { id: account(i), balance: MIXED_OPENING_BALANCE }) });
  }

  while (steps.length < n) {
    if (rand() < 0.6) {
      const key = `k-${int(MIXED_KEYS)}`;
      const r = rand();
      if (r < 0.4) steps.push({ service: 'kv', ...put(`/kv/${key}`, `v-${int(1_000_000)}-${'x'.repeat(int(64))}`) });
      else if (r < 0.85) steps.push({ service: 'kv', ...get(`/kv/${key}`) });
      else if (r < 0.95) steps.push({ service: 'kv', ...del(`/kv/${key}`) });
      else steps.push({ service: 'kv', ...get('/kv') });
    } else {
      const r = rand();
      if (r < 0.7) {
        const from = int(MIXED_ACCOUNTS);
        const to = (from + 1 + int(MIXED_ACCOUNTS - 1)) % MIXED_ACCOUNTS;
        steps.push({
          service: 'bank',
          ...postJson('/transfer', { from: account(from), to: account(to), amount: 1 + int(2_000) }),
        });
      } else if (r < 0.85) steps.push({ service: 'bank', ...get(`/accounts/${account(int(MIXED_ACCOUNTS))}`) });
      else if (r < 0.95) steps.push({ service: 'bank', ...get('/audit') });
      else steps.push({ service: 'bank', ...get('/transfers?limit=10') });
    }
  }
  return steps;
}
