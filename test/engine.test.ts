// The engine boot refuses any build whose imports it cannot identify: a VM that could read the host's
// clock or time zone behind the input port's back must never boot.

import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
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

// The package ships its glue twice, minified apart: the ES module (in process, the tests) and the
// CommonJS build (the bundled VM worker loads it: cli/cli-bundle-build.ts). Both must be recognised
// whole, with the clock replaced, from the real files.
test.each(['emscripten-module.mjs', 'emscripten-module.cjs'])('the pinned package glue %s is recognised import by import, its clock replaced', async (file) => {
  const dir = path.dirname(createRequire(import.meta.url).resolve('@jitl/quickjs-wasmfile-release-sync/wasm'));
  const glue = file.endsWith('.cjs') ? createRequire(import.meta.url)(path.join(dir, file)) : (await import(pathToFileURL(path.join(dir, file)).href)).default;
  const imports = await new Promise<{ a: Record<string, unknown> }>((resolve) => {
    (glue as (arg: object) => Promise<unknown>)({
      instantiateWasm(captured: { a: Record<string, unknown> }) {
        resolve(captured);
        return {};
      },
    }).catch(() => {}); // no instance is made: the glue's own start fails after this, as expected
  });
  const functions = Object.keys(imports.a).filter((name) => typeof imports.a[name] === 'function');
  expect(functions.length).toBe(19);
  const clockName = functions.find((name) => String(imports.a[name]) === '()=>Date.now()')!;
  wrapImports(imports as never, memory, clock);
  expect((imports.a[clockName] as () => number)()).toBe(42);
});
