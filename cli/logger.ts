// Node logs: JSON lines by default (for machines), human-readable with --pretty or on a terminal.

import { createRequire } from 'node:module';
import pino, { type Logger } from 'pino';

// pino-pretty is loaded only for a pretty log: it costs a cold start ~15 ms that JSON logs never use.
const require = createRequire(import.meta.url);

export interface LoggerOptions {
  pretty?: boolean;
  level?: string;
  name?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? process.env.FTJS_LOG_LEVEL ?? 'info';
  const base = { name: options.name ?? 'ftjs' };
  const usePretty = options.pretty ?? process.stdout.isTTY === true;
  if (usePretty) {
    const pretty = require('pino-pretty') as typeof import('pino-pretty');
    return pino({ level, base }, pretty({ colorize: process.stdout.isTTY === true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname', sync: true }));
  }
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime });
}
