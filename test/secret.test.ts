// The pair's shared secret: from a file or the environment; the flag works but warns (ps shows it).
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readSecret } from '../dist/cli/secret.js';
import { ftjs } from './helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-secret-'));
const file = (name: string, text: string, mode: number) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
};

describe('shared secret', () => {
  it('reads --secret-file without its trailing newline, and warns only when others can read the file', () => {
    const privateFile = file('private', 'a-secret-of-24-bytes-abc\n', 0o600);
    expect(readSecret({ secretFile: privateFile }, {})).toEqual({ secret: 'a-secret-of-24-bytes-abc', warnings: [] });
    const shared = file('shared', 'a-secret-of-24-bytes-abc', 0o644);
    const { secret, warnings } = readSecret({ secretFile: shared }, {});
    expect(secret).toBe('a-secret-of-24-bytes-abc');
    expect(warnings).toEqual([`the secret file ${shared} is readable by other users (mode 644); chmod 600 it`]);
  });

  it('takes FTJS_SECRET when no flag is given; --secret works with a warning; both flags at once are refused', () => {
    expect(readSecret({}, { FTJS_SECRET: 'from-the-environment-1234' })).toEqual({ secret: 'from-the-environment-1234', warnings: [] });
    const flag = readSecret({ secret: 'on-the-command-line-1234' }, {});
    expect(flag.secret).toBe('on-the-command-line-1234');
    expect(flag.warnings[0]).toMatch(/visible to every local user/);
    expect(() => readSecret({ secret: 'on-the-command-line-1234', secretFile: '/x' }, {})).toThrow(/not both/);
  });

  it('refuses a missing, unreadable or short secret, saying which', () => {
    expect(() => readSecret({}, {})).toThrow(/needs a shared secret of at least 16 bytes: --secret-file FILE or FTJS_SECRET/);
    expect(() => readSecret({ secretFile: path.join(dir, 'absent') }, {})).toThrow(`cannot read the secret file ${path.join(dir, 'absent')}: no such file`);
    expect(() => readSecret({ secretFile: dir }, {})).toThrow(/it is a directory/);
    expect(() => readSecret({ secretFile: file('short', 'tiny\n', 0o600) }, {})).toThrow('the shared secret is 4 bytes; it must be at least 16');
  });

  it('ftjs primary with a missing secret file exits at once with the reason, before serving', async () => {
    const result = await ftjs(['primary', 'guest-apps/kv.js', '--port', '0', '--replication-port', '0', '--shared-dir', dir, '--secret-file', path.join(dir, 'absent')], { FTJS_SECRET: '' });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`cannot read the secret file ${path.join(dir, 'absent')}: no such file`);
  });
});
