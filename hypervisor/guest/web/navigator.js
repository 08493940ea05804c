// `navigator`: what Workers code reads of it, with deterministic values.
//
// userAgent is "ftjs/<version>" (the version the glue was built from, so it is part of the boot
// config and a replay sees the same string). It is not "Cloudflare-Workers": libraries that see that
// string assume workerd-only facilities (cloudflare:* modules, caches.default, HTMLRewriter) that ftjs
// does not have. hardwareConcurrency is 1, as on Workers: one VM runs one task at a time.

import { defineGlobal, setTag } from './platform.js';

/* global __FTJS_VERSION__ */
const USER_AGENT = `ftjs/${__FTJS_VERSION__}`;

class Navigator {
  constructor(key) {
    if (key !== NAVIGATOR_KEY) throw new TypeError('Illegal constructor');
  }
  get userAgent() { return USER_AGENT; }
  get hardwareConcurrency() { return 1; }
}
const NAVIGATOR_KEY = Object.freeze({});
setTag(Navigator, 'Navigator');

defineGlobal('Navigator', Navigator);
defineGlobal('navigator', new Navigator(NAVIGATOR_KEY));
