-- Retail banking support: customers hold accounts and debit cards, pay saved payees,
-- move money between their own accounts and dispute card charges.
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    full_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    date_of_birth TEXT NOT NULL
);

-- One row per verified customer in this conversation.
CREATE TABLE sessions (
    customer_id TEXT PRIMARY KEY REFERENCES customers(customer_id),
    started_at TEXT NOT NULL
);

CREATE TABLE accounts (
    account_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(customer_id),
    type TEXT NOT NULL CHECK (type IN ('checking', 'savings')),
    nickname TEXT NOT NULL,
    balance REAL NOT NULL
);

CREATE TABLE cards (
    card_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    last4 TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('active', 'frozen', 'cancelled')),
    freeze_reason TEXT
);

CREATE TABLE payees (
    payee_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(customer_id),
    name TEXT NOT NULL,
    bank TEXT NOT NULL,
    account_last4 TEXT NOT NULL
);

-- Statement lines; negative amounts are debits. card_id is set for card payments.
CREATE TABLE transactions (
    transaction_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(account_id),
    posted_on TEXT NOT NULL,
    description TEXT NOT NULL,
    amount REAL NOT NULL,
    card_id TEXT REFERENCES cards(card_id)
);

-- Money sent from an account to a payee (payee_id) or to the customer's own account.
CREATE TABLE transfers (
    transfer_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(customer_id),
    from_account_id TEXT NOT NULL REFERENCES accounts(account_id),
    to_account_id TEXT REFERENCES accounts(account_id),
    payee_id TEXT REFERENCES payees(payee_id),
    amount REAL NOT NULL CHECK (amount > 0),
    memo TEXT,
    created_at TEXT NOT NULL
);

CREATE TABLE disputes (
    dispute_id TEXT PRIMARY KEY,
    transaction_id TEXT NOT NULL UNIQUE REFERENCES transactions(transaction_id),
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('under_review', 'resolved_refunded', 'resolved_declined')),
    opened_at TEXT NOT NULL,
    decision_due TEXT NOT NULL
);
