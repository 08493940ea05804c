// Invariants of the protocol, checked in production code. A broken one is a bug in this node (not a
// bad peer: peers get RefusalError), and going on could release an output that must not leave or let
// two nodes speak in one epoch. So it throws, and the node stops loudly (exit code 70, like a dead VM).

export class InvariantError extends Error {
  override name = 'InvariantError';
}

export function invariant(condition: boolean, what: string): asserts condition {
  if (!condition) throw new InvariantError(`invariant broken: ${what}`);
}
