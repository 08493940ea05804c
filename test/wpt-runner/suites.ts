// The WPT suites ftjs runs, one row each: the files (paths in WPT's layout), the guest's pass-count
// floor (test/wpt-conformance.wpt.ts fails when the guest passes fewer subtests) and Node 20's count with the
// same harness shim and files (measured with FTJS_WPT_NODE=1, see README "Conformance").
//
// Files that need a browser, a network, workers or iframes are left out: they fail in the guest and
// in Node alike and say nothing about the web platform ftjs provides.

export interface Suite {
  name: string;
  files: string[];
  /** The guest passes at least this many subtests. */
  floor: number;
  /** Node 20.20's count on the same files with the same shim. */
  node20: number;
  /** Set while the suite's API comes from another branch: the floor is then what this branch gets. */
  awaiting?: string;
  /** Where the guest stays below Node 20 on purpose: why (the test then checks the floor only). */
  below?: string;
  /** A longer per-file budget in the guest than GUEST_FILE_TIMEOUT_MS (big WebCrypto files). */
  fileTimeoutMs?: number;
}

const dir = (prefix: string, names: string[]) => names.map((n) => `${prefix}/${n}`);

export const SUITES: Suite[] = [
  { name: 'url: urltestdata (URL constructor)', files: ['url/url-constructor.any.js'], floor: 886, node20: 878 },
  { name: 'url: url-origin', files: ['url/url-origin.any.js'], floor: 413, node20: 406 },
  { name: 'url: setters', files: ['url/url-setters.any.js', 'url/url-setters-stripping.any.js'], floor: 530, node20: 525 },
  { name: 'url: toascii', files: ['url/toascii.any.js'], floor: 262, node20: 220 },
  { name: 'url: IdnaTestV2', files: ['url/IdnaTestV2.any.js'], floor: 2671, node20: 1838 },
  {
    name: 'url: URLSearchParams and statics',
    files: dir('url', [
      'url-searchparams.any.js', 'url-statics-canparse.any.js', 'url-statics-parse.any.js', 'url-tojson.any.js',
      'urlsearchparams-append.any.js', 'urlsearchparams-constructor.any.js', 'urlsearchparams-delete.any.js',
      'urlsearchparams-foreach.any.js', 'urlsearchparams-get.any.js', 'urlsearchparams-getall.any.js',
      'urlsearchparams-has.any.js', 'urlsearchparams-set.any.js', 'urlsearchparams-size.any.js',
      'urlsearchparams-sort.any.js', 'urlsearchparams-stringifier.any.js',
    ]),
    floor: 109, node20: 109,
  },
  {
    name: 'encoding: TextEncoder / TextDecoder',
    files: dir('encoding', [
      'api-basics.any.js', 'api-invalid-label.any.js', 'api-replacement-encodings.any.js', 'api-surrogates-utf8.any.js',
      'encodeInto.any.js', 'textdecoder-arguments.any.js', 'textdecoder-byte-order-marks.any.js', 'textdecoder-copy.any.js',
      'textdecoder-eof.any.js', 'textdecoder-fatal-single-byte.any.js', 'textdecoder-fatal-streaming.any.js',
      'textdecoder-fatal.any.js', 'textdecoder-ignorebom.any.js', 'textdecoder-labels.any.js',
      'textdecoder-streaming.any.js', 'textdecoder-utf16-surrogates.any.js', 'textencoder-constructor-non-utf.any.js',
      'textencoder-utf16-surrogates.any.js', 'iso-2022-jp-decoder.any.js',
    ]),
    // The 72 subtests left all decode from or encodeInto a SharedArrayBuffer, which a VM deletes at
    // boot (runtime.js: a single-threaded guest has no use for shared memory), so they stay out by design.
    floor: 7972, node20: 7773,
  },
  {
    name: 'fetch: Headers',
    files: dir('fetch/api/headers', [
      // header-values*.any.js and headers-no-cors.any.js need XMLHttpRequest or a server.
      'header-setcookie.any.js', 'headers-basic.any.js', 'headers-casing.any.js', 'headers-combine.any.js',
      'headers-errors.any.js', 'headers-normalize.any.js', 'headers-record.any.js', 'headers-structure.any.js',
    ]),
    floor: 98, node20: 98,
  },
  {
    name: 'fetch: Request',
    files: dir('fetch/api/request', [
      'request-constructor-init-body-override.any.js', 'request-consume-empty.any.js', 'request-consume.any.js',
      'request-disturbed.any.js', 'request-error.any.js', 'request-headers.any.js', 'request-init-002.any.js',
      'request-init-contenttype.any.js', 'request-init-priority.any.js', 'request-init-stream.any.js',
      'request-structure.any.js',
    ]),
    floor: 54, node20: 54,
  },
  {
    name: 'fetch: Response',
    files: dir('fetch/api/response', [
      'json.any.js', 'response-blob-realm.any.js', 'response-cancel-stream.any.js', 'response-clone.any.js',
      'response-consume-empty.any.js', 'response-consume-stream.any.js', 'response-error-from-stream.any.js',
      'response-error.any.js', 'response-from-stream.any.js', 'response-headers-guard.any.js', 'response-init-001.any.js',
      'response-init-002.any.js', 'response-init-contenttype.any.js', 'response-static-error.any.js',
      'response-static-json.any.js', 'response-static-redirect.any.js', 'response-stream-bad-chunk.any.js',
      'response-stream-disturbed-1.any.js', 'response-stream-disturbed-2.any.js', 'response-stream-disturbed-3.any.js',
      'response-stream-disturbed-4.any.js', 'response-stream-disturbed-5.any.js', 'response-stream-disturbed-6.any.js',
      'response-stream-disturbed-by-pipe.any.js', 'response-stream-with-broken-then.any.js',
    ]),
    floor: 204, node20: 200,
  },
  {
    name: 'fetch: body',
    files: dir('fetch/api/body', ['cloned-any.js', 'formdata.any.js', 'mime-type.any.js']),
    floor: 28, node20: 28,
  },
  {
    name: 'structured clone',
    files: ['html/webappapis/structured-clone/structured-clone.any.js'],
    floor: 123, node20: 123,
  },
  {
    name: 'FormData',
    files: dir('xhr/formdata', [
      'append.any.js', 'constructor.any.js', 'delete.any.js', 'foreach.any.js', 'get.any.js', 'has.any.js',
      'iteration.any.js', 'set-blob.any.js', 'set.any.js',
    ]),
    floor: 39, node20: 39,
  },
  {
    name: 'streams: readable-streams',
    files: dir('streams/readable-streams', [
      'async-iterator.any.js', 'bad-strategies.any.js', 'bad-underlying-sources.any.js', 'cancel.any.js',
      'constructor.any.js', 'count-queuing-strategy-integration.any.js', 'default-reader.any.js',
      'floating-point-total-queue-size.any.js', 'from.any.js', 'garbage-collection.any.js', 'general.any.js',
      'patched-global.any.js', 'reentrant-strategies.any.js', 'tee.any.js', 'templated.any.js',
    ]),
    floor: 342, node20: 343,
    below: 'one subtest (patched-global): QuickJS does not await an async iterator\'s return() on `for await` break, so the stream is still locked just after the loop',
  },
  {
    name: 'streams: readable-byte-streams',
    files: dir('streams/readable-byte-streams', [
      'bad-buffers-and-views.any.js', 'construct-byob-request.any.js', 'enqueue-with-detached-buffer.any.js',
      'general.any.js', 'non-transferable-buffers.any.js', 'patched-global.any.js', 'read-min.any.js',
      'respond-after-enqueue.any.js', 'tee.any.js', 'templated.any.js',
    ]),
    floor: 242, node20: 245,
    below: 'four subtests need WebAssembly.Memory (a non-transferable buffer): QuickJS has no WebAssembly',
  },
  {
    name: 'streams: writable-streams',
    files: dir('streams/writable-streams', [
      'aborting.any.js', 'bad-strategies.any.js', 'bad-underlying-sinks.any.js', 'byte-length-queuing-strategy.any.js',
      'close.any.js', 'constructor.any.js', 'count-queuing-strategy.any.js', 'error.any.js',
      'floating-point-total-queue-size.any.js', 'general.any.js', 'properties.any.js', 'reentrant-strategy.any.js',
      'start.any.js', 'write.any.js',
    ]),
    floor: 190, node20: 188,
  },
  {
    name: 'streams: transform-streams',
    files: dir('streams/transform-streams', [
      'backpressure.any.js', 'cancel.any.js', 'errors.any.js', 'flush.any.js', 'general.any.js', 'lipfuzz.any.js',
      'patched-global.any.js', 'properties.any.js', 'reentrant-strategies.any.js', 'strategies.any.js', 'terminate.any.js',
    ]),
    floor: 0, node20: 0, // the files are not in the WPT copy measured here
  },
  {
    name: 'streams: piping',
    files: dir('streams/piping', [
      'abort.any.js', 'close-propagation-backward.any.js', 'close-propagation-forward.any.js',
      'error-propagation-backward.any.js', 'error-propagation-forward.any.js', 'flow-control.any.js',
      'general-addition.any.js', 'general.any.js', 'multiple-propagation.any.js', 'pipe-through.any.js',
      'then-interception.any.js', 'throwing-options.any.js', 'transform-streams.any.js',
    ]),
    floor: 228, node20: 228,
  },
  {
    name: 'streams: queuing strategies',
    files: ['streams/queuing-strategies.any.js'],
    floor: 0, node20: 0, // the files are not in the WPT copy measured here
  },
  {
    name: 'WebCrypto: digest',
    files: ['WebCryptoAPI/digest/digest.https.any.js'],
    floor: 84, node20: 84,
  },
  {
    name: 'WebCrypto: import/export',
    files: dir('WebCryptoAPI/import_export', [
      'ec_importKey.https.any.js', 'ec_importKey_failures_ECDH.https.any.js', 'ec_importKey_failures_ECDSA.https.any.js',
      'okp_importKey_Ed25519.https.any.js', 'okp_importKey_X25519.https.any.js',
      'okp_importKey_failures_Ed25519.https.any.js', 'okp_importKey_failures_X25519.https.any.js',
      'rsa_importKey.https.any.js', 'symmetric_importKey.https.any.js',
    ]),
    floor: 3559, node20: 3559,
  },
  {
    name: 'WebCrypto: sign/verify',
    files: dir('WebCryptoAPI/sign_verify', [
      'ecdsa.https.any.js', 'eddsa_curve25519.https.any.js', 'hmac.https.any.js', 'rsa_pkcs.https.any.js', 'rsa_pss.https.any.js',
    ]),
    floor: 449, node20: 449,
  },
  {
    name: 'WebCrypto: encrypt/decrypt',
    files: dir('WebCryptoAPI/encrypt_decrypt', ['aes_cbc.https.any.js', 'aes_ctr.https.any.js', 'aes_gcm.https.any.js', 'rsa_oaep.https.any.js']),
    floor: 511, node20: 511,
  },
  {
    name: 'WebCrypto: deriveBits/deriveKey',
    files: dir('WebCryptoAPI/derive_bits_keys', [
      'hkdf.https.any.js', 'pbkdf2.https.any.js', 'ecdh_bits.https.any.js', 'ecdh_keys.https.any.js',
      'derived_bits_length.https.any.js', 'derive_key_and_encrypt.https.any.js',
    ]),
    floor: 12398, node20: 12398,
    // PBKDF2 alone is 8,632 subtests: about 100 s in the guest on this machine.
    fileTimeoutMs: 300_000,
  },
  {
    name: 'WebCrypto: generateKey',
    files: dir('WebCryptoAPI/generateKey', [
      'successes_AES-CBC.https.any.js', 'successes_AES-GCM.https.any.js', 'successes_HMAC.https.any.js',
      'successes_ECDSA.https.any.js', 'successes_Ed25519.https.any.js', 'successes_RSASSA-PKCS1-v1_5.https.any.js',
      'failures_AES-CBC.https.any.js', 'failures_AES-GCM.https.any.js', 'failures_HMAC.https.any.js',
      'failures_ECDSA.https.any.js', 'failures_Ed25519.https.any.js', 'failures_RSASSA-PKCS1-v1_5.https.any.js',
    ]),
    floor: 4308, node20: 4308,
  },
];
