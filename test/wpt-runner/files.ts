// Where the Web Platform Tests live and how one .any.js test becomes the scripts a realm
// evaluates: its `// META: script=` dependencies in order, then the test itself.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * The WPT checkout (the subset the suites name, in WPT's own layout). FTJS_WPT_DIR wins; then
 * test/wpt/ in this repo; then shared/wpt/ beside the repo, where CI lays the steering repo's shared/.
 */
export function wptRoot(): string | null {
  const candidates = [process.env.FTJS_WPT_DIR, path.join(REPO_ROOT, 'test/wpt'), path.join(REPO_ROOT, '../shared/wpt')];
  for (const dir of candidates) if (dir && existsSync(path.join(dir, 'url'))) return path.resolve(dir);
  return null;
}

export interface Script {
  /** Path relative to the WPT root, for messages and as the evaluated file name. */
  name: string;
  source: string;
}

export interface LoadedTest {
  file: string;
  /** The test's directory relative to the WPT root, with a trailing slash: fetch("x.json") resolves against it. */
  base: string;
  scripts: Script[];
}

const META_SCRIPT_RE = /^\/\/ META: script=(.+?)\s*$/gm;

function resolveScript(_root: string, testDir: string, ref: string): string {
  const rel = ref.startsWith('/') ? ref.slice(1) : path.posix.join(testDir, ref);
  return path.posix.normalize(rel);
}

/** The test file is not in the WPT copy: reported as a file with no subtests and this harness error. */
export const MISSING = 'missing from the WPT copy';

export function loadTest(root: string, file: string): LoadedTest | null {
  if (!existsSync(path.join(root, file))) return null;
  const source = readFileSync(path.join(root, file), 'utf8');
  const testDir = path.posix.dirname(file);
  const scripts: Script[] = [];
  for (const m of source.matchAll(META_SCRIPT_RE)) {
    const name = resolveScript(root, testDir, m[1]!);
    const full = path.join(root, name);
    if (!existsSync(full)) throw new Error(`WPT ${file}: its META script ${m[1]} is not at ${full}`);
    scripts.push({ name, source: readFileSync(full, 'utf8') });
  }
  scripts.push({ name: file, source });
  return { file, base: testDir + '/', scripts };
}

/** A resource a test fetches (JSON data beside it), or undefined when the root has none there. */
export function readResource(root: string, rel: string): string | undefined {
  const full = path.join(root, rel);
  if (!full.startsWith(root + path.sep) || !existsSync(full)) return undefined;
  return readFileSync(full, 'utf8');
}

export const SHIM_SOURCE = readFileSync(new URL('./shim.js', import.meta.url), 'utf8');

export interface SubtestResult {
  name: string;
  status: 'PASS' | 'FAIL' | 'TIMEOUT' | 'NOTRUN' | 'PRECONDITION_FAILED';
  message: string | null;
}

export interface FileResult {
  file: string;
  passed: number;
  total: number;
  harnessError: string | null;
  results: SubtestResult[];
}

export function missingFile(file: string): FileResult {
  return { file, passed: 0, total: 0, harnessError: MISSING, results: [] };
}

export function summarize(file: string, json: string): FileResult {
  const { results, harnessError } = JSON.parse(json) as { results: SubtestResult[]; harnessError: string | null };
  return { file, passed: results.filter((r) => r.status === 'PASS').length, total: results.length, harnessError, results };
}
