// Where a pair's shared secret comes from. A secret on the command line is visible to every local user
// (ps, /proc/PID/cmdline), so the file and the environment are the ways to pass it; the flag still
// works, with a warning.

import { readFileSync, statSync } from 'node:fs';

export const MIN_SECRET_BYTES = 16;

export interface SecretFlags {
  secret?: string;
  secretFile?: string;
}

export class SecretError extends Error {
  override name = 'SecretError';
}

/** The secret, and warnings for the operator about how it was passed. */
export function readSecret(flags: SecretFlags, env: NodeJS.ProcessEnv = process.env): { secret: string; warnings: string[] } {
  const warnings: string[] = [];
  if (flags.secret !== undefined && flags.secretFile !== undefined) throw new SecretError('give the shared secret once: --secret-file or --secret, not both');
  let secret: string | undefined;
  if (flags.secretFile !== undefined) {
    const file = flags.secretFile;
    try {
      // One trailing newline is the editor's, not the secret's.
      secret = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new SecretError(
        `cannot read the secret file ${file}: ${code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : (error as Error).message}`,
      );
    }
    if (process.platform !== 'win32' && (statSync(file).mode & 0o077) !== 0) {
      warnings.push(`the secret file ${file} is readable by other users (mode ${(statSync(file).mode & 0o777).toString(8)}); chmod 600 it`);
    }
  } else if (flags.secret !== undefined) {
    secret = flags.secret;
    warnings.push('--secret on the command line is visible to every local user (ps); pass it with --secret-file or FTJS_SECRET instead');
  } else {
    secret = env.FTJS_SECRET;
  }
  if (!secret) throw new SecretError(`the pair needs a shared secret of at least ${MIN_SECRET_BYTES} bytes: --secret-file FILE or FTJS_SECRET`);
  if (Buffer.byteLength(secret) < MIN_SECRET_BYTES) throw new SecretError(`the shared secret is ${Buffer.byteLength(secret)} bytes; it must be at least ${MIN_SECRET_BYTES}`);
  return { secret, warnings };
}
