// Loads a guest's ES modules from disk at boot: the entry and, transitively, every relative import.
// Every source goes into the boot config (and so into the trace) with its hash: a trace is
// self-contained and a backup can check it runs the very same code.

import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export interface GuestSource {
  /** Module name inside the VM: a posix path relative to the entry's folder. */
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

export const MAX_GUEST_SOURCE_BYTES = 16 * 1024 * 1024;

export class GuestLoadError extends Error {
  override name = 'GuestLoadError';
}

const IMPORT_PATTERN = /(?:\bimport\s*(?:[\w*{}\s,$]+\s*from\s*)?|\bexport\s*(?:\*(?:\s*as\s+[\w$]+)?|\{[^}]*\})\s*from\s*|\bimport\s*\(\s*)(['"])([^'"\n]+)\1/g;

export function sha256Hex(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Resolves `specifier` imported from module `from` (both posix, relative to the entry's folder). */
export function resolveModuleName(from: string, specifier: string): string {
  if (!specifier.startsWith('./') && !specifier.startsWith('../')) {
    throw new GuestLoadError(`"${from}" imports "${specifier}": only relative imports (./ or ../) are allowed in a guest`);
  }
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier));
  if (resolved.startsWith('../') || path.posix.isAbsolute(resolved)) {
    throw new GuestLoadError(`"${from}" imports "${specifier}": guest modules must stay inside the entry's folder`);
  }
  return resolved;
}

export function guestHash(sources: Array<Pick<GuestSource, 'name' | 'sha256'>>): string {
  const sorted = [...sources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sha256Hex(sorted.map((s) => `${s.name}\0${s.sha256}\n`).join(''));
}

export function loadGuest(entryPath: string): GuestCode {
  const root = path.dirname(path.resolve(entryPath));
  const entry = path.basename(entryPath);
  const byName = new Map<string, GuestSource>();
  let totalBytes = 0;
  const visit = (name: string, importedBy: string | null): void => {
    if (byName.has(name)) return;
    const file = path.join(root, ...name.split('/'));
    let text: string;
    try {
      if (!statSync(file).isFile()) throw new Error('not a file');
      text = readFileSync(file, 'utf8');
    } catch (error) {
      const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new GuestLoadError(importedBy ? `cannot load "${name}" imported by "${importedBy}": ${why} (${file})` : `cannot load guest entry ${file}: ${why}`);
    }
    totalBytes += Buffer.byteLength(text);
    if (totalBytes > MAX_GUEST_SOURCE_BYTES) throw new GuestLoadError(`guest sources exceed ${MAX_GUEST_SOURCE_BYTES} bytes`);
    byName.set(name, { name, sha256: sha256Hex(text), text });
    for (const match of text.matchAll(IMPORT_PATTERN)) visit(resolveModuleName(name, match[2]!), name);
  };
  visit(entry, null);
  const sources = [...byName.values()];
  return { entry, sources, hash: guestHash(sources) };
}
