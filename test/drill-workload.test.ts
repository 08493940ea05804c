// `ftjs drill` is not tied to bank.js: a guest declares its workload (GET /.well-known/ftjs-drill) or
// gets the generic keyed workload, which checks every acknowledged write on the live node.
import { describe, expect, it, test } from 'vitest';
import { lateReleases, takeoverSeqOf } from '../dist/cli/drill-workload.js';
import { ftjs } from './helpers.js';

// These tests are about the workload, not failover timing: a generous go-live budget keeps a loaded
// machine from failing them on the timing check (test/failover.test.ts holds the default bound).
const RELAXED = ['--max-go-live-ms', '10000'];

interface DrillJson {
  workload: string;
  summary: { passed: number; rounds: number; writesAcked: number; writesLost: number };
  rounds: Array<{ violations: string[]; workload: string }>;
}

describe('ftjs drill with the keyed workload', () => {
  it('drills kv.js (no declaration: the keyed store at /kv) through a failover with nothing lost', async () => {
    const r = await ftjs(['drill', 'guest-apps/kv.js', '--rounds', '1', '--fault', 'kill-primary', '--seed', '11', '--json', ...RELAXED]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as DrillJson;
    expect(out.workload).toBe('kv (PUT/GET /kv/<key>)');
    expect(out.summary.passed).toBe(1);
    expect(out.summary.writesAcked).toBeGreaterThan(10);
    expect(out.summary.writesLost).toBe(0);
  }, 60_000);

  it('catches a guest that acknowledges writes it does not keep (declared kv at /store)', async () => {
    const r = await ftjs(['drill', 'test/guests/leaky-kv.js', '--rounds', '1', '--fault', 'kill-backup', '--seed', '3', '--json', ...RELAXED]);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as DrillJson;
    expect(out.workload).toBe('kv (PUT/GET /store/<key>)');
    expect(out.summary.writesLost).toBeGreaterThan(0);
    expect(out.rounds[0]!.violations.join('\n')).toMatch(/acknowledged writes are missing on the live node|read of acknowledged key/);
  }, 60_000);

  it('bank.js declares its ledger workload; an unknown --workload is refused', async () => {
    const bank = await ftjs(['drill', '--rounds', '1', '--fault', 'kill-backup', '--seed', '5', '--json', ...RELAXED]);
    expect(bank.code, bank.stderr).toBe(0);
    expect((JSON.parse(bank.stdout) as DrillJson).workload).toBe('bank (ledger of transfers)');
    const refused = await ftjs(['drill', '--rounds', '1', '--fault', 'kill-backup', '--workload', 'queue']);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('--workload must be one of auto, bank, kv');
  }, 60_000);
});

describe('late releases of a resumed primary (pause-primary)', () => {
  const released = [
    { node: 'primary', seq: 90, atMs: 1_000 },
    { node: 'primary', seq: 100, atMs: 2_000 },
    { node: 'backup', seq: 130, atMs: 2_100 },
    { node: 'primary', seq: 120, atMs: 2_200 },
  ];
  test('read after the resume but of a seq the backup had before it claimed: harmless, counted; beyond it: a violation naming the seqs', () => {
    expect(lateReleases(released, 1_500, 120)).toEqual({ violation: null, covered: 2 });
    expect(lateReleases(released, 1_500, 110)).toEqual({
      violation: expect.stringMatching(/^1 responses .* with seqs 120 beyond seq 110, the last the backup received before it claimed$/),
      covered: 1,
    });
    expect(lateReleases(released, 1_500, null).violation).toMatch(/seqs 100, 120 beyond what the backup is known to have received/);
    expect(takeoverSeqOf({ lines: [{ level: 30, time: '', msg: 'drained in 3 ms; claiming epoch 2', receivedSeq: 558 }] })).toBe(558);
    expect(takeoverSeqOf({ lines: [] })).toBeNull();
  });
});
