// Replay determinism (DESIGN invariant 1) for every guest app: record a scripted workload under one
// time zone and locale, replay under two others; every output hash, console line and the final state
// hash must match. A second recording (of the random workload) differs (time, randomness) and replays too.

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { Kind } from '../dist/logging-channel/entry.js';
import { readTrace } from '../dist/logging-channel/trace-reader.js';
import { replayJson, runSteps, type StepResult, send, startRun, tempDir, waitFor } from './helpers.js';
import { type Workload, withUpstream, workloads } from './workloads.js';

const RECORD_ENV = { TZ: 'UTC', LANG: 'en_US.UTF-8', LC_ALL: 'en_US.UTF-8' };
const REPLAY_ENVS = [
  { TZ: 'Pacific/Chatham', LANG: 'de_DE.UTF-8', LC_ALL: 'de_DE.UTF-8' },
  { TZ: 'America/St_Johns', LANG: 'ja_JP.UTF-8', LC_ALL: 'ja_JP.UTF-8' },
];

let upstream: http.Server;
let upstreamUrl = '';
const dir = tempDir();

beforeAll(async () => {
  // A real upstream on loopback for outbound.js: echoes method, path and body; /status/N answers N.
  upstream = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c));
    req.on('end', () => {
      const status = /^\/status\/(\d{3})/.exec(req.url ?? '')?.[1];
      res.writeHead(status ? Number(status) : 200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ method: req.method, path: req.url, body }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => upstream.close(() => resolve())));

interface Recording {
  trace: string;
  results: StepResult[];
  consoleLines: string[];
  finalStateHash: string;
}

async function record(name: string, workload: Workload, suffix: string): Promise<Recording> {
  const trace = path.join(dir, `${name}-${suffix}.trace`);
  // The outbound workload's upstream is on 127.0.0.1, which the egress policy refuses unless allowed.
  const node = await startRun(workload.app, { record: trace, env: workload.env ?? {}, processEnv: RECORD_ENV, args: ['--allow-fetch', '127.0.0.1', ...(workload.args ?? [])] });
  try {
    const results = await runSteps(node.url, workload.steps);
    if (name === 'timers') {
      // Let every scheduled timer fire inside the recording.
      await waitFor(async () => JSON.parse((await send(node.url, { method: 'GET', path: '/pending' })).body).pending.length === 0, 'timers to drain', 10_000, 50);
    }
    await node.stop('SIGINT');
    expect(node.exitCode).toBe(0);
    const consoleLines = node.lines.filter((l) => l.guest === true).map((l) => l.msg);
    const final = node.find((l) => l.msg === 'final state');
    expect(final, 'the node logs its final state hash on shutdown').toBeDefined();
    return { trace, results, consoleLines, finalStateHash: final!.stateHash as string };
  } finally {
    await node.stop('SIGKILL');
  }
}

/** The recorded inputs of `kind` (clock readings, entropy), as one string to compare recordings by. */
async function recordedInputs(trace: string, kind: number): Promise<string[]> {
  const { entries } = await readTrace(trace);
  return entries.filter((e) => e.kind === kind).map((e) => Buffer.from(e.payload).toString('hex'));
}

/** Replays `rec` under `env` and checks it agrees with the recording bit for bit. */
async function replayAgrees(name: string, workload: Workload, rec: Recording, env: Record<string, string>): Promise<void> {
  const replay = await replayJson(rec.trace, env);
  expect(replay.summary.divergence, `${name} replay of ${path.basename(rec.trace)} under ${env.TZ}`).toBeNull();
  expect(replay.code).toBe(0);
  expect(replay.summary.ok).toBe(true);
  expect(replay.summary.tasks).toBeGreaterThanOrEqual(workload.steps.length + 1);
  expect(replay.summary.stateHashesVerified).toBe(1);
  expect(replay.summary.finalStateHash).toBe(rec.finalStateHash);
  // The replay prints the guest console exactly as the recording logged it.
  expect(replay.console.map((c) => c.text)).toEqual(rec.consoleLines);
}

/** Each workload's recording, once its test has replayed it under both environments. */
const replayed = new Map<string, Recording>();

const workloadFor = (name: string): Workload => (name === 'outbound' ? withUpstream(workloads[name]!, upstreamUrl) : workloads[name]!);

describe.each(Object.keys(workloads))('%s', (name) => {
  test('records under TZ=UTC and replays bit for bit under two other time zones and locales', async () => {
    const workload = workloadFor(name);
    const rec = await record(name, workload, 'a');
    expect(rec.results.length).toBe(workload.steps.length);
    // One recording, replayed under both environments at once (each replay is CPU; a second recording
    // of every workload proved only what the random workload's second recording below proves).
    await Promise.all(REPLAY_ENVS.map((env) => replayAgrees(name, workload, rec, env)));
    replayed.set(name, rec);
  });
});

test('a second recording of the same workload differs (clock, entropy, answers, final state) and replays too', async () => {
  const name = 'random';
  const workload = workloadFor(name);
  // The first is the one the test above recorded and replayed (when that test ran: `-t` may skip it).
  const earlier = replayed.get(name);
  const [first, second] = await Promise.all([earlier ?? record(name, workload, 'first'), record(name, workload, 'second')]);
  // It differs: every boot reads the clock and draws Math.random's seed from the entropy input, so the
  // recorded inputs differ run to run, and with them the VM's final state.
  const clockA = await recordedInputs(first.trace, Kind.Clock);
  const clockB = await recordedInputs(second.trace, Kind.Clock);
  expect(clockA.length).toBeGreaterThan(0);
  expect(clockB).not.toEqual(clockA);
  const entropyA = await recordedInputs(first.trace, Kind.Entropy);
  const entropyB = await recordedInputs(second.trace, Kind.Entropy);
  expect(entropyA.length).toBeGreaterThan(0);
  expect(entropyB).not.toEqual(entropyA);
  expect(second.finalStateHash).not.toBe(first.finalStateHash);
  // What the guest answers differs too, not only its inputs.
  const states = (rec: Recording) => rec.results.filter((_, i) => workload.steps[i]!.path.startsWith('/state')).map((r) => r.body);
  expect(states(first).length).toBeGreaterThan(0);
  expect(states(second)).not.toEqual(states(first));
  // And it replays exactly too.
  await Promise.all([replayAgrees(name, workload, second, REPLAY_ENVS[1]!), ...(earlier ? [] : [replayAgrees(name, workload, first, REPLAY_ENVS[0]!)])]);
});

test('the guest sees UTC and the recorded clock whatever the host time zone', async () => {
  const node = await startRun('guest-apps/random.js', { processEnv: { TZ: 'Asia/Kathmandu' } });
  try {
    const now = JSON.parse((await send(node.url, { method: 'GET', path: '/now' })).body) as Record<string, unknown>;
    expect(JSON.stringify(now)).toContain('"timezoneOffset":0');
    const before = Date.now();
    expect(Math.abs((now.dateNow as number) - before)).toBeLessThan(60_000);
  } finally {
    await node.stop();
  }
});
