// A node of a pair runs above ordinary work where it is permitted (cli/priority.ts): its main thread and
// the threads it starts after, with the log saying what it got; where it is not permitted, it runs as
// started and the log says why. Read from /proc, of real processes.
import { spawn } from 'node:child_process';
import { chmodSync, readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CLI, FtjsProcess, ftjs, ROOT, startPrimary, TEST_SECRET, tempDir } from './helpers.js';

/** The nice value of one thread: field 19 of its stat, counted after the parenthesised name. */
function niceOf(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[16]);
}

function threadNices(pid: number): { main: number; others: number[] } {
  const others = readdirSync(`/proc/${pid}/task`)
    .filter((tid) => Number(tid) !== pid)
    .map((tid) => niceOf(`/proc/${pid}/task/${tid}/stat`));
  return { main: niceOf(`/proc/${pid}/task/${pid}/stat`), others };
}

const isRoot = process.getuid?.() === 0;
/** CAP_SYS_NICE (bit 23) in this process's effective set: root in a container may lack it. */
function mayRaise(): boolean {
  const caps = /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'));
  return caps !== null && ((BigInt(`0x${caps[1]}`) >> 23n) & 1n) === 1n;
}
// A child starts with the nice value of the thread that spawned it: this one.
const startNice = getPriority(0);
const running: FtjsProcess[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop('SIGKILL')));
});

const priorityLine = (p: FtjsProcess) => p.waitForLog((l) => l.msg.startsWith('scheduling priority'), 'the priority line');

describe.runIf(process.platform === 'linux')('node priority', () => {
  it('a primary asks for 5 nice steps by default: its main thread and the threads it starts later run there', async () => {
    const primary = await startPrimary('guest-apps/kv.js');
    running.push(primary);
    const line = await priorityLine(primary);
    const expected = Math.max(-10, startNice - 5);
    if (mayRaise()) {
      expect(line.msg).toBe(`scheduling priority raised: nice ${startNice} → ${expected}`);
      const nices = threadNices(primary.child.pid!);
      expect(nices.main).toBe(expected);
      // The beacon thread starts after the raise and keeps it; V8's own threads started before it.
      expect(nices.others).toContain(expected);
    } else {
      expect(line.msg).toMatch(/^scheduling priority unchanged at nice -?\d+: not permitted \(E[A-Z]+\): run as root or grant CAP_SYS_NICE/);
      expect(threadNices(primary.child.pid!).main).toBe(startNice);
    }
  });

  it('--priority-boost 0 leaves every thread as started', async () => {
    const primary = await startPrimary('guest-apps/kv.js', { primaryArgs: ['--priority-boost', '0'] });
    running.push(primary);
    expect((await priorityLine(primary)).msg).toBe(`scheduling priority unchanged at nice ${startNice}: --priority-boost 0`);
    expect(threadNices(primary.child.pid!).main).toBe(startNice);
  });

  it.runIf(isRoot)('an unprivileged node runs as started and says why', async () => {
    const shared = tempDir('ftjs-priority-');
    chmodSync(shared, 0o777);
    const args = ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, CLI, 'primary', 'guest-apps/kv.js', '--port', '0', '--replication-port', '0', '--shared-dir', shared];
    const child = spawn('setpriv', args, { cwd: ROOT, env: { ...process.env, FTJS_SECRET: TEST_SECRET, HOME: shared }, stdio: ['ignore', 'pipe', 'pipe'] });
    const primary = new FtjsProcess(child);
    running.push(primary);
    const line = await priorityLine(primary);
    expect(line.msg).toBe(`scheduling priority unchanged at nice ${startNice}: not permitted (EACCES): run as root or grant CAP_SYS_NICE for it`);
    await primary.waitForLog((l) => typeof l.replication === 'string', 'the unprivileged primary to serve');
    expect(threadNices(child.pid!).main).toBe(startNice);
  });

  it('refuses a boost past the nice range, naming the flag', async () => {
    const result = await ftjs(['primary', 'guest-apps/kv.js', '--priority-boost', '21', '--shared-dir', path.join(ROOT, 'nowhere')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('--priority-boost must be at most 20 (the whole nice range), got 21');
  });
});
