// Optional TLS for the logging channel (wss://), mutual: each node presents a certificate signed by
// the pair's CA and checks the other's against it. The frame MAC (frame-mac.ts) already gives
// integrity; TLS adds confidentiality (request bodies travel in the log) and keeps strangers from
// even reaching the handshake.

import { readFileSync } from 'node:fs';
import type { TlsOptions } from 'node:tls';

/** PEM contents of this node's certificate chain, its private key, and the CA that signs the pair's certificates. */
export interface ChannelTls {
  cert: string | Buffer;
  key: string | Buffer;
  ca: string | Buffer;
}

/** Oldest TLS version the channel speaks. */
export const MIN_CHANNEL_TLS_VERSION = 'TLSv1.2';

/** Server options: a client certificate is required and must chain to `ca`. */
export function primaryTlsOptions(tls: ChannelTls): TlsOptions {
  return { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: true, minVersion: MIN_CHANNEL_TLS_VERSION };
}

/** Client options: the primary's certificate must chain to `ca` and name the host dialled. */
export function backupTlsOptions(tls: ChannelTls): TlsOptions {
  return { cert: tls.cert, key: tls.key, ca: tls.ca, rejectUnauthorized: true, minVersion: MIN_CHANNEL_TLS_VERSION };
}

export interface TlsFlags {
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
}

/** The three `--tls-*` files read, or undefined when none is given; a clear error when only some are. */
export function readChannelTls(flags: TlsFlags): ChannelTls | undefined {
  const given = { '--tls-cert': flags.tlsCert, '--tls-key': flags.tlsKey, '--tls-ca': flags.tlsCa };
  const missing = Object.entries(given)
    .filter(([, v]) => v === undefined)
    .map(([k]) => k);
  if (missing.length === 3) return undefined;
  if (missing.length > 0) throw new Error(`TLS for the logging channel needs --tls-cert, --tls-key and --tls-ca together; missing ${missing.join(', ')}`);
  const read = (flag: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new Error(`${flag} ${path}: cannot read it: ${(err as Error).message}`);
    }
  };
  return { cert: read('--tls-cert', flags.tlsCert!), key: read('--tls-key', flags.tlsKey!), ca: read('--tls-ca', flags.tlsCa!) };
}

/** The dial URL's scheme must match whether TLS is configured; an error that says which way it is off. */
export function checkChannelUrl(url: string, tls: ChannelTls | undefined): void {
  let scheme: string;
  try {
    scheme = new URL(url).protocol;
  } catch {
    throw new RangeError(`the primary's logging-channel URL "${url}" is not a URL (expected ws://HOST:PORT or wss://HOST:PORT)`);
  }
  if (scheme === 'wss:' && tls === undefined) throw new RangeError(`the primary's logging channel ${url} is wss://: give --tls-cert, --tls-key and --tls-ca`);
  if (scheme === 'ws:' && tls !== undefined) throw new RangeError(`TLS is configured (--tls-cert, --tls-key, --tls-ca) but the primary's logging channel ${url} is ws://: use wss://`);
  if (scheme !== 'ws:' && scheme !== 'wss:') throw new RangeError(`the primary's logging-channel URL "${url}" must be ws:// or wss://`);
}
