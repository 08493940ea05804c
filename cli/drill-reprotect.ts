// `ftjs drill --fault kill-primary --reprotect`: one service through N consecutive failovers. Each
// round kills the node that serves (SIGKILL), waits for its backup to go live, starts a fresh backup
// that joins the new live node by snapshot, and checks under continuous client load that the pair is
// whole again: the new backup holds the live node's exact state, every write acknowledged in any
// epoch is on the live node once, one node spoke per epoch, nothing diverged.

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { freePort, NodeProcess, timeOf } from './child.js';
import type { RoundResult, WorkloadOptions } from './drill.js';
import { chooseService } from './drill-service.js';
import { arbiterArgs, caller, clientGapMs, type DrillTiming, evidenceOf, goLiveViolation, speakerViolations, timingArgs } from './drill-workload.js';
import { Router } from './router.js';

export interface ReprotectRound extends RoundResult {
  /** ms from starting the fresh backup to it holding the live node's state (joined by snapshot). */
  joinMs: number | null;
  /** The live node's admission pause while its VM was copied for the joining backup. */
  joinPauseMs: number | null;
  /** Bytes of the snapshot sent to the joining backup. */
  joinBytes: number | null;
}

interface Node {
  name: string;
  proc: NodeProcess;
  url: string;
  replicationPort: number;
}

/** How long one step of a round (go-live, join, catch-up) may take before the round fails. */
const STEP_TIMEOUT_MS = 30_000;

async function statusOf(url: string): Promise<Record<string, unknown> | null> {
  try {
    const res = await fetch(`${url}/_ft/status`, { signal: AbortSignal.timeout(5_000) });
    return (await res.json()) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Polls until `probe` holds (a condition, not a sleep); false after `timeoutMs`. */
async function until(probe: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return true;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return false;
}

export async function runReprotectDrill(
  rounds: number,
  entry: string,
  random: () => number,
  timing: DrillTiming,
  progress: (msg: string) => void,
  onRound: (result: ReprotectRound) => void,
  choice: WorkloadOptions = { workload: 'auto' },
): Promise<ReprotectRound[]> {
  const sharedDir = mkdtempSync(path.join(tmpdir(), 'ftjs-drill-'));
  const env = { FTJS_SECRET: randomBytes(24).toString('base64url') };
  const common = [...arbiterArgs(timing, sharedDir, `reprotect-${process.pid}-${Date.now()}`), ...timingArgs(timing), '--log-level', 'info'];
  const nodes: Node[] = [];
  const released: Array<{ node: string; epoch: number; atMs: number }> = [];
  const router = new Router({
    nodes: [],
    healthIntervalMs: 20,
    waitForLiveMs: 5_000,
    logger: pino({ level: 'silent' }),
    onUpstreamResponse: (node, headers, atMs) => {
      if (headers['ftjs-seq'] !== undefined) released.push({ node, epoch: Number(headers['ftjs-epoch']), atMs });
    },
  });

  const startNode = async (name: string, role: 'primary' | 'backup', primaryReplicationPort?: number): Promise<Node> => {
    const [port, replicationPort] = [await freePort(), await freePort()];
    const args =
      role === 'primary'
        ? ['primary', entry, '--port', String(port), '--replication-port', String(replicationPort)]
        : ['backup', entry, '--primary', `ws://127.0.0.1:${primaryReplicationPort}`, '--port', String(port), '--replication-port', String(replicationPort)];
    const proc = new NodeProcess(name, [...args, '--node-id', name, ...common], env);
    const node = { name, proc, url: `http://127.0.0.1:${port}`, replicationPort };
    nodes.push(node);
    await proc.waitFor((l) => typeof l.url === 'string' && (typeof l.replication === 'string' || typeof l.primary === 'string'), `${name} listening`, STEP_TIMEOUT_MS);
    router.addNode({ name, url: node.url });
    return node;
  };

  const results: ReprotectRound[] = [];
  const allAcks: object[] = [];
  try {
    let serving = await startNode('node-0', 'primary');
    let backup = await startNode('node-1', 'backup', serving.replicationPort);
    await serving.proc.waitFor((l) => l.msg === 'backup attached', 'backup attached', STEP_TIMEOUT_MS);
    await new Promise<void>((resolve) => router.server.listen(0, '127.0.0.1', resolve));
    router.start();
    const call = caller(`http://127.0.0.1:${(router.server.address() as net.AddressInfo).port}`);
    const service = await chooseService(call, choice.workload, choice.kvPrefix);
    await service.prepare(call, 'drill');
    progress(`reprotect drill: one service, ${rounds} consecutive failovers; node-0 serves, node-1 is its backup`);

    for (let round = 1; round <= rounds; round++) {
      const violations: string[] = [];
      const workload = service.load(call, random, `t-${round}`);
      workload.start();
      const delayMs = 400 + Math.floor(random() * 800);
      await new Promise((resolve) => setTimeout(resolve, delayMs));

      const faultAt = Date.now();
      progress(`round ${round}: kill ${serving.name} (serving) after ${delayMs} ms of load; ${backup.name} should take over`);
      serving.proc.signalSafe('SIGKILL');
      const liveLine = await backup.proc.waitFor((l) => /^LIVE: won epoch \d+/.test(l.msg), 'went live', STEP_TIMEOUT_MS).catch(() => null);
      const lostLine = backup.proc.lines.find((l) => /^primary lost: /.test(l.msg)) ?? null;
      router.removeNode(serving.name);
      if (!liveLine) violations.push(`${backup.name} did not go live within ${STEP_TIMEOUT_MS} ms of the fault`);
      // Won before the fault: it took a live primary for dead (a false failover, DESIGN invariant 7).
      if (liveLine && timeOf(liveLine) < faultAt)
        violations.push(`false failover: ${backup.name} went live ${faultAt - timeOf(liveLine)} ms before the fault (${lostLine?.msg ?? 'no reason logged'})`);
      const goLiveMs = liveLine ? Math.max(0, timeOf(liveLine) - faultAt) : null;
      const slow = goLiveViolation(goLiveMs, timing);
      if (slow) violations.push(slow);

      // Re-protect: a fresh backup joins the node that just went live, while the load goes on.
      let joinMs: number | null = null;
      let joinPauseMs: number | null = null;
      let joinBytes: number | null = null;
      const next = `node-${round + 1}`;
      let fresh: Node | null = null;
      if (liveLine) {
        const joinStarted = Date.now();
        fresh = await startNode(next, 'backup', backup.replicationPort);
        const joined = await fresh.proc.waitFor((l) => /^joined by snapshot at seq \d+/.test(l.msg), 'joined by snapshot', STEP_TIMEOUT_MS).catch(() => null);
        if (!joined) violations.push(`${next} did not join ${backup.name} by snapshot within ${STEP_TIMEOUT_MS} ms`);
        else joinMs = timeOf(joined) - joinStarted;
        const snap = [...backup.proc.lines].reverse().find((l) => /^snapshot for a joining backup/.test(l.msg));
        if (snap) {
          joinPauseMs = snap.pauseMs as number;
          joinBytes = snap.bytes as number;
        }
      }
      // Some load on the re-protected pair, then stop issuing and let every write in flight finish.
      await new Promise((resolve) => setTimeout(resolve, 500));
      await workload.stop();
      violations.push(...workload.violations);
      allAcks.push(...workload.acks);

      // The new pair is whole: the fresh backup holds the live node's exact state, at the same seq.
      const liveNode = backup;
      if (fresh) {
        const freshNode = fresh;
        const inSync = await until(async () => {
          const [p, b, p2] = [await statusOf(liveNode.url), await statusOf(freshNode.url), await statusOf(liveNode.url)];
          return !!p && !!b && !!p2 && p.role === 'primary' && p.seq === b.seq && p2.seq === p.seq && !!p.stateHash && p.stateHash === b.stateHash;
        }, STEP_TIMEOUT_MS);
        if (!inSync) violations.push(`${next} never reached ${liveNode.name}'s seq and state hash (or ${liveNode.name} is not a protected primary)`);
      }
      let epoch: unknown = null;
      await until(async () => (epoch = (await statusOf(liveNode.url))?.epoch ?? null) !== null, STEP_TIMEOUT_MS);
      if (epoch !== round + 1) violations.push(`${liveNode.name} serves in epoch ${String(epoch)}, expected ${round + 1} (one new epoch per failover)`);

      // Every write acknowledged in any epoch so far, once; this round's by transfer id.
      const reconciled = await service
        .reconcile(liveNode.url, allAcks, workload.acks)
        .catch((error: Error) => ({ writesLost: 0, duplicates: 0, transfers: 0, violations: [`cannot reconcile ${liveNode.name}: ${error.message}`] }));
      violations.push(...reconciled.violations);
      const speakers = speakerViolations(released);
      violations.push(...speakers.violations);
      for (const n of nodes) if (n.proc.lines.some((l) => /DIVERGENCE/.test(l.msg))) violations.push(`${n.name} reported a divergence`);

      const result: ReprotectRound = {
        round,
        fault: 'kill-primary',
        workload: service.description,
        detectionMs: lostLine ? Math.max(0, timeOf(lostLine) - faultAt) : null,
        goLiveMs,
        clientGapMs: clientGapMs(workload.successes, faultAt),
        writesAcked: workload.acks.length,
        writesLost: reconciled.writesLost,
        duplicates: reconciled.duplicates,
        liveNode: liveNode.name,
        epochs: speakers.epochs,
        violations,
        joinMs,
        joinPauseMs,
        joinBytes,
        ...(violations.length > 0 ? { evidence: evidenceOf([liveNode.proc, ...(fresh ? [fresh.proc] : [])]) } : {}),
      };
      results.push(result);
      onRound(result);
      // A broken round leaves no pair to continue with.
      if (violations.length > 0 || !fresh) break;
      serving = liveNode;
      backup = fresh;
      // The killed node's process is gone; keep its lines only while they are needed.
      for (const n of nodes.splice(0, nodes.length - 2)) await n.proc.kill();
    }
    return results;
  } finally {
    await router.stop(0); // the workload has ended: nothing left in flight to wait for
    await Promise.all(nodes.map((n) => n.proc.kill()));
    rmSync(sharedDir, { recursive: true, force: true });
  }
}
