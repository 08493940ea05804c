// The guest loader, through the real `ftjs` command on real project folders: a TypeScript entry with
// an npm dependency is bundled at boot (Workers export conditions); `import x from 'y'` in comments and
// string literals is just text, bundled or not (--no-bundle uses a real lexer); a Node built-in import,
// a syntax error and a bare import under --no-bundle are clear errors naming file:line:col; a trace of
// a bundled guest replays with the project folder gone; guest stacks name the original .ts file:line,
// in the node's log, in a replay, and in a divergence report.

import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { bundleGuest } from '../dist/hypervisor/vm/bundle.js';
import { decodeRequestEvent } from '../dist/logging-channel/codec.js';
import { Kind } from '../dist/logging-channel/entry.js';
import { readTrace } from '../dist/logging-channel/trace-reader.js';
import { ftjs, replayJson, runSteps, send, startBackup, startPrimary, startRun, status, tempDir, waitFor, waitInSync } from './helpers.js';

/** Writes `files` (path → text) under a fresh folder and returns it. */
function project(files: Record<string, string>): string {
  const dir = tempDir('ftjs-project-');
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), text);
  }
  return dir;
}

/** The 1-based line of the first line of `text` that contains `marker`. */
function lineOf(text: string, marker: string): number {
  const index = text.split('\n').findIndex((l) => l.includes(marker));
  if (index < 0) throw new Error(`no line contains ${marker}`);
  return index + 1;
}

// A package with export conditions: a Workers bundle must pick `workerd`, never `node`.
const GREET_PACKAGE = {
  'node_modules/greet/package.json': JSON.stringify({
    name: 'greet',
    version: '1.0.0',
    type: 'module',
    exports: { '.': { workerd: './workerd.js', node: './node.js', default: './default.js' } },
  }),
  'node_modules/greet/workerd.js': 'export const greet = (who) => `hello ${who} from the workerd build`;\n',
  'node_modules/greet/node.js': "import { Buffer } from 'node:buffer';\nexport const greet = (who) => Buffer.from(`node build for ${who}`).toString();\n",
  'node_modules/greet/default.js': 'export const greet = (who) => `hello ${who} from the default build`;\n',
};

const TS_ENTRY = `import { greet } from 'greet';
import { describe as describeItem, type Item } from './lib';

// A comment that looks like an import: import { Router } from 'itty-router'
/* and a block comment: import x from 'y' */
const usage: string = "usage: import z from 'pkg'";
const words: string[] = ['import'].map((w) => w.toUpperCase());

function fail(at: number): never {
  throw new Error(\`boom in typescript at \${at}\`); // THROW-LINE
}

export default {
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname === '/boom') return fail(Date.now());
    const item: Item = { name: url.searchParams.get('name') ?? 'nothing' };
    return Response.json({ greet: greet('ts'), usage, words, item: describeItem(item) });
  },
};
`;

const TS_LIB = `export interface Item {
  name: string;
}
export function describe(item: Item): string {
  return \`item \${item.name}\`;
}
`;

function tsProject(): string {
  return project({ 'package.json': JSON.stringify({ name: 'app', private: true, type: 'module' }), 'src/index.ts': TS_ENTRY, 'src/lib.ts': TS_LIB, ...GREET_PACKAGE });
}

const EXPECTED_BODY = { greet: 'hello ts from the workerd build', usage: "usage: import z from 'pkg'", words: ['IMPORT'], item: 'item x' };

describe('bundling at boot', () => {
  test('a .ts entry with an npm dependency loads, resolved with the workerd condition, and its stacks name the .ts file:line', async () => {
    const dir = tsProject();
    const node = await startRun(path.join(dir, 'src/index.ts'));
    try {
      const ok = await send(node.url, { method: 'GET', path: '/?name=x' });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body)).toEqual(EXPECTED_BODY);
      const bundled = node.find((l) => typeof l.bundleMs === 'number');
      expect(bundled).toMatchObject({ guest: 'index.js', inputFiles: 3 });
      const boom = await send(node.url, { method: 'GET', path: '/boom' });
      expect(boom.status).toBe(500);
      const logged = await node.waitForLog((l) => l.guest === true && l.msg.includes('boom in typescript'), 'the guest error in the log');
      const line = lineOf(TS_ENTRY, 'THROW-LINE');
      expect(logged.msg).toMatch(new RegExp(`at fail \\(src/index\\.ts:${line}:\\d+\\)`));
      expect(logged.msg).toMatch(new RegExp(`at fetch \\(src/index\\.ts:${lineOf(TS_ENTRY, "'/boom'")}:\\d+\\)`));
      expect(logged.msg).not.toMatch(/\(index\.js:/);
    } finally {
      await node.stop();
    }
  });

  test('the bundle is deterministic: the same project in another folder bundles to the same bytes and hash', async () => {
    const a = tsProject();
    const b = tempDir('ftjs-project-copy-');
    cpSync(a, b, { recursive: true });
    const [first, again, elsewhere] = await Promise.all([bundleGuest(path.join(a, 'src/index.ts')), bundleGuest(path.join(a, 'src/index.ts')), bundleGuest(path.join(b, 'src/index.ts'))]);
    expect(again.sources).toEqual(first.sources);
    expect(elsewhere.sources).toEqual(first.sources);
    expect(elsewhere.hash).toBe(first.hash);
    expect(first.sources.map((s) => s.name)).toEqual(['index.js', 'index.js.map']);
    expect(first.sources[0]!.text).not.toContain(a);
    expect(JSON.parse(first.sources[1]!.text).sources).toEqual(['node_modules/greet/workerd.js', 'src/lib.ts', 'src/index.ts']);
  });

  test('an import of a Node built-in fails, naming the package, the file:line:col and the import', async () => {
    const dir = project({
      'package.json': '{"name":"app","private":true}',
      'src/index.ts': "import { b } from 'badpkg';\nexport default { fetch: () => new Response(b()) };\n",
      'node_modules/badpkg/package.json': '{"name":"badpkg","version":"1.0.0","main":"lib/index.js"}',
      'node_modules/badpkg/lib/index.js': "// a helper\nimport { Buffer } from 'node:buffer';\nexport const b = () => Buffer.from('x').toString();\n",
    });
    const result = await ftjs(['run', path.join(dir, 'src/index.ts'), '--port', '0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('node_modules/badpkg/lib/index.js:2:24: package "badpkg" (node_modules/badpkg/lib/index.js) imports the Node built-in "node:buffer"');
    expect(result.stderr).toMatch(/no Node built-in module is provided/);
  });

  test('a bare Node built-in in the project itself names the file; a polyfill package of that name is used instead', async () => {
    const own = project({ 'package.json': '{"name":"app"}', 'index.js': "import { readFileSync } from 'fs';\nexport default { fetch: () => new Response(String(readFileSync)) };\n" });
    const refused = await ftjs(['run', path.join(own, 'index.js'), '--port', '0']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('index.js:1:30: index.js imports the Node built-in "fs"');

    const polyfilled = project({
      'package.json': '{"name":"app"}',
      'index.js': "import { Buffer } from 'buffer';\nexport default { fetch: () => new Response(Buffer.name) };\n",
      'node_modules/buffer/package.json': '{"name":"buffer","version":"6.0.3","main":"index.js"}',
      'node_modules/buffer/index.js': 'export class Buffer {}\n',
    });
    const node = await startRun(path.join(polyfilled, 'index.js'));
    try {
      expect(await send(node.url, { method: 'GET', path: '/' })).toEqual({ status: 200, body: 'Buffer' });
    } finally {
      await node.stop();
    }
  });

  test('a TypeScript syntax error is a clear error at file:line:col, before anything boots', async () => {
    const dir = project({
      'package.json': '{"name":"app"}',
      'src/index.ts': 'interface A { x: number }\nconst a: A = { x: 1 };\nlet b c;\nexport default { fetch: () => new Response(String(a.x)) };\n',
    });
    const result = await ftjs(['run', path.join(dir, 'src/index.ts'), '--port', '0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('src/index.ts:3:7: Expected ";" but found "c"');
    expect(result.stderr).toContain('    3 | let b c;');
    expect(result.stderr).not.toMatch(/serving/);
  });

  test('a package that is not installed is named at its import, with how to install it', async () => {
    const dir = project({ 'package.json': '{"name":"app"}', 'src/index.ts': "import { jwt } from '@acme/auth/jwt';\nexport default { fetch: () => new Response(String(jwt)) };\n" });
    const result = await ftjs(['run', path.join(dir, 'src/index.ts'), '--port', '0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('src/index.ts:1:21: Could not resolve "@acme/auth/jwt"');
    expect(result.stderr).toContain('is "@acme/auth/jwt" installed? npm install @acme/auth');
    expect(result.stderr).not.toContain('as external');
  });

  test('an entry the bundler cannot take is refused by name', async () => {
    const dir = project({ 'app.json': '{}' });
    const result = await ftjs(['run', path.join(dir, 'app.json'), '--port', '0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/the bundler takes \.js, .*\.ts.* files, not "\.json"/);
  });
});

describe('--no-bundle', () => {
  // Already-bundled code, as a user's own build leaves it: comments and strings that look like imports.
  const PREBUILT = `// bundled by hand; this comment mentions import { Router } from 'itty-router'
/**
 * Usage:
 *   import { Hono } from 'hono'
 */
import { helper } from './helper.js';
const usage = "usage: import z from 'pkg'";
const template = \`import a from 'b'\`;
const words = ['import'].map((w) => w + 's');
export default { fetch: () => Response.json({ usage, template, words, helper: helper() }) };
`;
  const HELPER = "// export * from 'nowhere'\nexport const helper = () => 'from helper.js';\n";
  const EXPECTED = { usage: "usage: import z from 'pkg'", template: "import a from 'b'", words: ['imports'], helper: 'from helper.js' };

  test('a module with import-like comments and string literals loads, bundled and unbundled', async () => {
    const dir = project({ 'app.js': PREBUILT, 'helper.js': HELPER });
    for (const args of [[], ['--no-bundle']]) {
      const node = await startRun(path.join(dir, 'app.js'), { args });
      try {
        const res = await send(node.url, { method: 'GET', path: '/' });
        expect({ args, status: res.status, body: JSON.parse(res.body) as unknown }).toEqual({ args, status: 200, body: EXPECTED });
      } finally {
        await node.stop();
      }
    }
  });

  test('a bare import is a clear error that suggests bundling; TypeScript is refused; a syntax error names file:line:col', async () => {
    const dir = project({
      'app.js': "import { Hono } from 'hono';\nexport default new Hono();\n",
      'app.ts': 'export default {};\n',
      'broken.js': 'export default {\n  fetch() { return new Response("x") }\n  oops(\n};\n',
    });
    const bare = await ftjs(['run', path.join(dir, 'app.js'), '--port', '0', '--no-bundle']);
    expect(bare.code).toBe(1);
    expect(bare.stderr).toContain('"app.js" imports "hono": only relative imports (./ or ../) resolve inside the VM');
    expect(bare.stderr).toContain('drop --no-bundle');
    const ts = await ftjs(['run', path.join(dir, 'app.ts'), '--port', '0', '--no-bundle']);
    expect(ts.code).toBe(1);
    expect(ts.stderr).toMatch(/a \.ts entry needs bundling \(drop --no-bundle\)/);
    const broken = await ftjs(['run', path.join(dir, 'broken.js'), '--port', '0', '--no-bundle']);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(/broken\.js:3:\d+: /);
  });

  test('a real esbuild bundle (the Hono app) with its source map file runs unbundled, and its stacks are mapped', async () => {
    const bundled = await bundleGuest('guest-apps/hono/src/index.ts');
    const dir = tempDir('ftjs-prebuilt-');
    const [module, map] = bundled.sources;
    writeFileSync(path.join(dir, 'worker.js'), `${module!.text}//# sourceMappingURL=worker.js.map\n`);
    writeFileSync(path.join(dir, 'worker.js.map'), map!.text);
    const node = await startRun(path.join(dir, 'worker.js'), { args: ['--no-bundle'] });
    try {
      expect((await send(node.url, { method: 'PUT', path: '/kv/a', body: 'b' })).status).toBe(200);
      expect(await send(node.url, { method: 'GET', path: '/kv/a' })).toEqual({ status: 200, body: '{"key":"a","value":"b"}' });
      await send(node.url, { method: 'GET', path: '/boom' });
      const logged = await node.waitForLog((l) => l.guest === true && l.msg.includes('boom from a Hono route'), 'the guest error');
      const source = readFileSync('guest-apps/hono/src/index.ts', 'utf8');
      expect(logged.msg).toContain(`guest-apps/hono/src/index.ts:${lineOf(source, "throw new Error('boom from a Hono route')")}:`);
    } finally {
      await node.stop();
    }
  });
});

describe('traces of bundled guests', () => {
  test('a trace recorded from a bundled entry replays after the project folder is deleted; stacks are mapped in the replay and in the debugger', async () => {
    const dir = tsProject();
    const trace = path.join(tempDir('ftjs-trace-'), 'app.trace');
    const node = await startRun(path.join(dir, 'src/index.ts'), { record: trace });
    try {
      await runSteps(node.url, [
        { method: 'GET', path: '/?name=one' },
        { method: 'GET', path: '/boom' },
        { method: 'GET', path: '/?name=two' },
      ]);
    } finally {
      await node.stop();
    }
    rmSync(dir, { recursive: true, force: true });
    const replay = await replayJson(trace, { TZ: 'Pacific/Chatham' });
    expect(replay.summary.divergence).toBeNull();
    expect(replay.code).toBe(0);
    const boom = replay.console.find((l) => l.text.includes('boom in typescript'));
    expect(boom?.text).toMatch(new RegExp(`at fail \\(src/index\\.ts:${lineOf(TS_ENTRY, 'THROW-LINE')}:\\d+\\)`));

    // The debugger, stopped after the first request: an exception its eval raises names the .ts line too.
    const { entries } = await readTrace(trace);
    const second = entries.filter((e) => e.kind === Kind.Request)[1]!;
    const debug = await ftjs(['replay', trace, '--json', '--until', String(second.seq)], {}, "eval $mod.default.fetch(new Request('http://guest/boom'))\nquit\n");
    const evaluated = debug.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { command?: string; ok?: boolean; value?: string })
      .find((l) => l.command === 'eval');
    expect(evaluated?.ok).toBe(false);
    expect(evaluated?.value).toMatch(new RegExp(`boom in typescript[^]*at fail \\(src/index\\.ts:${lineOf(TS_ENTRY, 'THROW-LINE')}:\\d+\\)`));
  });

  test('a divergence report names the original .ts file:line of the guest exception', async () => {
    const dir = tsProject();
    const trace = path.join(tempDir('ftjs-trace-'), 'app.trace');
    const node = await startRun(path.join(dir, 'src/index.ts'), { record: trace });
    try {
      await runSteps(node.url, [{ method: 'GET', path: '/boom' }]);
    } finally {
      await node.stop();
    }
    const { entries } = await readTrace(trace);
    const boom = entries.find((e) => e.kind === Kind.Request && new URL(decodeRequestEvent(e.payload).url).pathname === '/boom')!;
    const replay = await replayJson(trace, { FTJS_TEST_PERTURB_CLOCK_FROM_SEQ: String(boom.seq) });
    expect(replay.code).toBe(1);
    const report = replay.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type: string; exceptions?: string[] })
      .find((l) => l.type === 'divergence');
    expect(report?.exceptions?.[0]).toMatch(new RegExp(`at fail \\(src/index\\.ts:${lineOf(TS_ENTRY, 'THROW-LINE')}:\\d+\\)`));
  });

  test("a backup given the .ts entry bundles it to the primary's hash, attaches and replays in step", async () => {
    const entry = path.join(tsProject(), 'src/index.ts');
    const primary = await startPrimary(entry);
    let backup: Awaited<ReturnType<typeof startBackup>> | null = null;
    try {
      backup = await startBackup(primary.replication, primary.sharedDir, { entry });
      const b = backup;
      await waitFor(async () => (await status(primary.url)).backupAttached === true && ((await status(b.url)).replayedSeq as number) > 0, 'the backup to attach');
      expect(await send(primary.url, { method: 'GET', path: '/?name=x' })).toEqual({ status: 200, body: JSON.stringify(EXPECTED_BODY) });
      await waitInSync(primary.url, b.url);
    } finally {
      await Promise.all([primary.stop('SIGKILL'), backup?.stop('SIGKILL')]);
    }
  });
});
