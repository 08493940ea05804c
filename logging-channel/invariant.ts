// Invariants of the protocol, checked in production code. A broken one is a bug in this node (not a
// bad peer: peers get RefusalError), and going on could release an output that must not leave or let
// two nodes speak in one epoch. So it throws, out of whatever event handler found it, and the node
// process stops loudly on the uncaught error (the simulator reports it as a violation).

export class InvariantError extends Error {
  override name = 'InvariantError';
}

export function invariant(condition: boolean, what: string): asserts condition {
  if (!condition) throw new InvariantError(`invariant broken: ${what}`);
}
