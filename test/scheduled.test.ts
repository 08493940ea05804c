// scheduled() handlers end to end: --cron on `ftjs run` (fired through --test-scheduled's endpoint,
// so the test does not wait for the wall clock's next minute), recorded and replayed; a guest without
// scheduled(); a bad expression; and a backup that arms the primary's schedule when it goes live.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type FtjsProcess, ftjs, type PairProcesses, replayJson, send, startPair, startRun, tempDir, waitFor } from './helpers.js';

const fire = (url: string, cron?: string) => fetch(`${url}/_ft/scheduled${cron ? `?cron=${encodeURIComponent(cron)}` : ''}`, { method: 'POST' });

describe('ftjs run --cron', () => {
  const nodes: FtjsProcess[] = [];
  afterAll(async () => {
    for (const n of nodes) await n.stop('SIGKILL');
  });

  it('delivers each firing to scheduled() as a recorded task, and replay reproduces it', async () => {
    const trace = path.join(tempDir(), 'cron.trace');
    const node = await startRun('test/guests/cron.js', {
      record: trace,
      env: { NAME: 'cronny' },
      args: ['--cron', '*/5 * * * *', '--cron', '0 0 1 1 *', '--test-scheduled'],
      processEnv: { TZ: 'UTC' },
    });
    nodes.push(node);
    const armed = node.find((l) => typeof l.msg === 'string' && l.msg.startsWith('cron triggers armed (2)'));
    expect(armed?.crons).toEqual(['*/5 * * * *', '0 0 1 1 *']);
    expect(Date.parse(armed?.nextFiring as string) % (5 * 60_000)).toBe(0);

    expect((await fire(node.url)).status).toBe(202);
    expect((await fire(node.url, '0 0 1 1 *')).status).toBe(202);
    const unknown = await fire(node.url, '1 2 3 4 5');
    expect(unknown.status).toBe(400);
    expect((await unknown.json()).error).toContain('is not one of the configured cron triggers');
    const runs = await waitFor(async () => {
      const r = JSON.parse((await send(node.url, { method: 'GET', path: '/runs' })).body) as Array<{ cron: string; scheduledTime: number }>;
      return r.length === 2 ? r : null;
    }, 'both firings to run');
    expect(runs.map((r) => r.cron)).toEqual(['*/5 * * * *', '0 0 1 1 *']);
    await waitFor(() => node.find((l) => l.guest === true && /new year job failed/.test(l.msg)), 'the failing handler to be reported');

    await node.stop('SIGINT');
    const final = node.find((l) => l.msg === 'final state');
    const consoleLines = node.lines.filter((l) => l.guest === true).map((l) => l.msg);
    expect(consoleLines.filter((l) => l.startsWith('scheduled '))).toHaveLength(2);
    expect(consoleLines.find((l) => l.startsWith('scheduled */5'))).toMatch(/type scheduled env cronny$/);
    expect(consoleLines.some((l) => l.startsWith('Uncaught (scheduled handler) Error: new year job failed'))).toBe(true);

    const replay = await replayJson(trace, { TZ: 'Asia/Kolkata' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.summary.finalStateHash).toBe(final?.stateHash);
    expect(replay.console.map((c) => c.text)).toEqual(consoleLines);
  }, 60_000);

  it('warns once, and keeps serving, when the guest has no scheduled() handler', async () => {
    const node = await startRun('guest-apps/kv.js', { args: ['--cron', '* * * * *', '--test-scheduled'] });
    nodes.push(node);
    await fire(node.url);
    await fire(node.url);
    expect((await send(node.url, { method: 'PUT', path: '/kv/k', body: 'v' })).status).toBeLessThan(300);
    const warnings = await waitFor(() => {
      const w = node.lines.filter((l) => l.guest === true && /exports no scheduled/.test(l.msg));
      return w.length > 0 ? w : null;
    }, 'the warning');
    // Both firings ran (two Scheduled tasks) before the PUT answered; one warning in all.
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.msg).toContain('cron trigger "* * * * *" fired but the guest module exports no scheduled(controller, env, ctx) handler');
  }, 30_000);

  it('refuses a bad expression before starting, naming the field', async () => {
    const r = await ftjs(['run', 'guest-apps/kv.js', '--cron', '*/5 * * 13 *']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('invalid cron expression "*/5 * * 13 *": field 4 (month) "13": 13 is out of range 1-12');
  });

  it('does not serve /_ft/scheduled without --test-scheduled (it reaches the guest as a normal request)', async () => {
    const node = await startRun('test/guests/cron.js', { args: ['--cron', '* * * * *'] });
    nodes.push(node);
    expect((await fire(node.url)).status).toBe(404);
  }, 30_000);
});

describe('a pair with --cron', () => {
  let pair: PairProcesses | null = null;
  afterAll(async () => {
    await pair?.stop();
  });

  it('the backup inherits the schedule with the boot config and arms it when it goes live', async () => {
    pair = await startPair('test/guests/cron.js', { primaryArgs: ['--cron', '*/2 * * * *'] });
    expect(pair.primary.find((l) => typeof l.msg === 'string' && l.msg.startsWith('cron triggers armed (1)'))).toBeTruthy();
    // Replaying, the backup fires nothing itself.
    expect(pair.backup.find((l) => typeof l.msg === 'string' && l.msg.startsWith('cron triggers armed'))).toBeUndefined();
    pair.primary.child.kill('SIGKILL');
    const armed = await pair.backup.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('cron triggers armed (1)'), 'the backup to go live and arm the schedule');
    expect(armed.crons).toEqual(['*/2 * * * *']);
    expect(Date.parse(armed.nextFiring as string) % (2 * 60_000)).toBe(0);
  }, 60_000);
});
