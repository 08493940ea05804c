// The UTS #46 implementation behind idna.js: ToASCII as tr46 6.0.0 (the package whatwg-url uses;
// MIT, (c) Sebastian Mayr and Timothy Gu) implements it, with its Unicode 17 data compacted at build
// time (hypervisor/vm/idna-data.ts) and decoded here on first use. Bundled separately and carried in
// the glue as a string that idna.js evaluates on the first host that needs it.
import { decode as punycodeDecode, encode as punycodeEncode } from 'punycode/punycode.es6.js';

// Defined by hypervisor/vm/glue-build.ts.
const TABLE = __FTJS_IDNA_TABLE__;
const REGEX_SOURCES = __FTJS_IDNA_REGEXES__;

const MAPPED = 'm', SHIFTED = 's', VALID = 'v', DEVIATION = 'x', IGNORED = 'i';

// Runs of code points: starts[i] is the first code point of run i.
const starts = [];
const statuses = [];
const mappings = [];
{
  let cp = 0;
  for (const line of TABLE.split('\uE000')) {
    const comma = line.indexOf(',');
    const head = comma < 0 ? line : line.slice(0, comma);
    starts.push(cp);
    statuses.push(head[0]);
    mappings.push(comma < 0 ? '' : line.slice(comma + 1));
    cp += parseInt(head.slice(1), 36) + 1;
  }
}

function findRun(cp) {
  let lo = 0, hi = starts.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= cp) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

const regexes = {};
for (const name of Object.keys(REGEX_SOURCES)) regexes[name] = new RegExp(REGEX_SOURCES[name][0], REGEX_SOURCES[name][1]);

const NON_ASCII_RE = /[^\x00-\x7F]/u;
const containsNonASCII = (s) => NON_ASCII_RE.test(s);

// Nontransitional processing, as the URL Standard asks.
function mapChars(domain) {
  let out = '';
  for (const ch of domain) {
    const run = findRun(ch.codePointAt(0));
    const status = statuses[run];
    if (status === IGNORED) continue;
    if (status === MAPPED) out += mappings[run];
    else if (status === SHIFTED) out += String.fromCodePoint(mappings[run].codePointAt(0) + ch.codePointAt(0) - starts[run]);
    else out += ch;
  }
  return out;
}

function validateLabel(label, { checkHyphens, checkBidi, checkJoiners, useSTD3ASCIIRules, isBidi }) {
  if (label.length === 0) return true;
  if (label.normalize('NFC') !== label) return false;
  const codePoints = Array.from(label);
  if (checkHyphens) {
    if ((codePoints[2] === '-' && codePoints[3] === '-') || label.startsWith('-') || label.endsWith('-')) return false;
  } else if (label.startsWith('xn--')) {
    return false;
  }
  if (label.includes('.')) return false;
  if (regexes.combiningMarks.test(codePoints[0])) return false;
  for (const ch of codePoints) {
    const cp = ch.codePointAt(0);
    const status = statuses[findRun(cp)];
    if (status !== VALID && status !== DEVIATION) return false;
    if (useSTD3ASCIIRules && cp <= 0x7F && !/^(?:[a-z]|[0-9]|-)$/u.test(ch)) return false;
  }
  // ContextJ (RFC 5892 appendix A).
  if (checkJoiners) {
    let last = 0;
    for (const [i, ch] of codePoints.entries()) {
      if (ch !== '\u200C' && ch !== '\u200D') continue;
      if (i > 0) {
        if (regexes.combiningClassVirama.test(codePoints[i - 1])) continue;
        if (ch === '\u200C') {
          const next = codePoints.indexOf('\u200C', i + 1);
          const test = next < 0 ? codePoints.slice(last) : codePoints.slice(last, next);
          if (regexes.validZWNJ.test(test.join(''))) {
            last = i + 1;
            continue;
          }
        }
      }
      return false;
    }
  }
  // The Bidi rule (RFC 5893 section 2), for labels of a Bidi domain name.
  if (checkBidi && isBidi) {
    let rtl;
    if (regexes.bidiS1LTR.test(codePoints[0])) rtl = false;
    else if (regexes.bidiS1RTL.test(codePoints[0])) rtl = true;
    else return false;
    if (rtl) {
      if (!regexes.bidiS2.test(label) || !regexes.bidiS3.test(label) || (regexes.bidiS4EN.test(label) && regexes.bidiS4AN.test(label))) return false;
    } else if (!regexes.bidiS5.test(label) || !regexes.bidiS6.test(label)) {
      return false;
    }
  }
  return true;
}

function isBidiDomain(labels) {
  const domain = labels.map((label) => {
    if (!label.startsWith('xn--')) return label;
    try {
      return punycodeDecode(label.substring(4));
    } catch {
      return '';
    }
  }).join('.');
  return regexes.bidiDomain.test(domain);
}

function toASCII(domain, options) {
  const labels = mapChars(domain).normalize('NFC').split('.');
  const isBidi = isBidiDomain(labels);
  let error = false;
  for (let i = 0; i < labels.length && !error; i++) {
    let label = labels[i];
    if (label.startsWith('xn--')) {
      if (containsNonASCII(label)) { error = true; break; }
      try {
        label = punycodeDecode(label.substring(4));
      } catch {
        error = true;
        break;
      }
      labels[i] = label;
      if (label === '' || !containsNonASCII(label)) { error = true; break; }
    }
    if (!validateLabel(label, { ...options, isBidi })) error = true;
  }
  if (error) return null;
  for (let i = 0; i < labels.length; i++) {
    if (!containsNonASCII(labels[i])) continue;
    try {
      labels[i] = 'xn--' + punycodeEncode(labels[i]);
    } catch {
      return null;
    }
  }
  return labels.join('.');
}

// The URL Standard's "domain to ASCII" with beStrict = false (VerifyDnsLength off).
export function domainToASCII(domain) {
  return toASCII(domain, { checkHyphens: false, checkBidi: true, checkJoiners: true, useSTD3ASCIIRules: false });
}
