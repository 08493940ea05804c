// The shells' answer to the role machine's 'check-epoch': the lease check. With etcd the node that
// speaks renews its lease on its epoch in the same call (hypervisor/node/arbiter-etcd.ts); elsewhere it
// reads the newest epoch. Either way the machine gets one 'epoch-checked' input.

import type { ArbiterStore } from './env.js';
import type { RoleInput, RoleMachine } from './role.js';

export async function checkEpoch(arbiter: ArbiterStore, machine: RoleMachine | null, leaseMs: number, checkId: number, where: string, nowMs: () => number): Promise<RoleInput> {
  const { newest, leaseRetaken } = arbiter.checkLease && machine?.speaks ? await arbiter.checkLease(machine.epoch, leaseMs) : { newest: await arbiter.newestEpoch(), leaseRetaken: undefined };
  return {
    type: 'epoch-checked',
    nowMs: nowMs(),
    checkId,
    newestEpoch: newest,
    detail: newest === null ? `${where} unreachable` : `newest epoch ${newest}`,
    ...(leaseRetaken !== undefined ? { leaseRetaken } : {}),
  };
}
