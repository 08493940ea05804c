// A guest's code as the boot config carries it: named sources with their hashes. Normally one
// module, the esbuild bundle of the entry, plus its source map (hypervisor/vm/bundle.ts). With
// `--no-bundle`, the ES modules as they are on disk: the entry and, transitively, every relative
// import, found by a real ES module lexer (es-module-lexer), never by a text pattern, so an
// `import x from 'y'` inside a comment or a string literal is just text.
//
// Every source goes into the boot config (and so into the trace) with its hash: a trace is
// self-contained and a backup can check it runs the very same code.

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as lexModule } from 'es-module-lexer/js';

export interface GuestSource {
  /** Module name inside the VM: a posix path relative to the entry's folder. `<module>.map`: that module's source map. */
  name: string;
  sha256: string;
  text: string;
}

export interface GuestCode {
  entry: string;
  sources: GuestSource[];
  /** SHA-256 over the sorted (name, sha256) pairs. */
  hash: string;
}

/** Limit on a guest's code (modules and source maps together), in bytes. */
export const MAX_GUEST_SOURCE_BYTES = 16 * 1024 * 1024;

/** A source named `<module>` + this suffix is the source map of `<module>`; the VM never loads it as a module. */
export const SOURCE_MAP_SUFFIX = '.map';

/** File extensions `--no-bundle` refuses: the engine runs JavaScript only. */
const NEEDS_BUNDLING = ['.ts', '.mts', '.cts', '.tsx', '.jsx'];

export class GuestLoadError extends Error {
  override name = 'GuestLoadError';
}

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function isSourceMapName(name: string): boolean {
  return name.endsWith(SOURCE_MAP_SUFFIX);
}

/** Resolves `specifier` imported from module `from` (both posix, relative to the entry's folder). */
export function resolveModuleName(from: string, specifier: string): string {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) {
    throw new GuestLoadError(
      `"${from}" imports "${specifier}": only relative imports (./ or ../) resolve inside the VM. npm packages are bundled at boot, ` +
        'from the imports the bundler can see (import statements and import() of a string literal); a guest loaded with --no-bundle gets none: drop --no-bundle to bundle them',
    );
  }
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  if (resolved.startsWith('../') || path.posix.isAbsolute(resolved)) {
    throw new GuestLoadError(`"${from}" imports "${specifier}": guest modules must stay inside the entry's folder`);
  }
  if (isSourceMapName(resolved)) throw new GuestLoadError(`"${from}" imports "${specifier}": a guest module's name may not end in "${SOURCE_MAP_SUFFIX}" (that name is kept for source maps)`);
  return resolved;
}

export function guestHash(sources: Array<Pick<GuestSource, 'name' | 'sha256'>>): string {
  const sorted = [...sources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sha256Hex(sorted.map((s) => `${s.name}\0${s.sha256}\n`).join(''));
}

/** The specifiers `text` imports statically or by `import('literal')`, from a real lexer. */
export function moduleImports(name: string, text: string): string[] {
  let imports;
  try {
    [imports] = lexModule(text, name);
  } catch (error) {
    // The lexer's message is "Parse error <name>:<line>:<col>".
    throw new GuestLoadError(`${(error as Error).message.replace(/^Parse error /, '')}: syntax error (the module cannot be lexed)`);
  }
  const specifiers: string[] = [];
  for (const i of imports) {
    if (i.type === 'import-meta' || i.specifier === undefined || (i.type === 'dynamic' && i.glob)) continue;
    if (i.type !== 'dynamic' && i.typeOnly) continue;
    specifiers.push(i.specifier);
  }
  return specifiers;
}

/**
 * Loads an already-bundled guest (`--no-bundle`): the ES module `entryPath` and every module it
 * imports, relatively, as they are. A module that ends in a `//# sourceMappingURL=` comment naming a
 * file next to it (or a data: URL) brings its source map along. `checkSyntax` (the CLI passes
 * esbuild's parser) runs on each module before it is lexed, for errors at file:line:col.
 */
export function loadGuest(entryPath: string, opts: { checkSyntax?: (name: string, text: string) => void } = {}): GuestCode {
  const root = path.dirname(path.resolve(entryPath));
  const entry = path.basename(entryPath);
  if (NEEDS_BUNDLING.includes(path.extname(entry))) {
    throw new GuestLoadError(`${entryPath}: --no-bundle loads JavaScript ES modules as they are; a ${path.extname(entry)} entry needs bundling (drop --no-bundle)`);
  }
  const byName = new Map<string, GuestSource>();
  let totalBytes = 0;
  const add = (source: GuestSource) => {
    totalBytes += Buffer.byteLength(source.text);
    if (totalBytes > MAX_GUEST_SOURCE_BYTES) throw new GuestLoadError(`guest sources exceed ${MAX_GUEST_SOURCE_BYTES} bytes`);
    byName.set(source.name, source);
  };
  const visit = (name: string, importedBy: string | null): void => {
    if (byName.has(name)) return;
    const file = path.join(root, ...name.split('/'));
    const text = readSource(file, importedBy ? `"${name}" imported by "${importedBy}"` : null);
    add({ name, sha256: sha256Hex(text), text });
    opts.checkSyntax?.(name, text);
    const map = sourceMapOf(file, text);
    if (map !== null) add({ name: name + SOURCE_MAP_SUFFIX, sha256: sha256Hex(map), text: map });
    for (const specifier of moduleImports(name, text)) visit(resolveModuleName(name, specifier), name);
  };
  visit(entry, null);
  const sources = [...byName.values()];
  return { entry, sources, hash: guestHash(sources) };
}

function readSource(file: string, what: string | null): string {
  try {
    if (!statSync(file).isFile()) throw new Error('not a file');
    return readFileSync(file, 'utf8');
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new GuestLoadError(what ? `cannot load ${what}: ${why} (${file})` : `cannot load guest entry ${file}: ${why}`);
  }
}

/** The trailing source-map comment of a bundler's output (a convention of the last line, not an import). */
const SOURCE_MAPPING_URL_MARK = '\n//# sourceMappingURL=';
const DATA_URL_JSON = /^data:application\/json(?:;charset=[^;,]+)?;base64,/;

/** The source map a module names in its last line, or null (none, or not a local file nor a data: URL). */
function sourceMapOf(file: string, text: string): string | null {
  const at = text.lastIndexOf(SOURCE_MAPPING_URL_MARK);
  if (at < 0) return null;
  const url = text.slice(at + SOURCE_MAPPING_URL_MARK.length).trim();
  if (!url || /\s/.test(url)) return null;
  const data = DATA_URL_JSON.exec(url);
  if (data) return Buffer.from(url.slice(data[0].length), 'base64').toString('utf8');
  if (/^[a-z][a-z0-9+.-]*:/i.test(url) || url.startsWith('/')) return null;
  try {
    return readFileSync(path.join(path.dirname(file), decodeURIComponent(url)), 'utf8');
  } catch {
    return null;
  }
}
