// A toy bank whose total amount of money is invariant.
//
//   GET  /                     route description
//   POST /accounts             { id, balance } -> 201 account (funded from the reserve)
//   GET  /accounts             { accounts: [...] } (sorted by id)
//   GET  /accounts/:id         account | 404
//   POST /transfer             { from, to, amount } -> 201 transfer
//                              400 bad input, 404 unknown account, 409 insufficient funds
//   GET  /transfers?limit=n    most recent transfers first (default 20, max 1000)
//   GET  /audit                { total, expected, ok, accounts, transfers }
//
// Amounts are integer cents. The arithmetic lives in ./lib/ledger.js.

import { Ledger, LedgerError, RESERVE_OPENING } from './lib/ledger.js';

const ledger = new Ledger();
const transfers = []; // newest last
const MAX_KEPT_TRANSFERS = 10_000;
let transferCount = 0;

function json(data, status = 200, extraHeaders = {}) {
  return new Response(JSON.stringify(data), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...extraHeaders },
  });
}

function methodNotAllowed(allow) {
  return json({ error: 'method not allowed', allow }, 405, { allow });
}

async function readJsonObject(request) {
  let body;
  try {
    body = await request.json();
  } catch {
    throw new LedgerError(400, 'body must be valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new LedgerError(400, 'body must be a JSON object');
  }
  return body;
}

async function createAccount(request) {
  const { id, balance = 0 } = await readJsonObject(request);
  const account = ledger.open(id, balance, Date.now());
  return json(account, 201, { location: `/accounts/${encodeURIComponent(account.id)}` });
}

async function transfer(request) {
  const { from, to, amount } = await readJsonObject(request);
  const balances = ledger.move(from, to, amount);
  const record = {
    id: crypto.randomUUID(),
    from,
    to,
    amount,
    at: Date.now(),
    balances,
  };
  transfers.push(record);
  transferCount++;
  if (transfers.length > MAX_KEPT_TRANSFERS) transfers.shift();
  return json(record, 201);
}

function listTransfers(url) {
  const raw = url.searchParams.get('limit');
  let limit = 20;
  if (raw !== null) {
    limit = Number(raw);
    if (raw.trim() === '' || !Number.isInteger(limit) || limit < 0 || limit > 1000) {
      throw new LedgerError(400, 'limit must be an integer between 0 and 1000');
    }
  }
  const recent = limit === 0 ? [] : transfers.slice(-limit).reverse();
  return json({ transfers: recent, count: transferCount });
}

function audit() {
  const total = ledger.total();
  return json({
    total,
    expected: RESERVE_OPENING,
    ok: total === RESERVE_OPENING,
    accounts: ledger.size(),
    transfers: transferCount,
  });
}

async function route(request) {
  const url = new URL(request.url);
  const { pathname } = url;
  const method = request.method;

  if (pathname === '/') {
    if (method !== 'GET') return methodNotAllowed('GET');
    return json({
      name: 'bank',
      routes: [
        'POST /accounts',
        'GET /accounts',
        'GET /accounts/:id',
        'POST /transfer',
        'GET /transfers?limit=n',
        'GET /audit',
      ],
    });
  }

  if (pathname === '/accounts') {
    if (method === 'POST') return createAccount(request);
    if (method === 'GET') {
      const accounts = [...ledger.accounts.values()]
        .filter((a) => ledger.get(a.id))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      return json({ accounts });
    }
    return methodNotAllowed('GET, POST');
  }

  if (pathname.startsWith('/accounts/')) {
    if (method !== 'GET') return methodNotAllowed('GET');
    let id;
    try {
      id = decodeURIComponent(pathname.slice('/accounts/'.length));
    } catch {
      return json({ error: 'malformed account id' }, 400);
    }
    const account = ledger.get(id);
    if (!account) return json({ error: `unknown account ${id}` }, 404);
    return json(account);
  }

  if (pathname === '/transfer') {
    if (method !== 'POST') return methodNotAllowed('POST');
    return transfer(request);
  }

  if (pathname === '/transfers') {
    if (method !== 'GET') return methodNotAllowed('GET');
    return listTransfers(url);
  }

  if (pathname === '/audit') {
    if (method !== 'GET') return methodNotAllowed('GET');
    return audit();
  }

  // The drill contract (README, `ftjs drill`): check this guest with the ledger workload.
  if (pathname === '/.well-known/ftjs-drill') return json({ workload: 'bank' });

  return json({ error: 'not found' }, 404);
}

export default {
  async fetch(request) {
    try {
      return await route(request);
    } catch (err) {
      if (err instanceof LedgerError) return json({ error: err.message }, err.status);
      throw err;
    }
  },
};
