// The node's edge, from flags: which outbound fetches a guest may make (--allow-fetch, through the
// egress policy of hypervisor/node/egress.ts), the origin guests see (--public-url), and the token that
// guards the operator endpoints (--admin-token-file or FTJS_ADMIN_TOKEN).

import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { type EgressPolicy, egressPolicy } from '../hypervisor/node/egress.js';
import { egressFetch } from '../hypervisor/node/egress-fetch.js';
import type { Env } from '../hypervisor/node/env.js';
import type { EdgeOptions } from '../hypervisor/node/front-door.js';
import { publicOrigin } from '../hypervisor/node/request-target.js';

export interface EdgeFlags {
  allowFetch: string[];
  publicUrl?: string;
  adminTokenFile?: string;
}

/** An admin token shorter than this is refused: it guards the trace path, node names and replication URL. */
export const MIN_ADMIN_TOKEN_CHARS = 16;

const collect = (value: string, previous: string[]) => [...previous, value];

export function addEdgeOptions(command: Command): Command {
  return command
    .option(
      '--allow-fetch <host|cidr>',
      "let the guest fetch this host (exact, or *.domain), IP address or CIDR although it is loopback, link-local, private or reserved (repeatable; by default those and this node's own ports are refused)",
      collect,
      [],
    )
    .option('--public-url <url>', 'the origin guests see in request URLs (scheme://host[:port]), instead of the validated Host header')
    .option('--admin-token-file <file>', 'file holding a token that /_ft/status requires as "Authorization: Bearer <token>" (or set FTJS_ADMIN_TOKEN); /_ft/health stays open');
}

/** The admin token from --admin-token-file or FTJS_ADMIN_TOKEN, or null (operator endpoints open). */
export function adminTokenFrom(flags: EdgeFlags, env: NodeJS.ProcessEnv = process.env): string | null {
  let token: string | undefined;
  if (flags.adminTokenFile !== undefined) {
    try {
      token = readFileSync(flags.adminTokenFile, 'utf8').trim();
    } catch (error) {
      throw new Error(`--admin-token-file ${flags.adminTokenFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
  } else token = env.FTJS_ADMIN_TOKEN?.trim();
  if (token === undefined || token === '') {
    if (flags.adminTokenFile !== undefined) throw new Error(`--admin-token-file ${flags.adminTokenFile} is empty`);
    return null;
  }
  if (token.length < MIN_ADMIN_TOKEN_CHARS)
    throw new Error(`the admin token (${flags.adminTokenFile !== undefined ? `--admin-token-file ${flags.adminTokenFile}` : 'FTJS_ADMIN_TOKEN'}) must be at least ${MIN_ADMIN_TOKEN_CHARS} characters`);
  return token;
}

export interface Edge {
  policy: EgressPolicy;
  frontDoor: EdgeOptions;
  /** The policy's fetch, for Env.fetch. */
  fetch: Env['fetch'];
  /** A port this node listens on (known once bound, when it was 0): the guest may never fetch it. */
  ownPort(port: number): void;
}

export function edgeFrom(flags: EdgeFlags, ownPorts: ReadonlyArray<number | undefined>): Edge {
  const policy = egressPolicy(
    flags.allowFetch,
    ownPorts.filter((p): p is number => p !== undefined && p !== 0),
  );
  const fetch = egressFetch(policy);
  return {
    policy,
    frontDoor: { publicOrigin: flags.publicUrl !== undefined ? publicOrigin(flags.publicUrl) : null, adminToken: adminTokenFrom(flags) },
    // undici's fetch and the global one differ only in their type declarations.
    fetch: fetch as unknown as Env['fetch'],
    ownPort: (port) => void policy.ownPorts.add(port),
  };
}

/** The port of a node URL (http://host:port or ws://host:port). */
export function portOf(url: string): number | undefined {
  try {
    const port = Number(new URL(url).port);
    return port > 0 ? port : undefined;
  } catch {
    return undefined;
  }
}
