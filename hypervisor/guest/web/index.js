// The guest web platform, bundled by esbuild (hypervisor/vm/glue-build.ts) into one script that every
// VM evaluates at boot, before the runtime glue. Each module installs its globals when it runs; the
// order here is the order they install in. Keep it stable: the bundle is part of a trace's boot config.
// bounded-json.js first: platform.js captures JSON.parse/stringify for body.json() and Response.json().
import './bounded-json.js';
import './platform.js';
import './encoding.js';
import './forms.js';
import './navigator.js';
import './urlpattern.js';
import './subtle.js';
import './crypto.js';
import './intl.js';
import './bounded-sort.js';
import './bounded-strings.js';
import './runtime-intrinsics.js';
