// The WPT runner's own harness (test/wpt-runner/shim.js and its two drivers), on a small WPT-shaped
// tree written here: subtests must be counted as testharness.js counts them, in the guest and under
// Node alike, whatever the outcome (pass, assertion failure, rejection, never finishing).

import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FileResult } from './wpt-runner/files.js';
import { runInGuest } from './wpt-runner/guest.js';
import { runInNode } from './wpt-runner/node.js';

let root: string;

const TEST_FILE = String.raw`// META: script=/common/helper.js
// META: script=resources/local.js
test(() => assert_equals(helperValue, 42), 'a META script from the root is loaded');
test(() => assert_equals(localValue, 'local'), 'a META script beside the test is loaded');
test(() => assert_equals(1, 2), 'a failing assertion fails');
test(() => assert_throws_js(TypeError, () => { null.x; }), 'assert_throws_js passes on the right type');
test(() => assert_throws_dom('SyntaxError', () => { throw new DOMException('m', 'SyntaxError'); }), 'assert_throws_dom checks name and code');
async_test((t) => { t.step_timeout(() => t.done(), 5000); }, 'a virtual 5 s timer fires at once');
async_test((t) => { setTimeout(t.step_func(() => assert_true(false)), 10); }, 'a failing step fails the async test');
async_test(() => {}, 'an async test that never calls done times out');
promise_test(() => fetch_json('resources/data.json').then((d) => assert_array_equals(d, [1, 2])), 'fetch_json reads a resource');
promise_test(() => fetch('resources/data.json').then((r) => r.json()).then((d) => assert_equals(d.length, 2)), 'fetch reads a resource');
promise_test(() => Promise.reject(new Error('no')), 'a rejected promise test fails');
promise_test((t) => promise_rejects_js(t, RangeError, Promise.reject(new RangeError('r'))), 'promise_rejects_js passes');
let order = [];
promise_test(() => { order.push(1); return new Promise((r) => setTimeout(r, 100)).then(() => order.push(2)); }, 'promise tests run one at a time (1)');
promise_test(() => { assert_array_equals(order, [1, 2]); return Promise.resolve(); }, 'promise tests run one at a time (2)');
`;

const EXPECTED: Record<string, string> = {
  'a META script from the root is loaded': 'PASS',
  'a META script beside the test is loaded': 'PASS',
  'a failing assertion fails': 'FAIL',
  'assert_throws_js passes on the right type': 'PASS',
  'assert_throws_dom checks name and code': 'PASS',
  'a virtual 5 s timer fires at once': 'PASS',
  'a failing step fails the async test': 'FAIL',
  'an async test that never calls done times out': 'TIMEOUT',
  'fetch_json reads a resource': 'PASS',
  'fetch reads a resource': 'PASS',
  'a rejected promise test fails': 'FAIL',
  'promise_rejects_js passes': 'PASS',
  'promise tests run one at a time (1)': 'PASS',
  'promise tests run one at a time (2)': 'PASS',
};

beforeAll(() => {
  root = mkdtempSync(path.join(tmpdir(), 'ftjs-wpt-'));
  mkdirSync(path.join(root, 'common'));
  mkdirSync(path.join(root, 'suite/resources'), { recursive: true });
  writeFileSync(path.join(root, 'common/helper.js'), 'self.helperValue = 42;\n');
  writeFileSync(path.join(root, 'suite/resources/local.js'), "var localValue = 'local';\n");
  writeFileSync(path.join(root, 'suite/resources/data.json'), '[1, 2]');
  writeFileSync(path.join(root, 'suite/sample.any.js'), TEST_FILE);
  writeFileSync(path.join(root, 'suite/broken.any.js'), "test(() => {}, 'runs');\nthrow new Error('top-level');\n");
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

function statuses(r: FileResult): Record<string, string> {
  return Object.fromEntries(r.results.map((t) => [t.name, t.status]));
}

describe.each([
  ['guest', runInGuest],
  ['Node', runInNode],
] as const)('WPT harness shim in %s', (_engine, run) => {
  it('counts every subtest with testharness.js statuses', async () => {
    const r = await run(root, 'suite/sample.any.js');
    expect(r.harnessError).toBeNull();
    expect(statuses(r)).toEqual(EXPECTED);
    expect(r.passed).toBe(10);
    expect(r.total).toBe(14);
  });

  it('reports a top-level error as a harness error and keeps the subtests run before it', async () => {
    const r = await run(root, 'suite/broken.any.js');
    expect(r.harnessError).toMatch(/top-level/);
    expect(statuses(r)).toEqual({ runs: 'PASS' });
  });

  it('reports a file missing from the WPT copy', async () => {
    const r = await run(root, 'suite/absent.any.js');
    expect(r).toMatchObject({ passed: 0, total: 0 });
    expect(r.harnessError).toMatch(/missing/);
  });
});
