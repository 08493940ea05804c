// The engine boot refuses any build whose imports it cannot identify: a VM that could read the host's
// clock or time zone behind the input port's back must never boot.

import { expect, test } from 'vitest';
import { EngineError, wrapImports } from '../dist/hypervisor/vm/engine.js';

const clock = { nowMs: () => 42 };
const memory = new WebAssembly.Memory({ initial: 1, maximum: 2 });

// Import functions are identified by their (minified) glue source, so the fakes are built from the
// same source text the pinned build has, not from code this test file's compiler would reformat.
const PINNED_SOURCES: Record<string, string> = {
  p: '()=>Date.now()',
  m: 'function(a,c){a=new Date(1E3*a);L[c>>2]=a.getSeconds();L[c+36>>2]=-(60*a.getTimezoneOffset())}',
  n: '(a,c,b,e)=>{var g=(new Date).getTimezoneOffset();return`UTC${g}`}',
  e: '(a,c)=>{var b=0,e=0,f;for(f of ra()){b++}return 0}',
  f: '(a,c)=>{var b=ra();M[a>>2]=b.length;return 0}',
  d: '()=>52',
};

function pinnedLikeImports(): Record<string, unknown> {
  const table: Record<string, unknown> = { a: memory };
  for (const [name, source] of Object.entries(PINNED_SOURCES)) table[name] = (0, eval)(`(${source})`);
  return table;
}

test('the pinned import table is accepted and its clock is replaced by the port', () => {
  const imports = { a: pinnedLikeImports() };
  wrapImports(imports as never, memory, clock);
  expect((imports.a.p as () => number)()).toBe(42);
});

test('an import table with an unknown function is refused, naming the import', () => {
  const imports = { a: { ...pinnedLikeImports(), zz: () => 'something new' } };
  expect(() => wrapImports(imports as never, memory, clock)).toThrow(EngineError);
  expect(() => wrapImports({ a: { ...pinnedLikeImports(), zz: () => 'something new' } } as never, memory, clock)).toThrow(/unrecognised emscripten import "a.zz"/);
});

test('a build without an identifiable clock import is refused', () => {
  const table = pinnedLikeImports();
  delete table.p;
  expect(() => wrapImports({ a: table } as never, memory, clock)).toThrow(/could not identify the date_now import/);
});

test('a missing import module is refused', () => {
  expect(() => wrapImports({} as never, memory, clock)).toThrow(/no import module "a"/);
});
