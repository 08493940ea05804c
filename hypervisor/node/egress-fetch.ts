// Outbound fetches of a live node, through the egress policy (egress.ts): an IP literal is checked
// before it is dialled, a name at connect time on the addresses it resolved to. Redirects are not
// followed here (redirect: 'manual'): each hop the guest follows is a fetch of its own, checked again.

import type { Agent, RequestInit as UndiciRequestInit, Response as UndiciResponse } from 'undici';
import { checkedLookup, EgressError, type EgressPolicy, urlProblem } from './egress.js';

export type EgressFetch = (url: string, init: UndiciRequestInit) => Promise<UndiciResponse>;

/**
 * A fetch that refuses what `policy` denies, with an EgressError that says why. undici (95 modules,
 * ~40 ms of a cold start) loads at the first outbound fetch, not when the node starts.
 */
export function egressFetch(policy: EgressPolicy): EgressFetch {
  let client: Promise<{ dispatcher: Agent; undiciFetch: typeof import('undici').fetch }> | null = null;
  const load = async () => {
    const { Agent, buildConnector, fetch: undiciFetch } = await import('undici');
    const dispatcher = new Agent({
      connect: (options, callback) => {
        const port = Number(options.port || (options.protocol === 'https:' ? 443 : 80));
        buildConnector({ lookup: checkedLookup(policy, port) as never })(options, callback);
      },
    });
    return { dispatcher, undiciFetch };
  };
  return async (url, init) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new EgressError(`fetch to ${JSON.stringify(url)}: not a URL`);
    }
    const problem = urlProblem(policy, parsed);
    if (problem !== null) throw new EgressError(`fetch to ${parsed.origin} refused by the egress policy: ${problem} (--allow-fetch allows a host or CIDR)`);
    client ??= load();
    const { dispatcher, undiciFetch } = await client;
    return undiciFetch(url, { ...init, dispatcher });
  };
}
