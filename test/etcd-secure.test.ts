// The etcd arbiter against a secured etcd (issue 18): TLS with client certificates
// (--client-cert-auth) and etcd's own auth enabled with a user. The CLI's etcds:// flags
// (--etcd-ca, --etcd-cert, --etcd-key, --etcd-user, --etcd-password-file) get a node its epoch;
// a wrong password or a missing client certificate gets 'unreachable' with the reason, never a claim.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { EtcdArbiter } from '../dist/hypervisor/node/arbiter-etcd.js';
import { spawnFtjs, status, TEST_SECRET, tempDir, waitFor } from './helpers.js';

const dir = tempDir('ftjs-etcd-tls-');
const file = (name: string) => path.join(dir, name);
let etcd: ChildProcess;
let port: number;

function issue(name: string, cn: string, ext: string): void {
  const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore' });
  ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${cn}`);
  writeFileSync(file(`${name}.ext`), ext);
  ossl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial', '-out', file(`${name}.pem`), '-days', '1', '-extfile', file(`${name}.ext`));
}

const credentials = () => ({ rootCertificate: readFileSync(file('ca.pem')), certChain: readFileSync(file('client.pem')), privateKey: readFileSync(file('client.key')) });

beforeAll(async () => {
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=ftjs-test-ca'],
    { stdio: 'ignore' },
  );
  issue('server', '127.0.0.1', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  issue('client', 'ftjs', 'extendedKeyUsage=clientAuth\n');
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const url = `https://127.0.0.1:${port}`;
  etcd = spawn(
    'etcd',
    [
      '--name',
      'secure',
      '--data-dir',
      file('data'),
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--listen-peer-urls',
      'http://127.0.0.1:0',
      '--cert-file',
      file('server.pem'),
      '--key-file',
      file('server.key'),
      '--trusted-ca-file',
      file('ca.pem'),
      '--client-cert-auth',
      '--log-level',
      'error',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  // Users first (root is needed to enable auth), then auth on.
  const admin = new Etcd3({ hosts: url, credentials: credentials() });
  try {
    await waitFor(
      async () =>
        (await admin
          .get('probe')
          .string()
          .then(
            () => true,
            () => null,
          )) ?? null,
      'the TLS etcd to answer',
      30_000,
      100,
    );
    await admin
      .role('root')
      .create()
      .catch(() => undefined);
    await admin.user('root').create('root-pw');
    await admin.user('root').addRole('root');
    await admin.user('ftjs').create('ftjs-pw');
    await admin.user('ftjs').addRole('root');
    await admin.auth.authEnable();
  } finally {
    admin.close();
  }
}, 60_000);

afterAll(async () => {
  if (etcd && etcd.exitCode === null) {
    const gone = new Promise((resolve) => etcd.once('exit', resolve));
    etcd.kill('SIGKILL');
    await gone;
  }
  rmSync(dir, { recursive: true, force: true });
});

test('etcds:// with a client certificate and a user: the node claims its epoch; a wrong password or no client certificate is unreachable, with the reason', async () => {
  const url = `etcds://127.0.0.1:${port}/secure`;
  const good = new EtcdArbiter(url, 'good', { credentials: credentials(), auth: { username: 'ftjs', password: 'ftjs-pw' } });
  const wrongPassword = new EtcdArbiter(url, 'bad-pw', { credentials: credentials(), auth: { username: 'ftjs', password: 'nope' }, timeoutMs: 1500 });
  const noCert = new EtcdArbiter(url, 'no-cert', { credentials: { rootCertificate: readFileSync(file('ca.pem')) }, auth: { username: 'ftjs', password: 'ftjs-pw' }, timeoutMs: 1500 });
  try {
    expect((await good.claim(1, 'primary')).result).toBe('won');
    const refused = await wrongPassword.claim(2, 'primary');
    expect(refused.result).toBe('unreachable');
    expect(refused.detail).toMatch(/authentication failed|invalid|password/i);
    expect((await noCert.claim(2, 'primary')).result).toBe('unreachable');
    expect(await good.newestEpoch()).toBe(1);
  } finally {
    await Promise.all([good.close(), wrongPassword.close(), noCert.close()]);
  }
  // The CLI's flags, end to end: a primary on the secured etcd serves in epoch 2 (the next one).
  writeFileSync(file('password'), 'ftjs-pw\n');
  const node = spawnFtjs(
    [
      'primary',
      'guest-apps/kv.js',
      '--port',
      '0',
      '--replication-port',
      '0',
      '--node-id',
      'tls-node',
      '--arbiter',
      url,
      '--etcd-ca',
      file('ca.pem'),
      '--etcd-cert',
      file('client.pem'),
      '--etcd-key',
      file('client.key'),
      '--etcd-user',
      'ftjs',
      '--etcd-password-file',
      file('password'),
    ],
    { FTJS_SECRET: TEST_SECRET },
  );
  try {
    const line = await node.waitForLog((l) => typeof l.url === 'string' && typeof l.replication === 'string', 'the primary to serve on the secured etcd', 30_000);
    const s = await status(line.url as string);
    expect(s).toMatchObject({ epoch: 2, arbiter: { kind: 'etcd', location: url } });
  } finally {
    await node.stop('SIGKILL');
  }
}, 90_000);
