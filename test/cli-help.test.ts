// `ftjs --help` loads every command's module (the others load only the one they run): all of them
// must register side by side, `up` reusing the primary and backup commands' options.

import { spawnSync } from 'node:child_process';
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
