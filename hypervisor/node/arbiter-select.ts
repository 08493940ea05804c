// Which arbiter a node's epoch claims go to: a shared directory (the embedded default) or etcd
// (`etcd://host:port[,host:port]/prefix`, `etcds://` for TLS). The nodes see only ArbiterStore and a
// location string; this picks the implementation from the location's form.
//
// The etcd client (etcd3 and gRPC) takes about a second to load on a busy machine, so it is loaded
// only for an etcd location (the CLI loads it before a node starts; here it then comes from the
// module cache), never at the first claim: a failover must not wait for a module load.

import type { ClaimResult } from './arbiter.js';
import { Arbiter } from './arbiter.js';
import type { EtcdArbiter, EtcdArbiterOptions } from './arbiter-etcd.js';
import type { ArbiterStore } from './env.js';

export function isEtcdLocation(where: string): boolean {
  return /^etcds?:\/\//.test(where);
}

/** What status and logs say about the arbiter: its kind and where it is (never credentials). */
export function arbiterLabel(where: string): { kind: 'etcd' | 'shared-dir'; location: string } {
  return isEtcdLocation(where) ? { kind: 'etcd', location: where } : { kind: 'shared-dir', location: where };
}

/** An ArbiterStore factory (Env.arbiter) that picks the shared directory or etcd by the location's form. */
export function arbiterFactory(etcd: EtcdArbiterOptions = {}): (where: string, nodeId: string) => ArbiterStore {
  return (where, nodeId) => (isEtcdLocation(where) ? lazyEtcd(where, nodeId, etcd) : new Arbiter(where, nodeId));
}

function lazyEtcd(where: string, nodeId: string, options: EtcdArbiterOptions): ArbiterStore {
  const loading: Promise<EtcdArbiter> = import('./arbiter-etcd.js').then((m) => new m.EtcdArbiter(where, nodeId, options));
  // A bad URL surfaces at the first use, as 'unreachable' with the reason; never as an unhandled rejection.
  loading.catch(() => undefined);
  return {
    newestEpoch: async () => {
      try {
        return await (await loading).newestEpoch();
      } catch {
        return null;
      }
    },
    claim: async (epoch, role, leaseMs, mayVoid): Promise<ClaimResult> => {
      let arbiter: EtcdArbiter;
      try {
        arbiter = await loading;
      } catch (error) {
        return { result: 'unreachable', detail: `etcd ${where}: ${(error as Error).message}` };
      }
      return arbiter.claim(epoch, role, leaseMs, mayVoid);
    },
    checkLease: async (epoch, leaseMs) => {
      try {
        return await (await loading).checkLease(epoch, leaseMs);
      } catch {
        return { newest: null };
      }
    },
    previousHolders: async (epoch) => {
      try {
        return await (await loading).previousHolders(epoch);
      } catch {
        return null;
      }
    },
    watchNewer: (onEpoch) => void loading.then((a) => a.watchNewer(onEpoch)).catch(() => undefined),
    releaseLease: async () => {
      await (await loading.catch(() => null))?.releaseLease();
    },
    recordCheckpoint: async (record) => {
      try {
        return await (await loading).recordCheckpoint(record);
      } catch {
        return false;
      }
    },
    checkpointRecord: async () => (await loading).checkpointRecord(),
    recordReplication: async (record) => {
      try {
        return await (await loading).recordReplication(record);
      } catch {
        return false;
      }
    },
    replicationRecord: async (epoch) => {
      try {
        return await (await loading).replicationRecord(epoch);
      } catch {
        return null;
      }
    },
  };
}
