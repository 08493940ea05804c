// Build-time compaction of tr46's UTS #46 data (Unicode's IdnaMappingTable and the Bidi / ContextJ
// character classes) for the guest glue, which carries it as a string literal in every boot config:
// every character of it is parsed at every boot, so the ~215 KB tr46 ships become ~45 KB here.
//
// Table format: one line per run of code points with the same status, in code point order from
// U+0000, lines separated by U+E000 (a private-use code point: no mapping contains it, and unlike
// "\n" it needs no escape in the glue's string literal):
//   <status letter><run length - 1, base 36>[,<mapping>]
// For status "m" (mapped) and "x" (deviation) every code point of the run maps to <mapping>, which
// runs to the end of the line (it may itself contain "," or a space). Status "s" is a run of mapped
// code points that each map to one code point at a constant offset (A-Z, fullwidth and mathematical
// letters): <mapping> is the first one's, and code point start + i maps to mapping + i.

import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

// tr46's status numbers (lib/statusMapping.js) and their letters in the compact table.
const STATUS_LETTER: Record<number, string> = { 1: 'm', 2: 'v', 3: 'd', 6: 'x', 7: 'i' };

type Entry = [number | [number, number], number, string?];

export const IDNA_TABLE_SEPARATOR = '\uE000';

export function compactIdnaTable(): string {
  const table = require('tr46/lib/mappingTable.json') as Entry[];
  const lines: string[] = [];
  let next = 0;
  let run: { letter: string; mapping: string | undefined; length: number; start: number } | null = null;
  const flush = () => {
    if (run === null) return;
    lines.push(run.letter + (run.length - 1).toString(36) + (run.mapping === undefined ? '' : ',' + run.mapping));
    run = null;
  };
  // A single code point mapped to a single code point: [offset of the target from the source].
  const shift = (lo: number, hi: number, status: number, mapping: string | undefined) => {
    if (status !== 1 || lo !== hi || mapping === undefined) return null;
    const target = mapping.codePointAt(0)!;
    return String.fromCodePoint(target) === mapping ? target - lo : null;
  };
  for (const [range, status, mapping] of table) {
    const [lo, hi] = Array.isArray(range) ? range : [range, range];
    if (lo !== next) throw new Error(`tr46 mapping table: gap before U+${lo.toString(16)}`);
    const letter = STATUS_LETTER[status];
    if (letter === undefined) throw new Error(`tr46 mapping table: unknown status ${status}`);
    const offset = shift(lo, hi, status, mapping);
    const cur = run as { letter: string; mapping: string | undefined; length: number; start: number } | null;
    if (cur !== null && mapping === undefined && cur.mapping === undefined && cur.letter === letter) {
      cur.length += hi - lo + 1;
    } else if (
      cur !== null &&
      offset !== null &&
      (cur.letter === 's' || cur.letter === 'm') &&
      cur.mapping !== undefined &&
      cur.mapping.codePointAt(0)! - cur.start === offset &&
      (cur.letter === 's' || shift(cur.start, cur.start + cur.length - 1, 1, cur.mapping) !== null)
    ) {
      cur.letter = 's';
      cur.length += 1;
    } else {
      flush();
      run = { letter, mapping, length: hi - lo + 1, start: lo };
    }
    next = hi + 1;
  }
  flush();
  if (next !== 0x110000) throw new Error('tr46 mapping table: does not end at U+10FFFF');
  return lines.join(IDNA_TABLE_SEPARATOR);
}

// Regex sources with \uXXXX and \u{XXXXX} escapes of non-ASCII, non-surrogate code points written
// as the characters themselves (a character class means the same either way with the `u` flag).
function rawCharacters(source: string): string {
  return source.replace(/\\u\{([0-9A-Fa-f]+)\}|\\u([0-9A-Fa-f]{4})/g, (escape, astral?: string, bmp?: string) => {
    const cp = parseInt((astral ?? bmp)!, 16);
    if (cp < 0xa0 || (cp >= 0xd800 && cp <= 0xdfff)) return escape;
    return String.fromCodePoint(cp);
  });
}

export function compactIdnaRegexes(): Record<string, [string, string]> {
  const regexes = require('tr46/lib/regexes.js') as Record<string, RegExp>;
  const out: Record<string, [string, string]> = {};
  for (const [name, re] of Object.entries(regexes)) out[name] = [rawCharacters(re.source), re.flags];
  return out;
}
