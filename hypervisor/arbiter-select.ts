// Which arbiter a node's epoch claims go to: a shared directory (the embedded default) or etcd
// (`etcd://host:port[,host:port]/prefix`, `etcds://` for TLS). The nodes see only ArbiterStore and a
// location string; this picks the implementation from the location's form.

import { Arbiter } from './arbiter.js';
import { EtcdArbiter, type EtcdArbiterOptions } from './arbiter-etcd.js';
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
  return (where, nodeId) => (isEtcdLocation(where) ? new EtcdArbiter(where, nodeId, etcd) : new Arbiter(where, nodeId));
}
