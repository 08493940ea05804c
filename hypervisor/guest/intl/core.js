// The Intl polyfills, in dependency order (each installs itself on the `Intl` the chunk was called
// with, see hypervisor/vm/lazy-glue-build.ts). Locale data is imported after this module; the boot glue
// (hypervisor/guest/web/intl.js) puts back any Date/Number/BigInt/String methods they overwrite.
import './base.js';
import '@formatjs/intl-locale/polyfill-force.js';
import '@formatjs/intl-pluralrules/polyfill-force.js';
import '@formatjs/intl-numberformat/polyfill-force.js';
import '@formatjs/intl-datetimeformat/polyfill-force.js';
import '@formatjs/intl-relativetimeformat/polyfill-force.js';
import '@formatjs/intl-listformat/polyfill-force.js';
import './collator.js';
