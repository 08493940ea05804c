// The arbiter flags (cli/arbiter-flags.ts): exactly one of --shared-dir and --arbiter; etcd's TLS and
// auth flags read from real files; every bad combination is an error naming the flag.
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { arbiterFrom, checkpointDirFor } from '../dist/cli/arbiter-flags.js';
import { tempDir } from './helpers.js';

describe('arbiterFrom', () => {
  test('a shared directory must exist, unless --create-shared-dir creates it', () => {
    const dir = path.join(tempDir(), 'shared');
    expect(() => arbiterFrom({ sharedDir: dir })).toThrow(`--shared-dir ${dir} does not exist (create it, or pass --create-shared-dir)`);
    expect(arbiterFrom({ sharedDir: dir, createSharedDir: true })).toMatchObject({ kind: 'shared-dir', where: dir, sharedDir: dir });
    expect(existsSync(dir)).toBe(true);
    const file = path.join(dir, 'f');
    writeFileSync(file, '');
    expect(() => arbiterFrom({ sharedDir: file })).toThrow('is not a directory');
  });

  test('one arbiter, not none and not two', () => {
    expect(() => arbiterFrom({})).toThrow(/--shared-dir <dir>.*or --arbiter etcd/);
    expect(() => arbiterFrom({ sharedDir: tempDir(), arbiter: 'etcd://127.0.0.1:2379/x' })).toThrow('either --shared-dir or --arbiter');
    expect(() => arbiterFrom({ sharedDir: tempDir(), etcdUser: 'u' })).toThrow('--etcd-user needs --arbiter');
    expect(() => arbiterFrom({ arbiter: 'http://127.0.0.1:2379' })).toThrow(/is not etcd:\/\/host:port/);
  });

  test('etcd auth: the password from FTJS_ETCD_PASSWORD or a file, never from the command line', () => {
    const url = 'etcd://127.0.0.1:2379/p';
    expect(() => arbiterFrom({ arbiter: url, etcdUser: 'ftjs' }, {})).toThrow('--etcd-user needs a password');
    expect(arbiterFrom({ arbiter: url, etcdUser: 'ftjs' }, { FTJS_ETCD_PASSWORD: 'pw-env' }).etcd.auth).toEqual({ username: 'ftjs', password: 'pw-env' });
    const file = path.join(tempDir(), 'pw');
    writeFileSync(file, 'pw-file\n');
    expect(arbiterFrom({ arbiter: url, etcdUser: 'ftjs', etcdPasswordFile: file }, {}).etcd.auth).toEqual({ username: 'ftjs', password: 'pw-file' });
    expect(() => arbiterFrom({ arbiter: url, etcdPasswordFile: file }, {})).toThrow('--etcd-password-file needs --etcd-user');
  });

  test('etcds:// needs a CA; certificate and key go together; plain etcd:// takes no TLS files', () => {
    const dir = tempDir();
    const [ca, cert, key] = ['ca.pem', 'cert.pem', 'key.pem'].map((n) => path.join(dir, n));
    for (const f of [ca!, cert!, key!]) writeFileSync(f, `-----BEGIN ${path.basename(f)}-----\n`);
    expect(() => arbiterFrom({ arbiter: 'etcds://h:2379/p' })).toThrow('needs --etcd-ca');
    expect(() => arbiterFrom({ arbiter: 'etcds://h:2379/p', etcdCa: ca, etcdCert: cert })).toThrow('--etcd-cert and --etcd-key go together');
    expect(() => arbiterFrom({ arbiter: 'etcd://h:2379/p', etcdCa: ca })).toThrow('need an etcds:// arbiter URL');
    expect(() => arbiterFrom({ arbiter: 'etcds://h:2379/p', etcdCa: path.join(dir, 'absent') })).toThrow(/--etcd-ca .*absent: ENOENT/);
    const creds = arbiterFrom({ arbiter: 'etcds://h:2379/p', etcdCa: ca, etcdCert: cert, etcdKey: key }).etcd.credentials!;
    expect(creds.rootCertificate.toString()).toContain('ca.pem');
    expect(creds.certChain?.toString()).toContain('cert.pem');
    expect(creds.privateKey?.toString()).toContain('key.pem');
  });

  test('checkpoints default to the shared directory; with etcd they need --checkpoint-dir', () => {
    const dir = tempDir();
    expect(checkpointDirFor(arbiterFrom({ sharedDir: dir }), undefined)).toBe(dir);
    const etcd = arbiterFrom({ arbiter: 'etcd://h:2379/p' });
    expect(() => checkpointDirFor(etcd, undefined)).toThrow('checkpoints need --checkpoint-dir with --arbiter etcd://h:2379/p');
    expect(checkpointDirFor(etcd, '/var/ftjs')).toBe('/var/ftjs');
  });
});
