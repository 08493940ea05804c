// Outbound fetches of a live node, through the egress policy (egress.ts): an IP literal is checked
// before it is dialled, a name at connect time on the addresses it resolved to. Redirects are not
// followed here (redirect: 'manual'): each hop the guest follows is a fetch of its own, checked again.

import { Agent, buildConnector, type RequestInit as UndiciRequestInit, type Response as UndiciResponse, fetch as undiciFetch } from 'undici';
import { checkedLookup, EgressError, type EgressPolicy, urlProblem } from './egress.js';

export type EgressFetch = (url: string, init: UndiciRequestInit) => Promise<UndiciResponse>;

/** A fetch that refuses what `policy` denies, with an EgressError that says why. */
export function egressFetch(policy: EgressPolicy): EgressFetch {
  const dispatcher = new Agent({
    connect: (options, callback) => {
      const port = Number(options.port || (options.protocol === 'https:' ? 443 : 80));
      buildConnector({ lookup: checkedLookup(policy, port) as never })(options, callback);
    },
  });
  return async (url, init) => {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new EgressError(`fetch to ${JSON.stringify(url)}: not a URL`);
    }
    const problem = urlProblem(policy, parsed);
    if (problem !== null) throw new EgressError(`fetch to ${parsed.origin} refused by the egress policy: ${problem} (--allow-fetch allows a host or CIDR)`);
    return undiciFetch(url, { ...init, dispatcher });
  };
}
