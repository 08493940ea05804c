// The UTS #46 implementation behind idna.js: tr46 (the one whatwg-url uses), with its Unicode
// mapping table. Bundled separately at build time (hypervisor/glue-build.ts) and carried in the glue
// as a string, which idna.js evaluates on the first host that needs it: the table and its regexes are
// ~215 KB that most services never touch, so they cost no parse time at boot.
import { toASCII } from 'tr46';

// The URL Standard's "domain to ASCII" with beStrict = false.
export function domainToASCII(domain) {
  return toASCII(domain, {
    checkHyphens: false,
    checkBidi: true,
    checkJoiners: true,
    useSTD3ASCIIRules: false,
    transitionalProcessing: false,
    verifyDNSLength: false,
    ignoreInvalidPunycode: false,
  });
}
