// The flags a parent command (`ftjs up`) was given that a child command (`ftjs primary`, `ftjs backup`)
// also takes, as arguments for the child: one list of guest, limit and edge flags, defined once in
// cli/options.ts and friends, reaches every node without being spelled out twice.

import type { Command } from 'commander';

/** The options given on `parent`'s command line (not defaults) that `child` also defines, minus `skip` (long names). */
export function forwardedArgs(parent: Command, child: Command, skip: ReadonlySet<string>): string[] {
  const childLongs = new Set(child.options.map((o) => o.long));
  const values = parent.opts();
  const out: string[] = [];
  for (const option of parent.options) {
    const key = option.attributeName();
    const long = option.long;
    if (!long || skip.has(long) || !childLongs.has(long) || parent.getOptionValueSource(key) !== 'cli') continue;
    const value: unknown = values[key];
    if (option.negate) {
      if (value === false) out.push(long);
    } else if (typeof value === 'boolean') {
      if (value) out.push(long);
    } else if (Array.isArray(value)) {
      for (const v of value) out.push(long, String(v));
    } else if (value !== null && typeof value === 'object') {
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) out.push(long, `${k}=${String(v)}`);
    } else if (value !== undefined) out.push(long, String(value));
  }
  return out;
}
