// What `ftjs up` knows about its pair's protection: the live node has a backup attached whose replay
// is within IN_SYNC_ENTRIES of it. Polled from the nodes' /_ft/status; while unprotected, a warning
// every UNPROTECTED_WARN_MS; GET /_ft/up on the front door returns snapshot().

import type { ChildProcess } from 'node:child_process';
import type { Logger } from 'pino';
import type { Router } from './router.js';

export interface Member {
  name: string;
  port: number;
  replicationPort: number;
  child: ChildProcess;
  startedAtMs: number;
}

/** How often the nodes' status is polled. */
export const UP_POLL_MS = 500;
/** While unprotected, a warning this often. */
export const UNPROTECTED_WARN_MS = 3_000;
/** A backup counts as in sync once it has replayed up to this many entries behind the live node's log. */
export const IN_SYNC_ENTRIES = 1_000;

type Status = Record<string, unknown>;

export class ProtectionWatch {
  readonly members = new Map<string, Member>();
  router: Router | null;
  private protectedNow = false;
  private sinceMs = Date.now();
  private reason = 'starting';
  private lastWarnMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private statuses = new Map<string, Status | null>();
  private lostNodes: Array<{ node: string; why: string; at: string }> = [];
  private backupLagEntries: number | null = null;
  private sawLive = false;
  /**
   * Some node has served: before that, a lost node means the pair cannot start (a bad guest, a bad
   * flag). The front door's own health polls count too: they run more often than this watch, and a
   * node that dies right after it served must not be taken for one that never did.
   */
  get everLive(): boolean {
    return this.sawLive || (this.router?.everFoundLive ?? false);
  }

  constructor(private readonly options: { logger: Logger; adminToken: string | null; router: Router | null }) {
    this.router = options.router;
  }

  start(): void {
    this.timer = setInterval(() => void this.poll(), UP_POLL_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  liveMember(): Member | undefined {
    const name = this.router?.liveNode;
    return name ? this.members.get(name) : undefined;
  }

  lost(node: string, why: string): void {
    this.lostNodes.push({ node, why, at: new Date().toISOString() });
    this.set(false, why);
  }

  get isProtected(): boolean {
    return this.protectedNow;
  }

  snapshot(): Record<string, unknown> {
    const live = this.liveMember();
    return {
      protected: this.protectedNow,
      since: new Date(this.sinceMs).toISOString(),
      reason: this.protectedNow ? null : this.reason,
      live: live?.name ?? null,
      backupLagEntries: this.backupLagEntries,
      nodes: [...this.members.values()].map((m) => {
        const s = this.statuses.get(m.name);
        return {
          name: m.name,
          pid: m.child.pid ?? null,
          url: `http://127.0.0.1:${m.port}`,
          role: s?.role ?? null,
          epoch: s?.epoch ?? null,
          backupAttached: s?.backupAttached ?? null,
          replayedSeq: s?.replayedSeq ?? null,
        };
      }),
      lost: this.lostNodes.slice(-20),
    };
  }

  private async poll(): Promise<void> {
    const members = [...this.members.values()];
    const statuses = await Promise.all(members.map((m) => this.status(m)));
    this.statuses = new Map(members.map((m, i) => [m.name, statuses[i]!]));
    const live = this.liveMember();
    const liveStatus = live ? this.statuses.get(live.name) : null;
    if (!live || !liveStatus) return this.set(false, 'no node is live');
    this.sawLive = true;
    if (liveStatus.backupAttached !== true) return this.set(false, `${live.name} runs alone: no backup attached`);
    const backups = members.filter((m) => m !== live && this.statuses.get(m.name)?.role === 'backup' && this.statuses.get(m.name)?.connected === true);
    const liveSeq = Number(liveStatus.seq ?? 0);
    const lags = backups.map((m) => liveSeq - Number(this.statuses.get(m.name)?.replayedSeq ?? 0));
    const best = lags.length > 0 ? Math.min(...lags) : null;
    this.backupLagEntries = best;
    if (best === null) return this.set(false, `${live.name} has a backup attached that does not report itself connected yet`);
    if (best > IN_SYNC_ENTRIES) return this.set(false, `the backup is catching up (${best} entries behind ${live.name})`);
    this.set(true, `${backups[lags.indexOf(best)]!.name} attached and in sync with ${live.name}`);
  }

  private set(protectedNow: boolean, reason: string): void {
    const { logger } = this.options;
    const now = Date.now();
    if (protectedNow !== this.protectedNow) {
      this.sinceMs = now;
      this.lastWarnMs = 0;
      if (protectedNow) logger.info({ protected: true, live: this.router?.liveNode ?? null }, `service protected: ${reason}`);
    }
    this.protectedNow = protectedNow;
    this.reason = reason;
    if (!protectedNow && now - this.lastWarnMs >= UNPROTECTED_WARN_MS) {
      this.lastWarnMs = now;
      const forS = ((now - this.sinceMs) / 1000).toFixed(1);
      logger.warn({ protected: false, unprotectedForS: Number(forS), reason }, `SERVICE UNPROTECTED for ${forS} s: ${reason}`);
    }
  }

  private async status(m: Member): Promise<Status | null> {
    try {
      const res = await fetch(`http://127.0.0.1:${m.port}/_ft/status?hash=0`, {
        signal: AbortSignal.timeout(UP_POLL_MS * 2),
        ...(this.options.adminToken ? { headers: { authorization: `Bearer ${this.options.adminToken}` } } : {}),
      });
      if (!res.ok) {
        await res.arrayBuffer();
        return null;
      }
      return (await res.json()) as Status;
    } catch {
      return null;
    }
  }
}
