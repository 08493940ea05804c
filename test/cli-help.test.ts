// `ftjs --help` loads every command's module (the others load only the one they run): all of them
// must register side by side, `up` reusing the primary and backup commands' options.

import { spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli', 'ftjs.js');

test('ftjs --help lists every command and exits 0', () => {
  const result = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' });
  expect(result.stderr).toBe('');
  expect(result.status).toBe(0);
  for (const command of ['run', 'replay', 'inspect', 'primary', 'backup', 'up', 'drill']) expect(result.stdout).toMatch(new RegExp(`^  ${command}\\b`, 'm'));
});

test("the package's bin is the CommonJS entry, executable, and runs the same command as dist/cli/ftjs.js", () => {
  const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  const bin = path.join(root, (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { bin: { ftjs: string } }).bin.ftjs);
  expect(bin.endsWith('.cjs')).toBe(true);
  expect(statSync(bin).mode & 0o111).not.toBe(0);
  const direct = spawnSync(bin, ['--help'], { encoding: 'utf8' });
  expect(direct.status).toBe(0);
  expect(direct.stdout).toBe(spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout);
});
