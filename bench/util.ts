// Small helpers shared by the benchmarks.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** `--help` or `-h`: prints `usage` and exits 0, before the bench starts any work. */
export function exitOnHelp(usage: string): void {
  if (!process.argv.includes('--help') && !process.argv.includes('-h')) return;
  process.stdout.write(`${usage.trim()}\n`);
  process.exit(0);
}

export function argNumber(flag: string, fallback: number): number {
  const i = process.argv.indexOf(flag);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${flag} needs a positive number`);
  return n;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Absolute path of a file in the project (works from dist/bench and from bench/). */
export function projectPath(relative: string): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return path.join(dir, relative);
}

/** One line of an ftjs node's JSON log. */
export type LogLine = Record<string, unknown>;

/**
 * Starts `ftjs <args>` with its log on a pipe; `waitFor` resolves with the first log line (seen or
 * to come) that matches. `cpu`: pin the process (every thread) to that CPU with taskset.
 */
export function spawnFtjs(
  args: string[],
  options: { env: NodeJS.ProcessEnv; cpu?: number; nodeArgs?: string[] /** another checkout's dist/cli/ftjs.js */; cli?: string },
): { child: ChildProcess; waitFor: (match: (l: LogLine) => boolean) => Promise<LogLine> } {
  const command = [process.execPath, ...(options.nodeArgs ?? []), options.cli ?? projectPath('dist/cli/ftjs.js'), ...args, '--log-level', 'info'];
  const [file, ...argv] = options.cpu === undefined ? command : ['taskset', '-c', String(options.cpu), ...command];
  const child = spawn(file!, argv, { env: options.env, stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: LogLine[] = [];
  // A bench stops its servers by signal: an exit with a code is the server failing, say so with its last words.
  child.once('exit', (code) => {
    if (code !== null && code !== 0)
      process.stderr.write(
        `ftjs ${args[0]} (pid ${child.pid}) exited with ${code}; last log lines:\n${lines
          .slice(-5)
          .map((l) => JSON.stringify(l))
          .join('\n')}\n`,
      );
  });
  const watchers: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      lines.push(line);
      for (const w of watchers.splice(0)) w.match(line) ? w.resolve(line) : watchers.push(w);
    }
  });
  const waitFor = (match: (l: LogLine) => boolean) =>
    new Promise<LogLine>((resolve, reject) => {
      const seen = lines.find(match);
      if (seen) return resolve(seen);
      watchers.push({ match, resolve });
      child.once('exit', (code) => reject(new Error(`ftjs ${args[0]} exited with ${code}`)));
    });
  return { child, waitFor };
}

const CLOCK_TICKS_PER_S = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU ms (user + system, every thread) the process `pid` has used so far (Linux). */
export function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** GET `url` on a fresh connection; resolves with the status once the body has been read. */
export function httpGetStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
}
