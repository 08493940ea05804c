// Mutation fuzzing of the files a node reads back: traces (replay, restore's logs) and checkpoints.
// Each case takes a real file, mutates it one way (flip a byte, truncate, duplicate, reorder or
// delete a block, move an outputs block, or tamper with a block and fix up its CRC as an attacker
// would), and reads it the way ftjs does. A case passes when the file is refused (exit 2), diverges
// (exit 1, for tampering that the checksums cannot see), or is accepted with its meaning unchanged
// (the same header, entries and outputs; or a prefix of them, which is what a crash leaves). It
// fails when a changed file is accepted, when reading throws anything but the format's own errors
// (a crash), or when a case runs past its time budget (a hang).
//
// Forgeries (a block edited and its CRC recomputed, "-fix-crc") are counted apart. A trace carries no
// signature: a forger who edits an input the guest never reads (a request header it ignores) or marks
// an outputs record as cut leaves nothing to check, so such a case is 'undetected-forgery', reported
// but not a failure. What they do catch is everything that changes what the guest computes.
//
//   npm run build && node dist/bench/fuzz-files.js [--traces 1000] [--checkpoints 300] [--seed 1]

import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { crc32 } from 'node:zlib';
import { CheckpointError, type LoadedCheckpoint, readCheckpoint } from '../hypervisor/node/checkpoint-file.js';
import { BootConfigError } from '../hypervisor/vm/boot-config.js';
import { kindName } from '../logging-channel/entry.js';
import { TraceError } from '../logging-channel/trace-format.js';
import { readTrace, type TraceContents } from '../logging-channel/trace-reader.js';
import { ReplayNotReproducibleError, ReplaySession } from '../replayer/offline/session.js';
import { MalformedLogError } from '../replayer/task-assembler.js';
import { argNumber, projectPath, spawnFtjs } from './util.js';

/** A case that takes longer than this is a hang. */
export const CASE_BUDGET_MS = 60_000;
const SECRET = 'fuzz-secret-0123456789abcdef';

export type Verdict = 'refused' | 'diverged' | 'same' | 'prefix' | 'accepted-changed' | 'undetected-forgery' | 'crashed' | 'hung';
export const BAD_VERDICTS: ReadonlySet<Verdict> = new Set(['accepted-changed', 'crashed', 'hung']);

export interface Tally {
  cases: number;
  verdicts: Record<Verdict, number>;
  byMutation: Record<string, Partial<Record<Verdict, number>>>;
  failures: Array<{ case: number; mutation: string; verdict: Verdict; detail: string }>;
}

function newTally(): Tally {
  return { cases: 0, verdicts: { refused: 0, diverged: 0, same: 0, prefix: 0, 'accepted-changed': 0, 'undetected-forgery': 0, crashed: 0, hung: 0 }, byMutation: {}, failures: [] };
}

function count(tally: Tally, index: number, mutation: string, verdict: Verdict, detail: string): void {
  if (verdict === 'accepted-changed' && mutation.endsWith('-fix-crc')) verdict = 'undetected-forgery';
  tally.cases++;
  tally.verdicts[verdict]++;
  const row = (tally.byMutation[mutation] ??= {});
  row[verdict] = (row[verdict] ?? 0) + 1;
  if (BAD_VERDICTS.has(verdict)) tally.failures.push({ case: index, mutation, verdict, detail });
}

/** mulberry32: a small seeded generator, so any failing case can be produced again from its seed. */
function random(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

// ------------------------------------------------------------------ samples

/** Records a real trace of guest-apps/random.js (clock, entropy, outputs) and writes checkpoints of kv.js. */
export async function makeSamples(dir: string): Promise<{ trace: string; checkpoints: string[] }> {
  const trace = path.join(dir, 'sample.trace');
  const run = spawnFtjs(['run', projectPath('guest-apps/random.js'), '--port', '0', '--record', trace], { env: process.env });
  const listening = await run.waitFor((l) => typeof l.url === 'string');
  // Every task reads the clock, so the trace holds clock entries without /now, whose toLocaleString
  // would load Intl in every replayed case (about half a second each, for nothing the fuzz looks at).
  const url = listening.url as string;
  for (let i = 0; i < 12; i++) {
    await (await fetch(`${url}/roll?n=3&sides=6`)).text();
    await (await fetch(`${url}/uuid?n=2`)).text();
    await (await fetch(`${url}/shuffle`, { method: 'POST', body: JSON.stringify([1, 2, 3, 4, 5, i]) })).text();
  }
  await exited(run.child, 'SIGTERM');

  const shared = path.join(dir, 'shared');
  mkdirSync(shared);
  const primary = spawnFtjs(['primary', projectPath('guest-apps/kv.js'), '--port', '0', '--replication-port', '0', '--shared-dir', shared, '--checkpoint-every', '20', '--checkpoint-keep', '3'], {
    env: { ...process.env, FTJS_SECRET: SECRET },
  });
  const serving = await primary.waitFor((l) => typeof l.url === 'string' && typeof l.replication === 'string');
  for (let i = 0; i < 80; i++) await (await fetch(`${serving.url as string}/kv/key-${i % 17}`, { method: 'PUT', body: `value ${i} `.repeat(1 + (i % 5)) })).text();
  const wanted = 3;
  for (let tries = 0; readdirSync(shared).filter((f) => f.endsWith('.ftck')).length < wanted; tries++) {
    if (tries > 200) throw new Error(`the primary wrote fewer than ${wanted} checkpoints`);
    await (await fetch(`${serving.url as string}/kv/tick`, { method: 'PUT', body: String(tries) })).text();
  }
  await exited(primary.child, 'SIGTERM');
  const checkpoints = readdirSync(shared)
    .filter((f) => f.endsWith('.ftck'))
    .map((f) => path.join(shared, f));
  return { trace, checkpoints };
}

function exited(child: import('node:child_process').ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

// ------------------------------------------------------------------ traces

interface Frame {
  offset: number;
  end: number;
  outputs: boolean;
}

const OUTPUTS_MAGIC = 0xf2;

/** The header's end and every block frame (u32 length + block) of a trace file. */
function framesOf(bytes: Buffer): { headerEnd: number; frames: Frame[] } {
  const headerEnd = 12 + bytes.readUInt32LE(8) + 4;
  const frames: Frame[] = [];
  for (let at = headerEnd; at + 4 <= bytes.byteLength; ) {
    const end = at + 4 + bytes.readUInt32LE(at);
    frames.push({ offset: at, end, outputs: bytes[at + 4] === OUTPUTS_MAGIC });
    at = end;
  }
  return { headerEnd, frames };
}

/** Recomputes a block's CRC (the last 4 bytes of the block cover every byte before them). */
function fixBlockCrc(bytes: Buffer, frame: Frame): void {
  bytes.writeUInt32LE(crc32(bytes.subarray(frame.offset + 4, frame.end - 4)), frame.end - 4);
}

type TraceMutation = (bytes: Buffer, pick: (n: number) => number) => Buffer;

const assemble = (bytes: Buffer, headerEnd: number, frames: Frame[]) => Buffer.concat([bytes.subarray(0, headerEnd), ...frames.map((f) => bytes.subarray(f.offset, f.end))]);

export const TRACE_MUTATIONS: Record<string, TraceMutation> = {
  flip: (bytes, pick) => {
    const out = Buffer.from(bytes);
    out[pick(out.length)]! ^= 1 + pick(255);
    return out;
  },
  truncate: (bytes, pick) => bytes.subarray(0, pick(bytes.length)),
  'duplicate-block': (bytes, pick) => {
    const { headerEnd, frames } = framesOf(bytes);
    const i = pick(frames.length);
    const at = i + 1 + pick(frames.length - i);
    return assemble(bytes, headerEnd, [...frames.slice(0, at), frames[i]!, ...frames.slice(at)]);
  },
  'swap-blocks': (bytes, pick) => {
    const { headerEnd, frames } = framesOf(bytes);
    const i = pick(frames.length - 1);
    const j = i + 1 + pick(Math.min(3, frames.length - 1 - i));
    const order = [...frames];
    [order[i], order[j]] = [order[j]!, order[i]!];
    return assemble(bytes, headerEnd, order);
  },
  'delete-block': (bytes, pick) => {
    const { headerEnd, frames } = framesOf(bytes);
    const i = pick(frames.length - 1); // never the last: that is a plain truncation
    return assemble(
      bytes,
      headerEnd,
      frames.filter((_, k) => k !== i),
    );
  },
  'move-outputs-block': (bytes, pick) => {
    const { headerEnd, frames } = framesOf(bytes);
    const outputs = frames.filter((f) => f.outputs);
    const moved = outputs[pick(outputs.length)]!;
    const rest = frames.filter((f) => f !== moved);
    const at = pick(rest.length + 1);
    return assemble(bytes, headerEnd, [...rest.slice(0, at), moved, ...rest.slice(at)]);
  },
  'tamper-entries-fix-crc': (bytes, pick) => tamperBlock(bytes, pick, false),
  'tamper-outputs-fix-crc': (bytes, pick) => tamperBlock(bytes, pick, true),
  'tamper-header-fix-crc': (bytes, pick) => {
    // Change one character of the header's JSON text where it stays JSON, then fix the header CRC.
    const jsonEnd = 12 + bytes.readUInt32LE(8);
    const json = bytes.subarray(12, jsonEnd).toString('latin1');
    const digits = [...json.matchAll(/[0-9a-f]/g)].map((m) => m.index!);
    const at = digits[pick(digits.length)]!;
    const out = Buffer.from(bytes);
    out[12 + at] = json[at] === '0' ? 0x31 : 0x30;
    out.writeUInt32LE(crc32(out.subarray(0, jsonEnd)), jsonEnd);
    return out;
  },
};

function tamperBlock(bytes: Buffer, pick: (n: number) => number, outputs: boolean): Buffer {
  const { frames } = framesOf(bytes);
  const candidates = frames.filter((f) => f.outputs === outputs);
  const frame = candidates[pick(candidates.length)]!;
  const out = Buffer.from(bytes);
  // Past the block's magic and fixed header fields, before its CRC: the payload an attacker would edit.
  const from = frame.offset + 4 + 6;
  const at = from + pick(Math.max(1, frame.end - 4 - from));
  out[at]! ^= 1 + pick(255);
  fixBlockCrc(out, frame);
  return out;
}

/** 'same' or 'prefix' when `b` means what `a` does (or a prefix of it), else the first difference. */
function compareTraces(a: TraceContents, b: TraceContents): { same: 'same' | 'prefix' } | { difference: string } {
  if (JSON.stringify(a.header) !== JSON.stringify(b.header)) return { difference: 'the header differs' };
  if (b.entries.length > a.entries.length) return { difference: `${b.entries.length - a.entries.length} more entries` };
  for (let i = 0; i < b.entries.length; i++) {
    const x = a.entries[i]!;
    const y = b.entries[i]!;
    if (x.seq !== y.seq || x.pos !== y.pos || x.kind !== y.kind || !Buffer.from(x.payload).equals(Buffer.from(y.payload))) {
      return {
        difference: `entry seq ${x.seq} (${kindName[x.kind]}) differs: pos ${x.pos}→${y.pos}, payload ${Buffer.from(x.payload).toString('hex').slice(0, 80)} → ${Buffer.from(y.payload).toString('hex').slice(0, 80)}`,
      };
    }
  }
  // Outputs records are optional (a trace at its size cap drops some); each kept one must be the original's.
  const text = (r: TraceContents['outputs'][number]) => JSON.stringify(r, (_, v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v));
  const kept = new Set(a.outputs.map(text));
  const altered = b.outputs.find((r) => !kept.has(text(r)));
  if (altered) return { difference: `the outputs record of seq ${altered.seq} differs (truncated: ${altered.truncated}, console omitted: ${altered.consoleOmitted})` };
  return { same: b.entries.length === a.entries.length ? 'same' : 'prefix' };
}

/** Replays a file the way `ftjs replay` does and says how it ended. */
async function replayVerdict(file: string): Promise<{ verdict: 'refused' | 'diverged' | 'verified' | 'crashed'; detail: string }> {
  let session: ReplaySession | null = null;
  try {
    session = await ReplaySession.open(file, { checkpointMs: 60_000 });
    const outcome = await session.continue();
    return outcome === 'diverged' ? { verdict: 'diverged', detail: `diverged at seq ${session.point}` } : { verdict: 'verified', detail: '' };
  } catch (error) {
    if (error instanceof TraceError || error instanceof MalformedLogError || error instanceof BootConfigError) return { verdict: 'refused', detail: error.message };
    if (error instanceof ReplayNotReproducibleError) return { verdict: 'diverged', detail: error.message };
    return { verdict: 'crashed', detail: (error as Error).stack ?? String(error) };
  } finally {
    await session?.close();
  }
}

export async function fuzzTraces(trace: string, cases: number, seed: number, workDir: string, first = 0): Promise<Tally> {
  const tally = newTally();
  const original = readFileSync(trace);
  const meaning = await readTrace(trace);
  const names = Object.keys(TRACE_MUTATIONS);
  for (let i = first; i < first + cases; i++) {
    const pick = random(seed * 1_000_003 + i);
    const name = names[i % names.length]!;
    const file = path.join(workDir, `case-${i}.trace`);
    writeFileSync(file, TRACE_MUTATIONS[name]!(original, pick));
    const { verdict, detail } = await withBudget(async () => {
      // What the reader refuses is refused before any VM boots; the replay then covers the rest.
      let contents: TraceContents;
      try {
        contents = await readTrace(file);
      } catch (error) {
        if (error instanceof TraceError) return { verdict: 'refused' as Verdict, detail: error.message };
        return { verdict: 'crashed' as Verdict, detail: (error as Error).stack ?? String(error) };
      }
      const replay = await replayVerdict(file);
      if (replay.verdict !== 'verified') return { verdict: replay.verdict as Verdict, detail: replay.detail };
      const compared = compareTraces(meaning, contents);
      return 'same' in compared ? { verdict: compared.same as Verdict, detail: '' } : { verdict: 'accepted-changed' as Verdict, detail: `replay verified a changed trace: ${compared.difference}` };
    });
    count(tally, i, name, verdict, detail);
  }
  return tally;
}

// ------------------------------------------------------------------ checkpoints

type CheckpointMutation = (bytes: Buffer, pick: (n: number) => number) => Buffer;

export const CHECKPOINT_MUTATIONS: Record<string, CheckpointMutation> = {
  flip: TRACE_MUTATIONS.flip!,
  truncate: TRACE_MUTATIONS.truncate!,
  'zero-range': (bytes, pick) => {
    const out = Buffer.from(bytes);
    const at = pick(out.length);
    out.fill(0, at, Math.min(out.length, at + 1 + pick(4096)));
    return out;
  },
  'duplicate-range': (bytes, pick) => {
    const at = pick(bytes.length);
    const length = 1 + pick(Math.min(4096, bytes.length - at));
    return Buffer.concat([bytes.subarray(0, at + length), bytes.subarray(at, at + length), bytes.subarray(at + length)]);
  },
  'tamper-memory-fix-crc': (bytes, pick) => {
    // Edit the compressed memory image and fix the file's CRC: only the state hash can tell.
    const headerEnd = 12 + bytes.readUInt32LE(8) + 4;
    const out = Buffer.from(bytes);
    out[headerEnd + pick(out.length - 4 - headerEnd)]! ^= 1 + pick(255);
    out.writeUInt32LE(crc32(out.subarray(0, out.length - 4)), out.length - 4);
    return out;
  },
};

function sameCheckpoint(a: LoadedCheckpoint, b: LoadedCheckpoint): boolean {
  return JSON.stringify(a.header) === JSON.stringify(b.header) && Buffer.from(a.snapshot.memory).equals(Buffer.from(b.snapshot.memory));
}

export async function fuzzCheckpoints(files: string[], cases: number, seed: number, workDir: string): Promise<Tally> {
  const tally = newTally();
  const originals = await Promise.all(files.map(async (f) => ({ bytes: readFileSync(f), loaded: await readCheckpoint(f) })));
  const names = Object.keys(CHECKPOINT_MUTATIONS);
  for (let i = 0; i < cases; i++) {
    const pick = random(seed * 7_000_003 + i);
    const name = names[i % names.length]!;
    const source = originals[i % originals.length]!;
    // Keep the file name: it names the checkpoint's seq, which the reader checks.
    const dir = path.join(workDir, `ckpt-${i}`);
    const file = path.join(dir, path.basename(source.loaded.file));
    await import('node:fs/promises').then((fsp) => fsp.mkdir(dir, { recursive: true }));
    writeFileSync(file, CHECKPOINT_MUTATIONS[name]!(source.bytes, pick));
    const { verdict, detail } = await withBudget(async () => {
      try {
        const loaded = await readCheckpoint(file);
        return sameCheckpoint(source.loaded, loaded) ? { verdict: 'same' as Verdict, detail: '' } : { verdict: 'accepted-changed' as Verdict, detail: 'a changed checkpoint was accepted' };
      } catch (error) {
        if (error instanceof CheckpointError) return { verdict: 'refused' as Verdict, detail: error.message };
        return { verdict: 'crashed' as Verdict, detail: (error as Error).stack ?? String(error) };
      }
    });
    count(tally, i, name, verdict, detail);
  }
  return tally;
}

async function withBudget(run: () => Promise<{ verdict: Verdict; detail: string }>): Promise<{ verdict: Verdict; detail: string }> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<{ verdict: Verdict; detail: string }>((resolve) => {
    timer = setTimeout(() => resolve({ verdict: 'hung', detail: `no verdict within ${CASE_BUDGET_MS} ms` }), CASE_BUDGET_MS);
  });
  try {
    return await Promise.race([run(), hang]);
  } finally {
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------------ main

if (process.argv[1] && path.resolve(process.argv[1]) === new URL(import.meta.url).pathname) {
  const traces = argNumber('--traces', 1000);
  const checkpoints = argNumber('--checkpoints', 300);
  const seed = argNumber('--seed', 1);
  const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-fuzz-'));
  const started = performance.now();
  const samples = await makeSamples(dir);
  const traceTally = await fuzzTraces(samples.trace, traces, seed, dir);
  const checkpointTally = await fuzzCheckpoints(samples.checkpoints, checkpoints, seed, dir);
  const failures = [...traceTally.failures, ...checkpointTally.failures];
  process.stdout.write(
    `${JSON.stringify({ seed, seconds: Math.round((performance.now() - started) / 1000), traces: { ...traceTally, failures: traceTally.failures.slice(0, 20) }, checkpoints: { ...checkpointTally, failures: checkpointTally.failures.slice(0, 20) } }, null, 2)}\n`,
  );
  process.exitCode = failures.length === 0 ? 0 : 1;
}
