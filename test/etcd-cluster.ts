// Real etcd servers for the tests: one or three members on free 127.0.0.1 ports, each with its own
// temporary data directory, started and killed like any process.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { waitFor } from './helpers.js';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface EtcdMember {
  name: string;
  clientUrl: string;
  process: ChildProcess;
  exited: boolean;
}

export interface EtcdCluster {
  members: EtcdMember[];
  /** etcd://host:port,host:port/prefix for the arbiter. */
  arbiterUrl(prefix: string): string;
  kill(member: EtcdMember): Promise<void>;
  /** The member that leads now (asked of the members that still run). */
  leader(): Promise<EtcdMember>;
  stop(): Promise<void>;
}

export async function startEtcd(size = 1): Promise<EtcdCluster> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-etcd-'));
  const ports = await Promise.all(Array.from({ length: size * 2 }, () => freePort()));
  const names = Array.from({ length: size }, (_, i) => `m${i}`);
  const peer = (i: number) => `http://127.0.0.1:${ports[2 * i + 1]}`;
  const initialCluster = names.map((n, i) => `${n}=${peer(i)}`).join(',');
  const members: EtcdMember[] = names.map((name, i) => {
    const clientUrl = `http://127.0.0.1:${ports[2 * i]}`;
    const child = spawn(
      'etcd',
      [
        '--name',
        name,
        '--data-dir',
        path.join(dir, name),
        '--listen-client-urls',
        clientUrl,
        '--advertise-client-urls',
        clientUrl,
        '--listen-peer-urls',
        peer(i),
        '--initial-advertise-peer-urls',
        peer(i),
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-state',
        'new',
        '--initial-cluster-token',
        path.basename(dir),
        '--heartbeat-interval',
        '50',
        '--election-timeout',
        '500',
        '--log-level',
        'error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const member: EtcdMember = { name, clientUrl, process: child, exited: false };
    child.on('exit', () => (member.exited = true));
    return member;
  });
  const health = async (m: EtcdMember) => {
    try {
      const r = await fetch(`${m.clientUrl}/health`);
      return r.ok && ((await r.json()) as { health: string }).health === 'true';
    } catch {
      return false;
    }
  };
  await waitFor(async () => (await Promise.all(members.map(health))).every(Boolean) || null, `etcd (${size} members) to be healthy`, 30_000, 50);
  const cluster: EtcdCluster = {
    members,
    arbiterUrl: (prefix) => `etcd://${members.map((m) => m.clientUrl.replace('http://', '')).join(',')}/${prefix}`,
    async kill(member) {
      if (member.exited) return;
      const gone = new Promise<void>((resolve) => member.process.once('exit', () => resolve()));
      member.process.kill('SIGKILL');
      await gone;
    },
    async leader() {
      return waitFor(
        async () => {
          for (const m of members.filter((x) => !x.exited)) {
            try {
              const r = await fetch(`${m.clientUrl}/v3/maintenance/status`, { method: 'POST', body: '{}' });
              const s = (await r.json()) as { header: { member_id: string }; leader: string };
              if (s.leader && s.leader === s.header.member_id) return m;
            } catch {
              // Not answering: try the next one.
            }
          }
          return null;
        },
        'an etcd leader',
        20_000,
        50,
      );
    },
    async stop() {
      await Promise.all(members.map((m) => cluster.kill(m)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/**
 * One etcd for the file that calls this at its top level: started in beforeAll, stopped (and a member
 * a test left SIGSTOPped resumed first) in afterAll. The cluster is usable inside tests and hooks only.
 */
export function useEtcd(size = 1): EtcdCluster {
  let cluster: EtcdCluster | null = null;
  const started = (): EtcdCluster => {
    if (cluster === null) throw new Error('useEtcd: the etcd cluster starts in beforeAll; use it inside a test or hook');
    return cluster;
  };
  beforeAll(async () => {
    cluster = await startEtcd(size);
  }, 60_000);
  afterAll(async () => {
    if (cluster === null) return;
    for (const m of cluster.members) if (!m.exited) m.process.kill('SIGCONT');
    await cluster.stop();
  });
  return {
    get members() {
      return started().members;
    },
    arbiterUrl: (prefix) => started().arbiterUrl(prefix),
    kill: (member) => started().kill(member),
    leader: () => started().leader(),
    stop: () => started().stop(),
  };
}
