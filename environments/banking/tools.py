"""Retail banking support: verify a customer, read accounts and statements, manage cards,
pay saved payees or move money between own accounts, and dispute card charges."""

from datetime import date, timedelta

from gem_graph.runtime import ToolError, new_id, now

PAYEE_DAILY_LIMIT = 2500.0
DISPUTE_WINDOW_DAYS = 60
DISPUTE_DECISION_DAYS = 45
MAX_STATEMENT_DAYS = 90
FREEZE_REASONS = ("lost", "stolen", "suspected_fraud", "temporary_hold")
DISPUTE_REASONS = ("duplicate_charge", "unrecognized", "not_received", "incorrect_amount")


def _rows(db, sql, params=()):
    cursor = db.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _money(value):
    return f"${value:,.2f}"


def _require_session(db, customer_id):
    found = db.execute("SELECT 1 FROM sessions WHERE customer_id = ?", (customer_id,)).fetchone()
    if found is None:
        raise ToolError("customer is not verified; call verify_customer first")


def _owned_account(db, customer_id, account_id):
    found = _rows(
        db,
        "SELECT account_id, type, nickname, balance FROM accounts "
        "WHERE account_id = ? AND customer_id = ?",
        (account_id, customer_id),
    )
    if not found:
        raise ToolError(f"account {account_id} not found for this customer")
    return found[0]


def _owned_card(db, customer_id, card_id):
    found = _rows(
        db,
        "SELECT c.card_id, c.account_id, c.last4, c.status, c.freeze_reason FROM cards c "
        "JOIN accounts a USING (account_id) WHERE c.card_id = ? AND a.customer_id = ?",
        (card_id, customer_id),
    )
    if not found:
        raise ToolError(f"card {card_id} not found for this customer")
    return found[0]


def _check_amount(amount):
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise ToolError("amount must be a number")
    if amount <= 0:
        raise ToolError("amount must be greater than zero")
    if round(amount, 2) != amount:
        raise ToolError("amount may have at most two decimals")
    return float(amount)


def _sent_to_payees_today(db, customer_id):
    today = now().date().isoformat()
    total = db.execute(
        "SELECT SUM(amount) FROM transfers WHERE customer_id = ? AND payee_id IS NOT NULL "
        "AND substr(created_at, 1, 10) = ?",
        (customer_id, today),
    ).fetchone()[0]
    return round(total or 0.0, 2)


def verify_customer(db, email, date_of_birth):
    """Verify identity by email and date of birth; every other tool needs this first."""
    found = _rows(
        db,
        "SELECT customer_id, full_name FROM customers "
        "WHERE lower(email) = lower(?) AND date_of_birth = ?",
        (email.strip(), date_of_birth.strip()),
    )
    if not found:
        raise ToolError("no customer matches that email and date of birth")
    customer = found[0]
    db.execute(
        "INSERT OR IGNORE INTO sessions (customer_id, started_at) VALUES (?, ?)",
        (customer["customer_id"], now().isoformat()),
    )
    return customer


def list_accounts(db, customer_id):
    """The verified customer's accounts with their current balances."""
    _require_session(db, customer_id)
    return _rows(
        db,
        "SELECT account_id, type, nickname, balance FROM accounts WHERE customer_id = ? "
        "ORDER BY account_id",
        (customer_id,),
    )


def get_transactions(db, customer_id, account_id, days=30):
    """Statement lines of one account for the last `days` days, newest first."""
    _require_session(db, customer_id)
    _owned_account(db, customer_id, account_id)
    if isinstance(days, bool) or not isinstance(days, int):
        raise ToolError("days must be a whole number")
    if days < 1 or days > MAX_STATEMENT_DAYS:
        raise ToolError(f"days must be between 1 and {MAX_STATEMENT_DAYS}")
    start = (now().date() - timedelta(days=days)).isoformat()
    lines = _rows(
        db,
        "SELECT t.transaction_id, t.posted_on, t.description, t.amount, c.last4 AS card_last4 "
        "FROM transactions t LEFT JOIN cards c USING (card_id) "
        "WHERE t.account_id = ? AND t.posted_on >= ? "
        "ORDER BY t.posted_on DESC, t.transaction_id DESC",
        (account_id, start),
    )
    return {
        "account_id": account_id,
        "from": start,
        "to": now().date().isoformat(),
        "transactions": lines,
    }


def list_cards(db, customer_id):
    """The customer's debit cards: id, linked account, last four digits and status."""
    _require_session(db, customer_id)
    return _rows(
        db,
        "SELECT c.card_id, c.account_id, c.last4, c.status FROM cards c "
        "JOIN accounts a USING (account_id) WHERE a.customer_id = ? ORDER BY c.card_id",
        (customer_id,),
    )


def freeze_card(db, customer_id, card_id, reason):
    """Freeze an active card so that payments and withdrawals are declined."""
    _require_session(db, customer_id)
    card = _owned_card(db, customer_id, card_id)
    if reason not in FREEZE_REASONS:
        raise ToolError(f"reason must be one of {', '.join(FREEZE_REASONS)}")
    if card["status"] != "active":
        raise ToolError(f"card ending in {card['last4']} is already {card['status']}")
    db.execute(
        "UPDATE cards SET status = 'frozen', freeze_reason = ? WHERE card_id = ?",
        (reason, card_id),
    )
    return {"card_id": card_id, "last4": card["last4"], "status": "frozen", "reason": reason}


def unfreeze_card(db, customer_id, card_id):
    """Reactivate a card frozen as a temporary hold or for suspected fraud."""
    _require_session(db, customer_id)
    card = _owned_card(db, customer_id, card_id)
    if card["status"] != "frozen":
        raise ToolError(f"card ending in {card['last4']} is {card['status']}, not frozen")
    if card["freeze_reason"] in ("lost", "stolen"):
        raise ToolError(
            f"card ending in {card['last4']} was reported {card['freeze_reason']} and cannot "
            "be unfrozen; a replacement must be ordered in the app or at a branch"
        )
    db.execute(
        "UPDATE cards SET status = 'active', freeze_reason = NULL WHERE card_id = ?", (card_id,)
    )
    return {"card_id": card_id, "last4": card["last4"], "status": "active"}


def list_payees(db, customer_id):
    """The customer's saved payees: the only outside recipients money can be sent to."""
    _require_session(db, customer_id)
    return _rows(
        db,
        "SELECT payee_id, name, bank, account_last4 FROM payees WHERE customer_id = ? "
        "ORDER BY payee_id",
        (customer_id,),
    )


def transfer_funds(db, customer_id, from_account_id, to_id, amount, memo=""):
    """Send money to a saved payee or move it to another own account."""
    _require_session(db, customer_id)
    source = _owned_account(db, customer_id, from_account_id)
    amount = _check_amount(amount)
    payee = _rows(
        db,
        "SELECT payee_id, name FROM payees WHERE payee_id = ? AND customer_id = ?",
        (to_id, customer_id),
    )
    own = _rows(
        db,
        "SELECT account_id, nickname FROM accounts WHERE account_id = ? AND customer_id = ?",
        (to_id, customer_id),
    )
    if not payee and not own:
        raise ToolError(f"{to_id} is neither a saved payee nor an account of this customer")
    if own and to_id == from_account_id:
        raise ToolError("the source and destination accounts must differ")
    if amount > source["balance"]:
        raise ToolError(
            f"insufficient funds: the balance of {from_account_id} is {_money(source['balance'])}"
        )
    if payee:
        sent = _sent_to_payees_today(db, customer_id)
        if sent + amount > PAYEE_DAILY_LIMIT:
            left = max(PAYEE_DAILY_LIMIT - sent, 0.0)
            raise ToolError(
                f"this transfer would exceed the daily limit of {_money(PAYEE_DAILY_LIMIT)} "
                f"for payments to payees: {_money(sent)} already sent today, at most "
                f"{_money(left)} more can be sent today"
            )
    recipient = payee[0]["name"] if payee else own[0]["nickname"]
    transfer_id = new_id("trf")
    today = now().date().isoformat()
    db.execute(
        "INSERT INTO transfers (transfer_id, customer_id, from_account_id, to_account_id, "
        "payee_id, amount, memo, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            transfer_id,
            customer_id,
            from_account_id,
            None if payee else to_id,
            to_id if payee else None,
            amount,
            memo.strip() or None,
            now().isoformat(),
        ),
    )
    new_balance = round(source["balance"] - amount, 2)
    db.execute(
        "UPDATE accounts SET balance = ? WHERE account_id = ?", (new_balance, from_account_id)
    )
    db.execute(
        "INSERT INTO transactions (transaction_id, account_id, posted_on, description, amount) "
        "VALUES (?, ?, ?, ?, ?)",
        (new_id("txn"), from_account_id, today, f"Transfer to {recipient}", -amount),
    )
    if own:
        db.execute(
            "UPDATE accounts SET balance = round(balance + ?, 2) WHERE account_id = ?",
            (amount, to_id),
        )
        db.execute(
            "INSERT INTO transactions (transaction_id, account_id, posted_on, description, "
            "amount) VALUES (?, ?, ?, ?, ?)",
            (new_id("txn"), to_id, today, f"Transfer from {source['nickname']}", amount),
        )
    return {
        "transfer_id": transfer_id,
        "from_account_id": from_account_id,
        "to": recipient,
        "amount": amount,
        "status": "completed",
        "new_balance": new_balance,
    }


def open_dispute(db, customer_id, transaction_id, reason):
    """Dispute a card charge posted within the last 60 days; one dispute per charge."""
    _require_session(db, customer_id)
    found = _rows(
        db,
        "SELECT t.transaction_id, t.posted_on, t.description, t.amount, t.card_id "
        "FROM transactions t JOIN accounts a USING (account_id) "
        "WHERE t.transaction_id = ? AND a.customer_id = ?",
        (transaction_id, customer_id),
    )
    if not found:
        raise ToolError(f"transaction {transaction_id} not found for this customer")
    line = found[0]
    if reason not in DISPUTE_REASONS:
        raise ToolError(f"reason must be one of {', '.join(DISPUTE_REASONS)}")
    if line["card_id"] is None or line["amount"] >= 0:
        raise ToolError("only card charges can be disputed")
    posted = date.fromisoformat(line["posted_on"])
    if (now().date() - posted).days > DISPUTE_WINDOW_DAYS:
        raise ToolError(
            f"transaction {transaction_id} was posted on {line['posted_on']}, more than "
            f"{DISPUTE_WINDOW_DAYS} days ago, and can no longer be disputed"
        )
    taken = db.execute(
        "SELECT dispute_id FROM disputes WHERE transaction_id = ?", (transaction_id,)
    ).fetchone()
    if taken is not None:
        raise ToolError(f"transaction {transaction_id} is already disputed in {taken[0]}")
    dispute_id = new_id("dsp")
    due = (now().date() + timedelta(days=DISPUTE_DECISION_DAYS)).isoformat()
    db.execute(
        "INSERT INTO disputes (dispute_id, transaction_id, reason, status, opened_at, "
        "decision_due) VALUES (?, ?, ?, 'under_review', ?, ?)",
        (dispute_id, transaction_id, reason, now().isoformat(), due),
    )
    return {
        "dispute_id": dispute_id,
        "transaction_id": transaction_id,
        "description": line["description"],
        "amount": -line["amount"],
        "reason": reason,
        "status": "under_review",
        "decision_due": due,
    }


def list_disputes(db, customer_id):
    """The customer's disputes with status, decision date and days left until it."""
    _require_session(db, customer_id)
    disputes = _rows(
        db,
        "SELECT d.dispute_id, d.transaction_id, t.description, -t.amount AS amount, d.reason, "
        "d.status, substr(d.opened_at, 1, 10) AS opened_on, d.decision_due "
        "FROM disputes d JOIN transactions t USING (transaction_id) "
        "JOIN accounts a USING (account_id) WHERE a.customer_id = ? ORDER BY d.opened_at",
        (customer_id,),
    )
    for dispute in disputes:
        due = date.fromisoformat(dispute["decision_due"])
        dispute["days_left"] = max((due - now().date()).days, 0)
    return disputes
