// A node that claims over an epoch it did not follow (a fresh primary, a restore) must not release
// before the previous holder has stopped: that holder releases on its own only within --lease-ms of
// its last epoch read that preceded our claim (hypervisor/node/role.ts). With etcd the holder's lease
// key says when it is gone (revoked at a clean stop, or expired: its TTL outlives the release window);
// with a shared directory there is no such key, so the claimer waits a lease from its claim.

import type { Logger } from 'pino';
import type { ArbiterStore, Env } from './env.js';

const POLL_MS = 50;

export async function awaitPreviousLeases(arbiter: ArbiterStore, epoch: number, leaseMs: number, claimSentAtMs: number, env: Env, logger: Logger, stopped: () => boolean): Promise<void> {
  const sleep = (ms: number) => new Promise<void>((resolve) => env.timers.after(ms, resolve));
  const started = env.clock.monoMs();
  if (!arbiter.previousHolders) {
    const leftMs = claimSentAtMs + leaseMs - env.clock.monoMs();
    if (leftMs > 0) {
      logger.info({ epoch, waitMs: Math.round(leftMs) }, `epoch ${epoch} won over an earlier one: waiting out its holder's lease (${Math.round(leftMs)} ms of --lease-ms ${leaseMs}) before releasing`);
      await sleep(leftMs);
    }
    return;
  }
  let said = false;
  for (;;) {
    const holders = await arbiter.previousHolders(epoch);
    if (holders !== null && holders.length === 0) break;
    if (!said) {
      said = true;
      logger.info({ epoch, holders }, `epoch ${epoch} won: waiting until the lease of ${holders === null ? 'an earlier holder (arbiter unreadable)' : holders.join(', ')} is gone before releasing`);
    }
    if (stopped()) throw new Error('stopped while waiting for an earlier epoch holder to stop');
    await sleep(POLL_MS);
  }
  if (said) logger.info({ epoch, waitMs: Math.round(env.clock.monoMs() - started) }, `earlier epoch holders gone after ${Math.round(env.clock.monoMs() - started)} ms`);
}
