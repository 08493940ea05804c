// Money arithmetic for bank.js. All amounts are integer cents.
//
// Money is never created or destroyed: new accounts are funded from an
// internal reserve that starts at RESERVE_OPENING, so the sum of all balances
// (reserve included) is always RESERVE_OPENING.

export const RESERVE_ID = '__reserve__';
export const RESERVE_OPENING = 1_000_000;

export class LedgerError extends Error {
  constructor(status, message) {
    super(message);
    this.name = 'LedgerError';
    this.status = status;
  }
}

/** Validate an amount of cents: a safe integer, >= min. */
export function parseCents(value, { min = 1, field = 'amount' } = {}) {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    throw new LedgerError(400, `${field} must be an integer number of cents`);
  }
  if (value < min) {
    throw new LedgerError(400, `${field} must be >= ${min}`);
  }
  return value;
}

export class Ledger {
  constructor() {
    /** @type {Map<string, {id: string, balance: number, createdAt: number}>} */
    this.accounts = new Map();
    this.accounts.set(RESERVE_ID, { id: RESERVE_ID, balance: RESERVE_OPENING, createdAt: 0 });
  }

  get(id) {
    if (id === RESERVE_ID) return undefined; // internal, not addressable
    return this.accounts.get(id);
  }

  /** Open an account, funding its opening balance from the reserve. */
  open(id, openingBalance, now) {
    if (typeof id !== 'string' || id.length === 0 || id.length > 64) {
      throw new LedgerError(400, 'id must be a non-empty string of at most 64 characters');
    }
    if (id === RESERVE_ID) throw new LedgerError(400, 'reserved account id');
    if (this.accounts.has(id)) throw new LedgerError(409, `account ${id} already exists`);
    const balance = parseCents(openingBalance, { min: 0, field: 'balance' });
    const reserve = this.accounts.get(RESERVE_ID);
    if (reserve.balance < balance) {
      throw new LedgerError(409, 'reserve cannot fund this opening balance');
    }
    reserve.balance -= balance;
    const account = { id, balance, createdAt: now };
    this.accounts.set(id, account);
    return account;
  }

  /** Move `amount` cents; throws LedgerError on bad input or insufficient funds. */
  move(fromId, toId, amount) {
    if (typeof fromId !== 'string' || typeof toId !== 'string') {
      throw new LedgerError(400, 'from and to must be account ids');
    }
    const cents = parseCents(amount);
    if (fromId === toId) throw new LedgerError(400, 'cannot transfer to the same account');
    const from = this.get(fromId);
    if (!from) throw new LedgerError(404, `unknown account ${fromId}`);
    const to = this.get(toId);
    if (!to) throw new LedgerError(404, `unknown account ${toId}`);
    if (from.balance < cents) {
      throw new LedgerError(409, `insufficient funds in ${fromId}: balance ${from.balance}, needed ${cents}`);
    }
    from.balance -= cents;
    to.balance += cents;
    return { from: from.balance, to: to.balance };
  }

  /** Sum of every balance, reserve included. */
  total() {
    let sum = 0;
    for (const account of this.accounts.values()) sum += account.balance;
    return sum;
  }

  /** Number of customer accounts (the reserve is not counted). */
  size() {
    return this.accounts.size - 1;
  }
}
