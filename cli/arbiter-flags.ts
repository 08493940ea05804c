// Where the epoch claims go: `--shared-dir <dir>` (the embedded default) or `--arbiter etcd://...`
// (hypervisor/node/arbiter-etcd.ts), with etcd's TLS and auth flags. Checked before anything starts, so a
// missing directory or a bad URL is an error naming the flag, not a node waiting "unreachable".

import { mkdirSync, readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import type { EtcdArbiterOptions } from '../hypervisor/node/arbiter-etcd.js';
import { parseEtcdUrl } from '../hypervisor/node/etcd-url.js';

export interface ArbiterFlags {
  sharedDir?: string;
  createSharedDir?: boolean;
  arbiter?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
}

export function addArbiterOptions(command: Command, sharedDirHelp = 'shared directory for the epoch test-and-set (both nodes must see the same one); or use --arbiter'): Command {
  return command
    .option('--shared-dir <dir>', sharedDirHelp)
    .option('--create-shared-dir', 'create --shared-dir if it does not exist (by default a missing one is an error)')
    .option('--arbiter <url>', 'etcd v3 instead of a shared directory for the epoch claims: etcd://host:port[,host:port]/prefix, or etcds:// for TLS')
    .option('--etcd-ca <file>', "etcds://: CA certificate (PEM) that signed the etcd servers' certificates")
    .option('--etcd-cert <file>', 'etcds://: client certificate (PEM), with --etcd-key')
    .option('--etcd-key <file>', 'etcds://: client private key (PEM)')
    .option('--etcd-user <name>', 'etcd user; the password comes from FTJS_ETCD_PASSWORD or --etcd-password-file')
    .option('--etcd-password-file <file>', "file holding the etcd user's password");
}

export interface ArbiterChoice {
  /** What the nodes are given as their arbiter location (PrimaryOptions.sharedDir): a directory or an etcd URL. */
  where: string;
  kind: 'shared-dir' | 'etcd';
  etcd: EtcdArbiterOptions;
  /** A directory checkpoints may default to (none with etcd: --checkpoint-dir is then needed). */
  sharedDir: string | null;
}

function readFlagFile(flag: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new Error(`${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** The arbiter the flags name, checked: exactly one of --shared-dir and --arbiter; the directory exists (or is created). */
export function arbiterFrom(flags: ArbiterFlags, env: NodeJS.ProcessEnv = process.env): ArbiterChoice {
  if (flags.arbiter !== undefined && flags.sharedDir !== undefined) throw new Error('give either --shared-dir or --arbiter, not both');
  if (flags.arbiter !== undefined) return { where: flags.arbiter, kind: 'etcd', etcd: etcdOptions(flags, env), sharedDir: null };
  for (const flag of ['etcdCa', 'etcdCert', 'etcdKey', 'etcdUser', 'etcdPasswordFile'] as const) {
    if (flags[flag] !== undefined) throw new Error(`--${flag.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} needs --arbiter etcd://...`);
  }
  const dir = flags.sharedDir;
  if (dir === undefined) throw new Error('an arbiter is required: --shared-dir <dir> (a directory both nodes see) or --arbiter etcd://host:port/prefix');
  if (flags.createSharedDir) mkdirSync(dir, { recursive: true });
  let isDir: boolean;
  try {
    isDir = statSync(dir).isDirectory();
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? `--shared-dir ${dir} does not exist (create it, or pass --create-shared-dir)` : `--shared-dir ${dir}: ${code ?? (error as Error).message}`);
  }
  if (!isDir) throw new Error(`--shared-dir ${dir} is not a directory`);
  return { where: dir, kind: 'shared-dir', etcd: {}, sharedDir: dir };
}

function etcdOptions(flags: ArbiterFlags, env: NodeJS.ProcessEnv): EtcdArbiterOptions {
  const { tls } = parseEtcdUrl(flags.arbiter!);
  const options: EtcdArbiterOptions = {};
  if (!tls && (flags.etcdCa || flags.etcdCert || flags.etcdKey)) throw new Error('--etcd-ca, --etcd-cert and --etcd-key need an etcds:// arbiter URL');
  if ((flags.etcdCert === undefined) !== (flags.etcdKey === undefined)) throw new Error('--etcd-cert and --etcd-key go together');
  if (tls) {
    if (flags.etcdCa === undefined) throw new Error("an etcds:// arbiter needs --etcd-ca (the CA that signed the etcd servers' certificates)");
    options.credentials = {
      rootCertificate: readFlagFile('--etcd-ca', flags.etcdCa),
      ...(flags.etcdCert !== undefined ? { certChain: readFlagFile('--etcd-cert', flags.etcdCert), privateKey: readFlagFile('--etcd-key', flags.etcdKey!) } : {}),
    };
  }
  if (flags.etcdUser !== undefined) {
    const password =
      flags.etcdPasswordFile !== undefined
        ? readFlagFile('--etcd-password-file', flags.etcdPasswordFile)
            .toString('utf8')
            .replace(/\r?\n$/, '')
        : env.FTJS_ETCD_PASSWORD;
    if (password === undefined || password === '') throw new Error('--etcd-user needs a password: set FTJS_ETCD_PASSWORD or give --etcd-password-file');
    options.auth = { username: flags.etcdUser, password };
  } else if (flags.etcdPasswordFile !== undefined) throw new Error('--etcd-password-file needs --etcd-user');
  return options;
}

/** The directory checkpoints go to: --checkpoint-dir, else the shared directory; with etcd there is none to default to. */
export function checkpointDirFor(choice: ArbiterChoice, checkpointDir: string | undefined): string {
  if (checkpointDir !== undefined) return checkpointDir;
  if (choice.sharedDir === null) throw new Error(`checkpoints need --checkpoint-dir with --arbiter ${choice.where}: there is no shared directory to put them in`);
  return choice.sharedDir;
}
