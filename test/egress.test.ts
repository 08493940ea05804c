// The egress policy: a guest's outbound fetch may not reach loopback, link-local, private or reserved
// addresses, nor its own node's ports, unless --allow-fetch opens them; checked on the address dialled.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressProblem, egressPolicy, hostAllowed, urlProblem } from '../dist/hypervisor/node/egress.js';
import { egressFetch } from '../dist/hypervisor/node/egress-fetch.js';

describe('egress policy', () => {
  it('denies loopback, link-local, private and reserved addresses by default, in both families and IPv4-mapped', () => {
    const policy = egressPolicy([], []);
    for (const address of [
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '::',
      'fc00::1',
      'fd12::1',
      'fe80::1',
      '::ffff:127.0.0.1',
      '::ffff:10.0.0.1',
      '224.0.0.1',
      '255.255.255.255',
    ]) {
      expect(addressProblem(policy, address, 80), address).not.toBeNull();
    }
    for (const address of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:8.8.8.8']) expect(addressProblem(policy, address, 443), address).toBeNull();
  });

  it("--allow-fetch opens CIDRs, addresses and host names, but never the node's own ports", () => {
    const policy = egressPolicy(['10.0.0.0/8', '127.0.0.1', '[::1]', 'api.internal', '*.corp.example'], [8080, 9091]);
    expect(addressProblem(policy, '10.1.2.3', 80)).toBeNull();
    expect(addressProblem(policy, '127.0.0.1', 3000)).toBeNull();
    expect(addressProblem(policy, '::1', 3000)).toBeNull();
    expect(addressProblem(policy, '127.0.0.2', 3000)).not.toBeNull();
    expect(addressProblem(policy, '127.0.0.1', 8080)).toMatch(/this node's own port/);
    expect(addressProblem(policy, '10.1.2.3', 9091)).toBeNull(); // not this node's address
    expect(hostAllowed(policy, 'api.internal')).toBe(true);
    expect(hostAllowed(policy, 'x.corp.example')).toBe(true);
    expect(hostAllowed(policy, 'corp.example')).toBe(false);
    expect(hostAllowed(policy, 'api.internal.evil.com')).toBe(false);
    expect(() => egressPolicy(['10.0.0.0/33'], [])).toThrow(/not an IP address or CIDR/);
    expect(() => egressPolicy(['bad host!'], [])).toThrow(/is not a host name/);
  });

  it('checks the scheme and IP literals in URLs before dialling', () => {
    const policy = egressPolicy([], [8080]);
    expect(urlProblem(policy, new URL('file:///etc/passwd'))).toMatch(/scheme file: is not allowed/);
    expect(urlProblem(policy, new URL('http://[::1]:80/'))).toMatch(/loopback/);
    expect(urlProblem(policy, new URL('http://169.254.169.254/latest/meta-data'))).toMatch(/link-local/);
    expect(urlProblem(policy, new URL('http://localhost:8080/_ft/status'))).toMatch(/own port/);
    expect(urlProblem(policy, new URL('https://example.com/'))).toBeNull();
  });
});

describe('egressFetch against a real server on 127.0.0.1', () => {
  let server: http.Server;
  let port = 0;
  beforeAll(async () => {
    server = http.createServer((_req, res) => res.end('inside'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('refuses the literal and the name that resolves to it (checked at connect), and serves once allowed', async () => {
    const closed = egressFetch(egressPolicy([], []));
    await expect(closed(`http://127.0.0.1:${port}/`, {})).rejects.toThrow(/refused by the egress policy: 127\.0\.0\.1 is in a loopback/);
    // 'localhost' passes the URL check; the socket's lookup refuses the loopback address it resolves to.
    const viaName = await closed(`http://localhost:${port}/`, {}).then(
      () => 'fetched',
      (error: Error) => String((error as { cause?: Error }).cause?.message ?? error.message),
    );
    expect(viaName).toMatch(/fetch to localhost refused by the egress policy: it resolves to .* loopback/);
    const open = egressFetch(egressPolicy(['127.0.0.1'], []));
    expect(await (await open(`http://127.0.0.1:${port}/`, {})).text()).toBe('inside');
    const byName = egressFetch(egressPolicy(['localhost'], []));
    expect(await (await byName(`http://localhost:${port}/`, {})).text()).toBe('inside');
    const own = egressFetch(egressPolicy(['127.0.0.0/8'], [port]));
    await expect(own(`http://127.0.0.1:${port}/`, {})).rejects.toThrow(/own port/);
  });
});
