// The network of `ftjs drill --netns` and bench/netns-latency: real Linux network namespaces joined by
// veth pairs on one bridge, so faults are kernel faults (iptables drops, tc netem delay) rather than a
// relay process cutting a socket.
//
//   host namespace (clients: the drill's router and load)  10.77.N.4 ─┐
//   <tag>-p  primary                                       10.77.N.2 ─┤
//   <tag>-b  backup                                        10.77.N.3 ─┼─ bridge in <tag>-w ("wire", 10.77.N.1:
//   <tag>-e  etcd (the arbiter, on its own path)           10.77.N.5 ─┘   the latency relay when netem is missing)
//
// Every rule lives inside a drill namespace (none in the host's), so deleting the namespaces removes
// them all; `teardown` also runs on SIGINT/SIGTERM and on failure.

import { execFileSync } from 'node:child_process';

export interface Topology {
  tag: string;
  /** Namespace names. */
  ns: { primary: string; backup: string; etcd: string; wire: string };
  ip: { wire: string; primary: string; backup: string; clients: string; etcd: string };
  /** The host-side interface of the clients' veth. */
  hostIf: string;
  teardown(): void;
}

export class NetnsUnavailable extends Error {
  override name = 'NetnsUnavailable';
}

function run(cmd: string, args: string[], log?: (line: string) => void): string {
  log?.(`$ ${cmd} ${args.join(' ')}`);
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryRun(cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    return { ok: true, out: execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }) };
  } catch (error) {
    const e = error as { stderr?: string; message: string };
    return { ok: false, out: String(e.stderr ?? e.message).trim() };
  }
}

/** Why namespaces cannot be used here (not Linux, not root, no `ip`), or null. Never a silent fallback. */
export function netnsUnavailableReason(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the drill as root)';
  if (!tryRun('ip', ['-V']).ok) return 'the `ip` command (iproute2) is missing: apt-get install iproute2';
  return null;
}

/**
 * iptables for the faults, installed from Debian when missing and root (like test/setup/ensure-etcd.ts
 * does for etcd); an error naming the package otherwise.
 */
export function ensureTool(command: string, debianPackage: string, log: (line: string) => void): void {
  if (tryRun(command, ['--version']).ok) return;
  if (process.getuid?.() !== 0 || !tryRun('apt-get', ['--version']).ok) throw new NetnsUnavailable(`\`${command}\` is missing: install ${debianPackage}`);
  log(`installing ${debianPackage} (Debian package) for \`${command}\``);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const apt = (...args: string[]) => execFileSync('apt-get', args, { stdio: 'inherit', env });
  try {
    apt('install', '-y', '--no-install-recommends', debianPackage);
  } catch {
    apt('update');
    apt('install', '-y', '--no-install-recommends', debianPackage);
  }
  if (!tryRun(command, ['--version']).ok) throw new NetnsUnavailable(`apt-get installed ${debianPackage} but \`${command}\` still does not run`);
}

const live = new Set<Topology>();
let handlersOn = false;
function cleanupOnExit(): void {
  if (handlersOn) return;
  handlersOn = true;
  const all = () => {
    for (const t of [...live]) t.teardown();
  };
  process.once('exit', all);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      all();
      process.exit(130);
    });
  }
}

/** A 10.77.N.0/24 no host interface uses yet (another drill or benchmark may run at the same time). */
function freeSubnet(start: number): number {
  const used = tryRun('ip', ['-o', '-4', 'addr', 'show']).out;
  for (let i = 0; i < 200; i++) {
    const n = (start + i) % 200;
    if (!used.includes(`10.77.${n}.`)) return n;
  }
  throw new NetnsUnavailable('no free 10.77.N.0/24 subnet for the drill namespaces');
}

/** Builds the namespaces, veths and bridge. `index` (0-199) keeps concurrent drills' subnets apart. */
export function buildTopology(index: number, log?: (line: string) => void): Topology {
  const tag = `ftjs${process.pid % 100000}${index}`;
  const subnet = `10.77.${freeSubnet((process.pid + index) % 200)}`;
  const ns = { primary: `${tag}-p`, backup: `${tag}-b`, etcd: `${tag}-e`, wire: `${tag}-w` };
  const ip = { wire: `${subnet}.1`, primary: `${subnet}.2`, backup: `${subnet}.3`, clients: `${subnet}.4`, etcd: `${subnet}.5` };
  const hostIf = `${tag}c`.slice(-15);
  let down = false;
  const topology: Topology = {
    tag,
    ns,
    ip,
    hostIf,
    teardown() {
      if (down) return;
      down = true;
      live.delete(topology);
      // Deleting a namespace deletes its veth ends (and so their peers) and every rule inside it.
      for (const name of Object.values(ns)) tryRun('ip', ['netns', 'del', name]);
      tryRun('ip', ['link', 'del', hostIf]);
    },
  };
  live.add(topology);
  cleanupOnExit();
  try {
    for (const name of Object.values(ns)) {
      run('ip', ['netns', 'add', name], log);
      run('ip', ['-n', name, 'link', 'set', 'lo', 'up'], log);
    }
    run('ip', ['-n', ns.wire, 'link', 'add', 'br0', 'type', 'bridge'], log);
    run('ip', ['-n', ns.wire, 'addr', 'add', `${ip.wire}/24`, 'dev', 'br0'], log);
    run('ip', ['-n', ns.wire, 'link', 'set', 'br0', 'up'], log);
    const attach = (name: string | null, address: string, short: string) => {
      // One end in the wire namespace on the bridge, the other in the node's namespace as eth0 (or on the host).
      const outer = `${tag}${short}`.slice(-15);
      run('ip', ['link', 'add', outer, 'type', 'veth', 'peer', 'name', `w${short}${tag}`.slice(0, 15)], log);
      const wireEnd = `w${short}${tag}`.slice(0, 15);
      run('ip', ['link', 'set', wireEnd, 'netns', ns.wire], log);
      run('ip', ['-n', ns.wire, 'link', 'set', wireEnd, 'master', 'br0'], log);
      run('ip', ['-n', ns.wire, 'link', 'set', wireEnd, 'up'], log);
      if (name === null) {
        run('ip', ['addr', 'add', `${address}/24`, 'dev', outer], log);
        run('ip', ['link', 'set', outer, 'up'], log);
        return;
      }
      run('ip', ['link', 'set', outer, 'netns', name], log);
      run('ip', ['-n', name, 'link', 'set', outer, 'name', 'eth0'], log);
      run('ip', ['-n', name, 'addr', 'add', `${address}/24`, 'dev', 'eth0'], log);
      run('ip', ['-n', name, 'link', 'set', 'eth0', 'up'], log);
    };
    attach(ns.primary, ip.primary, 'p');
    attach(ns.backup, ip.backup, 'b');
    attach(ns.etcd, ip.etcd, 'e');
    attach(null, ip.clients, 'c');
  } catch (error) {
    topology.teardown();
    throw new NetnsUnavailable(`building the namespaces failed: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`);
  }
  return topology;
}

/** Runs iptables inside a namespace (the rules vanish with it). */
export function iptables(nsName: string, args: string[], log?: (line: string) => void): void {
  run('ip', ['netns', 'exec', nsName, 'iptables', '-w', ...args], log);
}

/** Flushes every rule inside a namespace (the fault heals). */
export function flushRules(nsName: string, log?: (line: string) => void): void {
  run('ip', ['netns', 'exec', nsName, 'iptables', '-w', '-F'], log);
}

/** Is tc's netem qdisc available in this kernel? (Measured: this project's Firecracker 6.18 kernel has none.) */
export function netemAvailable(t: Topology): { ok: boolean; why: string } {
  const r = tryRun('ip', ['netns', 'exec', t.ns.primary, 'tc', 'qdisc', 'add', 'dev', 'eth0', 'root', 'netem', 'delay', '1ms']);
  if (r.ok) tryRun('ip', ['netns', 'exec', t.ns.primary, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root']);
  return { ok: r.ok, why: r.out };
}

/** netem delay on the primary's and backup's links (each adds half the round trip). */
export function netemDelay(t: Topology, roundTripMs: number, jitterMs: number, log?: (line: string) => void): void {
  for (const name of [t.ns.primary, t.ns.backup]) {
    const args = ['netns', 'exec', name, 'tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'netem', 'delay', `${roundTripMs / 2}ms`];
    if (jitterMs > 0) args.push(`${jitterMs / 2}ms`);
    run('ip', args, log);
  }
}
