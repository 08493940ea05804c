// vitest global setup: the etcd tests need a real etcd server. A fresh machine (CI runs as root on
// Debian) gets Debian's etcd-server package here, so `npm test` alone is enough; anywhere else a
// missing etcd is an error that says what to install. The tests are never skipped.
import { execFileSync } from 'node:child_process';

function hasEtcd(): boolean {
  try {
    execFileSync('etcd', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export default function setup(): void {
  if (hasEtcd()) return;
  if (process.getuid?.() !== 0) throw new Error('the test suite needs etcd (Debian: apt-get install etcd-server); run it as root once to have it installed');
  process.stderr.write('ftjs tests: installing etcd-server (Debian package) for the etcd arbiter tests\n');
  const apt = (...args: string[]) => execFileSync('apt-get', args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  try {
    apt('install', '-y', '--no-install-recommends', 'etcd-server');
  } catch {
    // Package lists may be missing or stale on a fresh machine.
    apt('update');
    apt('install', '-y', '--no-install-recommends', 'etcd-server');
  }
  if (!hasEtcd()) throw new Error('apt-get installed etcd-server but `etcd` is still not on PATH');
}
