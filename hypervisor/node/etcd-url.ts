// The `--arbiter etcd://...` URL, parsed without loading the etcd client (hypervisor/node/arbiter-etcd.ts).

export class EtcdArbiterError extends Error {
  override name = 'EtcdArbiterError';
}

/** `etcd://host:port[,host:port...]/prefix` (or etcds:// for TLS) → the client's hosts and the key prefix. */
export function parseEtcdUrl(url: string): { hosts: string[]; prefix: string; tls: boolean } {
  const m = /^(etcds?):\/\/([^/]+)(\/.*)?$/.exec(url);
  if (!m) throw new EtcdArbiterError(`--arbiter ${JSON.stringify(url)} is not etcd://host:port[,host:port]/prefix`);
  const tls = m[1] === 'etcds';
  const hosts = m[2]!.split(',').map((h) => {
    if (!/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/.test(h)) throw new EtcdArbiterError(`--arbiter ${JSON.stringify(url)}: "${h}" is not host:port`);
    return `${tls ? 'https' : 'http'}://${h}`;
  });
  const prefix = (m[3] ?? '/ftjs').replace(/\/+$/, '') || '/ftjs';
  return { hosts, prefix: `${prefix}/`, tls };
}
