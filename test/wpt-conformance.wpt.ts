// Web Platform Tests inside the guest: every suite in test/wpt-runner/suites.ts runs in a bare
// QuickJS context with the built web glue, and must pass at least its floor of subtests; a suite
// whose API is in this branch must also reach Node 20's count. With FTJS_WPT_NODE=1 the same files
// run under this Node (the baseline) and both counts are printed as the README's table.
// The WPT files are not in the repo (see README "Conformance"), so this is not part of `npm test`:
// `npm run wpt` runs it, with FTJS_WPT_DIR naming a WPT checkout, and fails when none is found.
import { afterAll, describe, expect, it } from 'vitest';
import { type FileResult, wptRoot } from './wpt-runner/files.js';
import { GUEST_FILE_TIMEOUT_MS, runInGuest } from './wpt-runner/guest.js';
import { runInNode } from './wpt-runner/node.js';
import { SUITES, type Suite } from './wpt-runner/suites.js';

const root = wptRoot();
const withNode = process.env.FTJS_WPT_NODE === '1';
const only = process.env.FTJS_WPT_SUITE; // a substring of suite names, to run a few while working

interface Row {
  suite: Suite;
  guest: FileResult[];
  node: FileResult[] | null;
}
const rows: Row[] = [];

const sum = (rs: FileResult[]) => rs.reduce((a, r) => ({ passed: a.passed + r.passed, total: a.total + r.total }), { passed: 0, total: 0 });

function explain(results: FileResult[], failures = false): string {
  return results
    .map((r) => {
      let line = `  ${r.file}: ${r.passed}/${r.total}${r.harnessError ? ` (harness: ${r.harnessError})` : ''}`;
      if (failures) for (const t of r.results) if (t.status !== 'PASS') line += `\n    ${t.status} ${t.name.slice(0, 120)}: ${String(t.message).slice(0, 200)}`;
      return line;
    })
    .join('\n');
}

if (!root) throw new Error('no Web Platform Tests found: set FTJS_WPT_DIR to a WPT checkout (or a subset with the files in test/wpt-runner/suites.ts); see README "Conformance"');

describe('Web Platform Tests in the guest', () => {
  for (const suite of SUITES) {
    if (only && !suite.name.includes(only)) continue;
    const fileTimeoutMs = Math.max(GUEST_FILE_TIMEOUT_MS, suite.fileTimeoutMs ?? 0);
    it(
      suite.name,
      async () => {
        const guest: FileResult[] = [];
        for (const file of suite.files) guest.push(await runInGuest(root!, file, fileTimeoutMs));
        let node: FileResult[] | null = null;
        if (withNode) {
          node = [];
          for (const file of suite.files) node.push(await runInNode(root!, file));
        }
        rows.push({ suite, guest, node });
        const { passed } = sum(guest);
        expect(passed, `guest passes fewer subtests than the floor\n${explain(guest)}`).toBeGreaterThanOrEqual(suite.floor);
        if (!suite.awaiting && !suite.below) {
          expect(passed, `guest passes fewer subtests than Node 20\n${explain(guest)}`).toBeGreaterThanOrEqual(suite.node20);
        }
      },
      withNode ? 3_600_000 : Math.max(120_000, suite.files.length * (fileTimeoutMs + 5_000)),
    );
  }
});

afterAll(() => {
  if (rows.length === 0) return;
  const lines = ['| suite | files | ftjs guest | Node 20 |', '| --- | ---: | ---: | ---: |'];
  for (const { suite, guest, node } of rows) {
    const g = sum(guest);
    const n = node ? sum(node) : null;
    lines.push(
      `| ${suite.name}${suite.awaiting ? ` (awaits ${suite.awaiting})` : ''}${suite.below ? ` (below Node: ${suite.below})` : ''} | ${suite.files.length} | ${g.passed}/${g.total} | ${n ? `${n.passed}/${n.total}` : suite.node20} |`,
    );
  }
  console.log(lines.join('\n'));
  if (process.env.FTJS_WPT_DETAIL === '1') {
    for (const { suite, guest, node } of rows) {
      console.log(`\n## ${suite.name}\nguest:\n${explain(guest, true)}${node ? `\nnode:\n${explain(node, true)}` : ''}`);
    }
  }
});
