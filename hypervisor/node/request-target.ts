// What an inbound request names, decided at the edge before anything reaches the log or the guest:
// the operator endpoint it asks for (matched after normalizing the path, so `/%5Fft/status` or
// `//_ft/health` cannot slip past a proxy rule to the guest), or the URL the guest sees. The guest's
// URL takes its origin from a validated Host (an RFC 3986 authority: no userinfo, path, query or
// fragment) or from the configured public URL, and its path and query always from the request-target:
// `Host: a@evil.com:99/x?` can no longer move the guest's pathname.

/** Operator endpoints live under this prefix; nothing under it ever reaches the guest. */
export const OPERATOR_PREFIX = '/_ft/';

export type Target = { kind: 'operator'; endpoint: string; query: string } | { kind: 'guest'; url: string } | { kind: 'bad'; status: 400; reason: string };

// RFC 3986 reg-name / IPv4address characters (unreserved, pct-encoded, sub-delims), or an IP-literal.
const REG_NAME = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$/;
const IP_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/;
const PORT = /^[0-9]{0,5}$/;

/** The Host header as an authority (host[:port]) the guest may see, or why it is not one. */
export function hostProblem(host: string): string | null {
  if (host.length === 0) return 'empty Host header';
  if (host.length > 255) return 'Host header longer than 255 bytes';
  const literal = host.startsWith('[');
  const colon = literal ? host.indexOf(']:') + 1 : host.lastIndexOf(':');
  const name = colon > 0 ? host.slice(0, colon) : host;
  const port = colon > 0 ? host.slice(colon + 1) : '';
  if (literal ? !IP_LITERAL.test(name) : !REG_NAME.test(name) || name.length === 0) return `Host header ${JSON.stringify(host)} is not a host[:port] authority`;
  if (!PORT.test(port) || (port !== '' && Number(port) > 65535)) return `Host header ${JSON.stringify(host)} has a bad port`;
  return null;
}

/** Percent-decodes unreserved characters, resolves dot segments and collapses repeated slashes. */
export function normalizePath(path: string): string {
  // Most paths have nothing to decode, resolve or collapse: such a path is its own normal form (issue
  // 19: the general form was ~1 µs of every request's main-thread time). test/request-target.test.ts
  // checks the two agree.
  if (path.charCodeAt(0) === 0x2f && path.indexOf('%') < 0 && path.indexOf('//') < 0 && path.indexOf('/.') < 0) return path;
  return normalizePathSlow(path);
}

/** normalizePath without its fast path (exported for the test that compares them). */
export function normalizePathSlow(path: string): string {
  const decoded = path.replace(/%([0-9A-Fa-f]{2})/g, (whole, hex: string) => {
    const c = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9\-._~]/.test(c) ? c : whole.toUpperCase();
  });
  const out: string[] = [];
  for (const segment of decoded.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') out.pop();
    else out.push(segment);
  }
  return `/${out.join('/')}${decoded.endsWith('/') && out.length > 0 ? '/' : ''}`;
}

/** The last Host header hostProblem() accepted (it is a pure function of the string). */
let lastGoodHost: string | null = null;

/**
 * Classifies a request: `rawTarget` is the request-target as sent (req.url), `host` the Host header,
 * `publicOrigin` the configured public URL's origin (it replaces the Host header when set).
 */
export function classifyTarget(rawTarget: string, host: string | undefined, publicOrigin: string | null): Target {
  let pathAndQuery = rawTarget;
  if (!rawTarget.startsWith('/')) {
    // absolute-form (a request through a proxy): only its path and query are used.
    if (!/^https?:\/\//i.test(rawTarget)) return { kind: 'bad', status: 400, reason: `request-target ${JSON.stringify(rawTarget.slice(0, 100))} is neither a path nor an absolute http URL` };
    const afterScheme = rawTarget.indexOf('//') + 2;
    const slash = rawTarget.slice(afterScheme).search(/[/?#]/);
    pathAndQuery = slash < 0 ? '/' : rawTarget.slice(afterScheme + slash);
    if (!pathAndQuery.startsWith('/')) pathAndQuery = `/${pathAndQuery}`;
  }
  const hash = pathAndQuery.indexOf('#');
  if (hash >= 0) pathAndQuery = pathAndQuery.slice(0, hash);
  const q = pathAndQuery.indexOf('?');
  const path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  const query = q < 0 ? '' : pathAndQuery.slice(q);
  const normalized = normalizePath(path);
  if (normalized === '/_ft' || normalized.startsWith(OPERATOR_PREFIX)) return { kind: 'operator', endpoint: normalized.slice(OPERATOR_PREFIX.length), query };
  let origin = publicOrigin;
  if (origin === null) {
    // The same client sends the same Host on every request: the last good one is not checked again.
    const problem = host === undefined ? 'no Host header' : host === lastGoodHost ? null : hostProblem(host);
    if (problem !== null) return { kind: 'bad', status: 400, reason: problem };
    lastGoodHost = host!;
    origin = `http://${host}`;
  }
  return { kind: 'guest', url: `${origin}${path}${query}` };
}

/** The origin of a --public-url value, or an error that says what is wrong with it. */
export function publicOrigin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`--public-url ${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`--public-url must be http or https, got ${url.protocol}`);
  if (url.username || url.password || url.pathname !== '/' || url.search || url.hash) throw new Error(`--public-url must be an origin (scheme://host[:port]), got ${JSON.stringify(value)}`);
  return url.origin;
}
