// Where a guest's outbound fetch may connect. By default not to loopback, link-local (cloud metadata
// at 169.254.169.254), private, shared or reserved ranges, nor to this node's own ports on any of its
// addresses: a guest must not reach its own node's operator endpoints or the services beside it.
// `--allow-fetch` opens hosts (exact, or `*.suffix`) and CIDRs. The check runs on the address the
// socket actually connects to (a DNS lookup hook), so a name that resolves to a public address when
// checked and to a private one when used (DNS rebinding) is still refused; IP literals and every
// redirect hop are checked before they are dialled.

import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOneOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { networkInterfaces } from 'node:os';

/** Ranges a guest may not reach unless allowed (RFC 6890 special-purpose, plus multicast). */
const DENIED_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.0.2.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '224.0.0.0/4',
  '240.0.0.0/4',
];
const DENIED_V6 = ['::/128', '::1/128', '64:ff9b::/96', '100::/64', '2001:db8::/32', 'fc00::/7', 'fe80::/10', 'ff00::/8'];

export class EgressError extends Error {
  override name = 'EgressError';
}

export interface EgressPolicy {
  /** Hosts allowed whatever they resolve to: exact names, or `*.example.com` for its subdomains. */
  allowHosts: string[];
  /** Addresses allowed even inside a denied range. */
  allowed: BlockList;
  denied: BlockList;
  /** This node's listening ports: never reachable on any of its own addresses. */
  ownPorts: Set<number>;
  ownAddresses: Set<string>;
}

/** A policy from `--allow-fetch` values (hosts, IPs and CIDRs) and the node's own ports. */
export function egressPolicy(allow: readonly string[], ownPorts: readonly number[]): EgressPolicy {
  const allowedCidrs: Cidr[] = [];
  const allowHosts: string[] = [];
  for (const raw of allow) {
    const value = raw.trim().toLowerCase();
    if (value === '') continue;
    const bare = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value;
    if (bare.includes('/') || isIP(bare)) allowedCidrs.push(parseCidr(bare, `--allow-fetch ${raw}`));
    else if (/^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(value)) allowHosts.push(value);
    else throw new EgressError(`--allow-fetch ${JSON.stringify(raw)} is not a host name, *.domain, IP address or CIDR`);
  }
  const ownAddresses = new Set<string>(['0.0.0.0', '::']);
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) ownAddresses.add(a.address.toLowerCase());
  // The block lists are built at the first check: Node's first addSubnet costs 4–9 ms of a node's cold start.
  let denied: BlockList | undefined;
  let allowed: BlockList | undefined;
  return {
    allowHosts,
    get allowed() {
      allowed ??= blockList(allowedCidrs);
      return allowed;
    },
    get denied() {
      denied ??= blockList([...DENIED_V4, ...DENIED_V6].map((cidr) => parseCidr(cidr, cidr)));
      return denied;
    },
    ownPorts: new Set(ownPorts),
    ownAddresses,
  };
}

interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

function parseCidr(cidr: string, what: string): Cidr {
  const [address, bits] = cidr.split('/');
  const family = isIP(address ?? '');
  const prefix = bits === undefined ? (family === 6 ? 128 : 32) : Number(bits);
  if (family === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > (family === 6 ? 128 : 32)) throw new EgressError(`${what}: not an IP address or CIDR`);
  return { address: address!, prefix, family: family === 6 ? 'ipv6' : 'ipv4' };
}

function blockList(cidrs: readonly Cidr[]): BlockList {
  const list = new BlockList();
  for (const { address, prefix, family } of cidrs) list.addSubnet(address, prefix, family);
  return list;
}

export function hostAllowed(policy: EgressPolicy, host: string): boolean {
  const name = host.toLowerCase().replace(/\.$/, '');
  return policy.allowHosts.some((h) => (h.startsWith('*.') ? name.endsWith(h.slice(1)) : name === h));
}

/** Why a connection to `address`:`port` is refused, or null when it may go ahead. */
export function addressProblem(policy: EgressPolicy, address: string, port: number): string | null {
  const family = isIP(address);
  if (family === 0) return `${address} is not an IP address`;
  const type = family === 6 ? 'ipv6' : 'ipv4';
  const mapped = type === 'ipv6' ? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1] : undefined;
  if (mapped !== undefined) return addressProblem(policy, mapped, port);
  // Every loopback address reaches a node listening on 127.0.0.1 or 0.0.0.0.
  const own = policy.ownAddresses.has(address.toLowerCase()) || (type === 'ipv4' ? address.startsWith('127.') : address === '::1');
  if (policy.ownPorts.has(port) && own) {
    return `${address}:${port} is this node's own port`;
  }
  if (policy.allowed.check(address, type)) return null;
  if (policy.denied.check(address, type)) return `${address} is in a loopback, link-local, private or reserved range`;
  return null;
}

/** Checks a URL before it is dialled: its scheme, and its host when that is an IP literal. */
export function urlProblem(policy: EgressPolicy, url: URL): string | null {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `scheme ${url.protocol} is not allowed (http and https only)`;
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  if (isIP(host) !== 0) return addressProblem(policy, host, port);
  if (policy.ownPorts.has(port) && (host === 'localhost' || host.endsWith('.localhost'))) return `${host}:${port} is this node's own port`;
  return null;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for the sockets of outbound fetches to `host`:`port`: resolves as usual, then refuses
 * an address the policy denies (unless the host itself is allowed by name).
 */
export function checkedLookup(policy: EgressPolicy, port: number) {
  return (hostname: string, options: LookupOneOptions | LookupAllOptions, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '');
      const list = addresses as LookupAddress[];
      if (!hostAllowed(policy, hostname)) {
        for (const a of list) {
          const problem = addressProblem(policy, a.address, port);
          if (problem !== null) {
            const refused = new EgressError(`fetch to ${hostname} refused by the egress policy: it resolves to ${problem} (--allow-fetch ${hostname} allows it)`) as NodeJS.ErrnoException;
            refused.code = 'EFTJSEGRESS';
            return callback(refused, '');
          }
        }
      }
      if ((options as LookupAllOptions).all) return callback(null, list);
      callback(null, list[0]!.address, list[0]!.family);
    });
  };
}
