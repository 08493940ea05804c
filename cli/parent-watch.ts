// A node started by `ftjs up` or `ftjs drill` (FTJS_PARENT_WATCH=1, stdin a pipe from the parent)
// stops when its parent dies, however it dies (SIGKILL included): the pipe's end is the parent's death.
// It stops as on SIGTERM (cleanly), and exits anyway if that takes too long.

/** How long a node whose parent died may take to stop cleanly before it exits regardless. */
export const PARENT_GONE_EXIT_MS = 3_000;

export function watchParent(env: NodeJS.ProcessEnv = process.env): void {
  if (env.FTJS_PARENT_WATCH !== '1') return;
  const gone = () => {
    process.stderr.write('ftjs: the parent process is gone; stopping\n');
    setTimeout(() => process.exit(1), PARENT_GONE_EXIT_MS).unref();
    process.kill(process.pid, 'SIGTERM');
  };
  process.stdin.on('end', gone);
  process.stdin.on('error', gone);
  process.stdin.resume();
}
