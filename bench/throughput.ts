// A guest's throughput under `ftjs run` against plain Node serving the very same bundle (node:http,
// no sandbox: bench/node-serve.ts). Rounds alternate the two servers; each round is a closed loop of
// `--connections` clients on one route for `--seconds`, after a warm-up of the same load. Prints JSON:
// req/s and p50/p99 per round, their medians and the ftjs/Node ratio.
//
//   npm run build && node dist/bench/throughput.js [entry] [--path /] [--seconds 4] [--rounds 3] [--connections 16] [--warmup-seconds 2]

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bundleGuest, stopBundler } from '../hypervisor/vm/bundle.js';
import { closedLoop, type LoadResult } from './load.js';
import { argNumber, median, projectPath, spawnFtjs } from './util.js';

const entry = process.argv[2] && !process.argv[2].startsWith('--') ? process.argv[2] : projectPath('guest-apps/hono/src/index.ts');
const route = process.argv.includes('--path') ? process.argv[process.argv.indexOf('--path') + 1]! : '/';
const seconds = argNumber('--seconds', 4);
const rounds = argNumber('--rounds', 3);
const connections = argNumber('--connections', 16);
const warmupSeconds = argNumber('--warmup-seconds', 2);

// The bundle ftjs boots, written out for Node to import: both run the same code.
const bundle = await bundleGuest(entry);
await stopBundler();
const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-throughput-'));
const moduleFile = path.join(dir, 'bundle.mjs');
writeFileSync(moduleFile, bundle.sources.find((s) => s.name === bundle.entry)!.text);

async function startNode(): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, [projectPath('dist/bench/node-serve.js'), moduleFile, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').once('data', (line: string) => resolve((JSON.parse(line) as { url: string }).url));
    child.once('exit', (code) => reject(new Error(`node-serve exited with ${code}`)));
  });
  return { url, stop: () => child.kill('SIGKILL') };
}

async function startFtjs(): Promise<{ url: string; stop: () => void }> {
  const node = spawnFtjs(['run', entry, '--port', '0'], { env: process.env });
  const line = await node.waitFor((l) => typeof l.url === 'string');
  return { url: line.url as string, stop: () => node.child.kill('SIGKILL') };
}

async function measure(start: () => Promise<{ url: string; stop: () => void }>): Promise<LoadResult> {
  const server = await start();
  try {
    await closedLoop(server.url, connections, warmupSeconds * 1000, () => ({ method: 'GET', path: route }));
    return await closedLoop(server.url, connections, seconds * 1000, () => ({ method: 'GET', path: route }));
  } finally {
    server.stop();
  }
}

const rows: Array<{ round: number; ftjs: LoadResult; node: LoadResult }> = [];
for (let round = 1; round <= rounds; round++) {
  const ftjs = await measure(startFtjs);
  const node = await measure(startNode);
  rows.push({ round, ftjs, node });
}
const summary = (pick: (r: (typeof rows)[number]) => LoadResult) => ({
  rps: Math.round(median(rows.map((r) => pick(r).rps))),
  p50Ms: +median(rows.map((r) => pick(r).p50Ms)).toFixed(2),
  p99Ms: +median(rows.map((r) => pick(r).p99Ms)).toFixed(2),
  errors: rows.reduce((n, r) => n + pick(r).errors, 0),
});
const ftjs = summary((r) => r.ftjs);
const node = summary((r) => r.node);
process.stdout.write(
  `${JSON.stringify({
    entry: path.relative(projectPath('.'), entry),
    route,
    connections,
    seconds,
    bundleBytes: bundle.sources.find((s) => s.name === bundle.entry)!.text.length,
    rounds: rows.map((r) => ({ round: r.round, ftjsRps: Math.round(r.ftjs.rps), nodeRps: Math.round(r.node.rps), ratio: +(r.ftjs.rps / r.node.rps).toFixed(3) })),
    ftjs,
    node,
    ratio: +(ftjs.rps / node.rps).toFixed(3),
    ratioPerRoundMedian: +median(rows.map((r) => r.ftjs.rps / r.node.rps)).toFixed(3),
  })}\n`,
);
