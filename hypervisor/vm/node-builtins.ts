// The esbuild plugin that stops a guest bundle at the first import of a Node built-in (`fs`,
// `node:buffer`, ...). A guest runs on the Web platform (the Workers APIs), not on Node: without this
// the user gets esbuild's bare "Could not resolve", or worse, a bundle that fails at run time. The error
// names the package (or the project file) that imports it and the import, at the import's file:line:col.
//
// As in a Workers build, what the project itself provides wins: a package of that name in node_modules
// (a polyfill such as `buffer`) is used as esbuild resolves it. (A package.json `browser` field that
// maps a built-in to false is not applied: esbuild applies those maps only on platform `browser`, and
// the bundle is built for `neutral`, as wrangler builds it.)

import { builtinModules } from 'node:module';
import path from 'node:path';
import type { Plugin } from 'esbuild';

const NODE_PREFIX = 'node:';
const BUILTINS = new Set(builtinModules.filter((name) => !name.startsWith('_')));

/** Matches every specifier that may name a built-in: `node:anything`, or a lowercase bare name with an optional subpath. */
const CANDIDATE = /^(?:node:.*|[a-z_]+(?:\/[a-z_/]+)?)$/;

export function isNodeBuiltin(specifier: string): boolean {
  if (specifier.startsWith(NODE_PREFIX)) return true;
  return BUILTINS.has(specifier);
}

/** "package "x" (node_modules/x/lib/a.js)" for a dependency, the project-relative path for the project's own files. */
export function describeImporter(importer: string, projectRoot: string): string {
  const relative = path.relative(projectRoot, importer).split(path.sep).join('/');
  const parts = importer.split(path.sep);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0 || at + 1 >= parts.length) return relative;
  const scoped = parts[at + 1]!.startsWith('@');
  const name = scoped ? `${parts[at + 1]}/${parts[at + 2] ?? ''}` : parts[at + 1]!;
  return `package "${name}" (${relative})`;
}

/** Marks the plugin's own resolve call, which must not come back to the plugin. */
const PROBE = 'ftjsNodeBuiltinProbe';

export function nodeBuiltinsPlugin(projectRoot: string): Plugin {
  return {
    name: 'ftjs-node-builtins',
    setup(build) {
      build.onResolve({ filter: CANDIDATE }, async (args) => {
        if (!isNodeBuiltin(args.path) || (args.pluginData as { [PROBE]?: boolean } | undefined)?.[PROBE]) return undefined;
        // What esbuild itself makes of it: a polyfill package of that name is fine.
        const probe = await build.resolve(args.path, { kind: args.kind, importer: args.importer, resolveDir: args.resolveDir, pluginData: { [PROBE]: true } });
        if (probe.errors.length === 0 && !probe.external && probe.path) {
          return { path: probe.path, namespace: probe.namespace, sideEffects: probe.sideEffects, suffix: probe.suffix, pluginData: probe.pluginData };
        }
        return {
          errors: [
            {
              text:
                `${describeImporter(args.importer, projectRoot)} imports the Node built-in "${args.path}": ftjs guests run on the Web platform (the Workers APIs), ` +
                'and no Node built-in module is provided. Use the Web API instead (crypto.subtle, TextEncoder/Uint8Array, fetch, streams), a dependency that does not need Node, ' +
                'or install a polyfill package of that name.',
            },
          ],
        };
      });
    },
  };
}
