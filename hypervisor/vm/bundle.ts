// Bundles a guest at boot: the entry (.js, .mjs, .ts, .tsx, .jsx, ...) and every npm dependency it
// imports, resolved from the entry's project, into ONE ES module with esbuild, the way wrangler builds a
// Worker (the `workerd`/`worker`/`browser` export conditions). The module and its source map are the
// guest's sources in the boot config: the trace and the backup get them with their hash, so neither a
// backup nor a replay ever needs the source tree or node_modules.
//
// Runs in the CLI process before the VM boots, never in the VM worker nor per request. Same inputs,
// same esbuild version (pinned in package.json) → the same bytes: paths inside the bundle and its map
// are relative to the project root, never absolute.

import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { type BuildFailure, type BuildOptions, build, type Message, stop, transformSync } from 'esbuild';
import { nodeBuiltinsPlugin } from './node-builtins.js';
import { type GuestCode, GuestLoadError, type GuestSource, guestHash, MAX_GUEST_SOURCE_BYTES, SOURCE_MAP_SUFFIX, sha256Hex } from './sources.js';

/** The export conditions wrangler resolves packages with (workerd first). */
export const BUNDLE_CONDITIONS = ['workerd', 'worker', 'browser'] as const;
/** package.json fields tried when a package has no matching `exports`, in this order. */
export const BUNDLE_MAIN_FIELDS = ['browser', 'module', 'main'] as const;
/** The syntax level QuickJS (2025-09) runs natively; newer syntax is lowered to it. */
export const BUNDLE_TARGET = 'es2023';
/** Entry file extensions the bundler takes. */
export const BUNDLE_ENTRY_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts', '.tsx', '.jsx'] as const;

export interface BundledGuest extends GuestCode {
  /** Where the bundle's relative paths start: the nearest folder with a package.json above the entry. */
  projectRoot: string;
  /** Input files that went into the bundle. */
  inputFiles: number;
  /** Their absolute paths (what a cached bundle is checked against: bundle-cache.ts). */
  inputs: string[];
  /** Wall-clock time of the esbuild step, ms. */
  bundleMs: number;
  /** esbuild's warnings, formatted as `file:line:col: text`. */
  warnings: string[];
}

/** The nearest folder at or above `dir` that holds a package.json; `dir` itself if none does. */
export function projectRootOf(dir: string): string {
  for (let at = dir; ; ) {
    if (existsSync(path.join(at, 'package.json'))) return at;
    const parent = path.dirname(at);
    if (parent === at) return dir;
    at = parent;
  }
}

/**
 * The VM module name of the bundle of `entryPath`: the entry's file name as JavaScript, so logs and
 * traces name the guest as the user does (`kv.js` → `kv.js`, `src/index.ts` → `index.js`).
 */
export function bundleModuleName(entryPath: string): string {
  const base = path.basename(entryPath);
  const ext = path.extname(base);
  if (ext === '.js' || ext === '.mjs') return base;
  return `${ext ? base.slice(0, -ext.length) : base}.js`;
}

export async function bundleGuest(entryPath: string): Promise<BundledGuest> {
  const entry = path.resolve(entryPath);
  checkEntry(entry);
  const projectRoot = projectRootOf(path.dirname(entry));
  const name = bundleModuleName(entry);
  const started = performance.now();
  let result;
  try {
    result = await build({ ...buildOptions(entry, projectRoot, name), write: false, metafile: true });
  } catch (error) {
    const failure = error as BuildFailure;
    if (!Array.isArray(failure.errors)) throw error;
    const shown = failure.errors.slice(0, MAX_ERRORS_SHOWN).map((m) => formatMessage(m));
    const more = failure.errors.length > MAX_ERRORS_SHOWN ? `\n(${failure.errors.length - MAX_ERRORS_SHOWN} more errors)` : '';
    throw new GuestLoadError(`cannot bundle ${entryPath}:\n${shown.join('\n')}${more}`);
  }
  const bundleMs = performance.now() - started;
  const code = result.outputFiles.find((f) => f.path.endsWith(name));
  const map = result.outputFiles.find((f) => f.path.endsWith(name + SOURCE_MAP_SUFFIX));
  if (!code || !map) throw new GuestLoadError(`esbuild produced no bundle for ${entry} (outputs: ${result.outputFiles.map((f) => f.path).join(', ')})`);
  const bytes = code.contents.byteLength + map.contents.byteLength;
  if (bytes > MAX_GUEST_SOURCE_BYTES) throw new GuestLoadError(`the bundle of ${entry} and its source map are ${bytes} bytes, over the limit of ${MAX_GUEST_SOURCE_BYTES}`);
  const sources: GuestSource[] = [
    { name, sha256: sha256Hex(code.text), text: code.text },
    { name: name + SOURCE_MAP_SUFFIX, sha256: sha256Hex(map.text), text: map.text },
  ];
  return {
    entry: name,
    sources,
    hash: guestHash(sources),
    projectRoot,
    inputFiles: Object.keys(result.metafile.inputs).length,
    inputs: Object.keys(result.metafile.inputs).map((input) => path.resolve(projectRoot, input)),
    bundleMs,
    warnings: result.warnings.map((m) => formatMessage(m)),
  };
}

/** Stops esbuild's service process (a long-running node has no more use for it). */
export async function stopBundler(): Promise<void> {
  await stop();
}

/** The esbuild settings of a guest bundle: wrangler's, deterministic, nothing written. */
function buildOptions(entry: string, projectRoot: string, name: string): BuildOptions {
  return {
    entryPoints: [entry],
    absWorkingDir: projectRoot,
    outfile: path.join(projectRoot, name),
    // Nothing is written (write: false); the output may share the entry's name.
    allowOverwrite: true,
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: [...BUNDLE_CONDITIONS],
    mainFields: [...BUNDLE_MAIN_FIELDS],
    target: BUNDLE_TARGET,
    sourcemap: 'external',
    sourcesContent: false,
    // As wrangler: functions and classes keep their names (`fn.name`, stack frames) through renaming.
    keepNames: true,
    // As wrangler: libraries branch on it. A fixed value: the bundle must not depend on the host's environment.
    define: { 'process.env.NODE_ENV': '"production"' },
    loader: { '.txt': 'text', '.html': 'text', '.sql': 'text' },
    logLevel: 'silent',
    plugins: [nodeBuiltinsPlugin(projectRoot)],
  };
}

const MAX_ERRORS_SHOWN = 10;

/** The package a bare specifier names: `hono/jwt` → `hono`, `@scope/pkg/sub` → `@scope/pkg`. */
function packageOf(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!;
}

function checkEntry(entry: string): void {
  let isFile = false;
  try {
    isFile = statSync(entry).isFile();
  } catch (error) {
    throw new GuestLoadError(`cannot load guest entry ${entry}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
  if (!isFile) throw new GuestLoadError(`guest entry ${entry} is not a file`);
  const ext = path.extname(entry);
  if (!(BUNDLE_ENTRY_EXTENSIONS as readonly string[]).includes(ext)) {
    throw new GuestLoadError(`guest entry ${entry}: the bundler takes ${BUNDLE_ENTRY_EXTENSIONS.join(', ')} files, not "${ext || 'no extension'}"`);
  }
}

/**
 * An esbuild message as `file:line:col: text`, then the source line with a caret and any notes. esbuild's
 * columns are 0-based; editors and the rest of ftjs count from 1.
 */
export function formatMessage(message: Message): string {
  const where = (loc: Message['location']) => (loc ? `${loc.file}:${loc.line}:${loc.column + 1}: ` : '');
  const lines = [`${where(message.location)}${message.text}`];
  const loc = message.location;
  if (loc?.lineText) {
    const gutter = `    ${loc.line} | `;
    lines.push(`${gutter}${loc.lineText}`, `${' '.repeat(gutter.length - 2)}| ${' '.repeat(loc.column)}^`);
  }
  for (const note of message.notes) {
    // esbuild suggests marking an unresolved package external; a guest cannot load one at run time.
    if (/as external to exclude it from the bundle/.test(note.text)) {
      const name = /^Could not resolve "([^"]+)"/.exec(message.text)?.[1];
      lines.push(`  note: ftjs resolves packages from node_modules at or above the entry's project${name && !name.startsWith('.') ? ` (is "${name}" installed? npm install ${packageOf(name)})` : ''}`);
      continue;
    }
    lines.push(`  note: ${where(note.location)}${note.text}`);
  }
  return lines.join('\n');
}

/**
 * Checks the syntax of one module of an unbundled guest (--no-bundle) with esbuild's parser, so a
 * syntax error is reported at file:line:col before the VM boots, not as the engine's SyntaxError.
 */
export function checkModuleSyntax(name: string, text: string): void {
  try {
    transformSync(text, { loader: 'js', format: 'esm', sourcefile: name, logLevel: 'silent', target: 'esnext' });
  } catch (error) {
    const failure = error as BuildFailure;
    if (!Array.isArray(failure.errors)) throw error;
    throw new GuestLoadError(
      `syntax error in the guest:\n${failure.errors
        .slice(0, MAX_ERRORS_SHOWN)
        .map((m) => formatMessage(m))
        .join('\n')}`,
    );
  }
}
