// `ftjs drill --netns` (issue 18): a real partition of the logging channel by iptables between network
// namespaces, the pair and its etcd in namespaces of their own. CI runs as root on Debian; without
// root the drill must say namespaces are unavailable and exit 2 (never fall back to 127.0.0.1).
import { execFileSync } from 'node:child_process';
import { expect, test } from 'vitest';
import { ftjs } from './helpers.js';

const root = process.getuid?.() === 0;

function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => /^ftjs\d+-[pbew]$/.test(n));
}

test.runIf(root)(
  'one round of a channel partition between namespaces passes with nothing lost, and leaves no namespace behind',
  async () => {
    const before = namespaces();
    const r = await ftjs(['drill', '--netns', '--fault', 'partition', '--rounds', '1', '--seed', '11', '--json', '--heartbeat-timeout-ms', '1000', '--max-go-live-ms', '3000']);
    expect(r.code, r.stderr.slice(-3000)).toBe(0);
    const report = JSON.parse(r.stdout) as {
      netns: { latencyBy: string };
      summary: { passed: number; writesLost: number; writesAcked: number; duplicates: number };
      rounds: Array<{ commands: string[]; liveNode: string; goLiveMs: number }>;
    };
    expect(report.summary).toMatchObject({ passed: 1, writesLost: 0, duplicates: 0 });
    expect(report.summary.writesAcked).toBeGreaterThan(0);
    const round = report.rounds[0]!;
    // The fault was the kernel's: iptables drops of the channel's port inside the primary's namespace.
    expect(round.commands.some((c) => /^ip netns exec ftjs\d+-p iptables -w -A INPUT -p tcp --dport 9090 -j DROP$/.test(c))).toBe(true);
    expect(round.goLiveMs).toBeGreaterThan(0);
    expect(['primary', 'backup']).toContain(round.liveNode);
    expect(r.stderr).toMatch(/netns: primary ftjs\d+-p 10\.77\.\d+\.2/);
    expect(namespaces()).toEqual(before);
  },
  180_000,
);

test('without root the drill says namespaces are unavailable and exits 2', async () => {
  const asNobody = root ? ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups'] : [];
  let code = 0;
  let stderr = '';
  try {
    execFileSync(asNobody[0] ?? process.execPath, [...asNobody.slice(1), ...(root ? [process.execPath] : []), 'dist/cli/ftjs.js', 'drill', '--netns', '--fault', 'partition', '--rounds', '1'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    const e = error as { status: number; stderr: string };
    code = e.status;
    stderr = e.stderr;
  }
  expect(code).toBe(2);
  expect(stderr).toContain('ftjs drill --netns: network namespaces need root');
}, 60_000);
