"""Retail order support: authenticate a customer, look up orders, cancel, re-address, return."""

from datetime import datetime, timedelta

from gem_graph.runtime import ToolError, new_id, now

RETURN_WINDOW_DAYS = 30
MAX_RETURN_UNITS = 3
CANCEL_REASONS = ("no_longer_needed", "ordered_by_mistake", "found_better_price")


def _rows(db, sql, params=()):
    cursor = db.execute(sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def _require_session(db, customer_id):
    found = db.execute("SELECT 1 FROM sessions WHERE customer_id = ?", (customer_id,)).fetchone()
    if found is None:
        raise ToolError("customer is not authenticated; call authenticate_customer first")


def _owned_order(db, customer_id, order_id):
    _require_session(db, customer_id)
    found = _rows(
        db,
        "SELECT order_id, status, placed_at, delivered_at, shipping_address FROM orders "
        "WHERE order_id = ? AND customer_id = ?",
        (order_id, customer_id),
    )
    if not found:
        raise ToolError(f"order {order_id} not found for this customer")
    return found[0]


def _order_total(db, order_id):
    total = db.execute(
        "SELECT SUM(quantity * unit_price) FROM order_items WHERE order_id = ?", (order_id,)
    ).fetchone()[0]
    return round(total or 0, 2)


def _returned_units(db, order_id, product_id):
    count = db.execute(
        "SELECT SUM(ri.quantity) FROM return_items ri JOIN returns r USING (return_id) "
        "WHERE r.order_id = ? AND ri.product_id = ?",
        (order_id, product_id),
    ).fetchone()[0]
    return count or 0


def authenticate_customer(db, email, zip_code):
    """Verify identity by email and zip code; every other customer tool needs this first."""
    found = _rows(
        db,
        "SELECT customer_id, name FROM customers WHERE lower(email) = lower(?) AND zip_code = ?",
        (email.strip(), zip_code.strip()),
    )
    if not found:
        raise ToolError("no customer matches that email and zip code")
    customer = found[0]
    db.execute(
        "INSERT OR IGNORE INTO sessions (customer_id, started_at) VALUES (?, ?)",
        (customer["customer_id"], now().isoformat()),
    )
    return customer


def get_customer_orders(db, customer_id):
    """List the authenticated customer's orders, newest first."""
    _require_session(db, customer_id)
    orders = _rows(
        db,
        "SELECT order_id, status, placed_at FROM orders WHERE customer_id = ? "
        "ORDER BY placed_at DESC",
        (customer_id,),
    )
    for order in orders:
        order["total"] = _order_total(db, order["order_id"])
    return orders


def get_order_details(db, customer_id, order_id):
    """Full order: status, dates, address, items (with units already returned) and total."""
    order = _owned_order(db, customer_id, order_id)
    order["items"] = _rows(
        db,
        "SELECT oi.product_id, p.name, oi.quantity, oi.unit_price FROM order_items oi "
        "JOIN products p USING (product_id) WHERE oi.order_id = ? ORDER BY oi.product_id",
        (order_id,),
    )
    for item in order["items"]:
        item["returned_quantity"] = _returned_units(db, order_id, item["product_id"])
    order["total"] = _order_total(db, order_id)
    return order


def search_products(db, query):
    """Find products whose name contains `query`, with price and availability."""
    if not query.strip():
        raise ToolError("query must not be empty")
    found = _rows(
        db,
        "SELECT product_id, name, price, stock FROM products WHERE name LIKE ? ORDER BY name",
        (f"%{query.strip()}%",),
    )
    return [
        {
            "product_id": p["product_id"],
            "name": p["name"],
            "price": p["price"],
            "in_stock": p["stock"] > 0,
        }
        for p in found
    ]


def cancel_order(db, customer_id, order_id, reason):
    """Cancel a pending order, restock its items and report the refund."""
    order = _owned_order(db, customer_id, order_id)
    if reason not in CANCEL_REASONS:
        raise ToolError(f"reason must be one of {', '.join(CANCEL_REASONS)}")
    if order["status"] != "pending":
        raise ToolError(
            f"only pending orders can be cancelled; order {order_id} is {order['status']}"
        )
    db.execute(
        "UPDATE orders SET status = 'cancelled', cancel_reason = ? WHERE order_id = ?",
        (reason, order_id),
    )
    db.execute(
        "UPDATE products SET stock = stock + (SELECT quantity FROM order_items oi "
        "WHERE oi.order_id = ? AND oi.product_id = products.product_id) "
        "WHERE product_id IN (SELECT product_id FROM order_items WHERE order_id = ?)",
        (order_id, order_id),
    )
    return {
        "order_id": order_id,
        "status": "cancelled",
        "refund_amount": _order_total(db, order_id),
    }


def update_shipping_address(db, customer_id, order_id, address):
    """Change where a pending order ships; shipped orders can no longer be re-addressed."""
    order = _owned_order(db, customer_id, order_id)
    if order["status"] != "pending":
        raise ToolError(
            f"the address can only change while the order is pending; it is {order['status']}"
        )
    if len(address.strip()) < 10:
        raise ToolError("address is too short; give street, city, state and zip code")
    db.execute(
        "UPDATE orders SET shipping_address = ? WHERE order_id = ?", (address.strip(), order_id)
    )
    return {"order_id": order_id, "shipping_address": address.strip()}


def create_return(db, customer_id, order_id, items, reason):
    """Return up to 3 units of a delivered order within 30 days of delivery."""
    order = _owned_order(db, customer_id, order_id)
    if order["status"] != "delivered":
        raise ToolError(
            f"only delivered orders can be returned; order {order_id} is {order['status']}"
        )
    delivered = datetime.fromisoformat(order["delivered_at"])
    if now() - delivered > timedelta(days=RETURN_WINDOW_DAYS):
        raise ToolError(
            f"the {RETURN_WINDOW_DAYS}-day return window for order {order_id} has closed"
        )
    if not items:
        raise ToolError("a return needs at least one item")
    units = sum(item["quantity"] for item in items)
    if units > MAX_RETURN_UNITS:
        raise ToolError(f"a return may hold at most {MAX_RETURN_UNITS} units; this one has {units}")
    product_ids = [item["product_id"] for item in items]
    if len(set(product_ids)) != len(product_ids):
        raise ToolError("list each product only once")
    refund = 0.0
    for item in items:
        bought = _rows(
            db,
            "SELECT quantity, unit_price FROM order_items WHERE order_id = ? AND product_id = ?",
            (order_id, item["product_id"]),
        )
        if not bought:
            raise ToolError(f"product {item['product_id']} is not part of order {order_id}")
        left = bought[0]["quantity"] - _returned_units(db, order_id, item["product_id"])
        if item["quantity"] < 1 or item["quantity"] > left:
            raise ToolError(f"only {left} unit(s) of {item['product_id']} can still be returned")
        refund += item["quantity"] * bought[0]["unit_price"]
    return_id = new_id("ret")
    db.execute(
        "INSERT INTO returns (return_id, order_id, status, reason, refund_amount, requested_at) "
        "VALUES (?, ?, 'requested', ?, ?, ?)",
        (return_id, order_id, reason, round(refund, 2), now().isoformat()),
    )
    for item in items:
        db.execute(
            "INSERT INTO return_items (return_id, product_id, quantity) VALUES (?, ?, ?)",
            (return_id, item["product_id"], item["quantity"]),
        )
    return {
        "return_id": return_id,
        "order_id": order_id,
        "status": "requested",
        "refund_amount": round(refund, 2),
        "items": [{"product_id": i["product_id"], "quantity": i["quantity"]} for i in items],
    }


def get_return_status(db, customer_id, return_id):
    """Status, refund amount and items of one of the customer's returns."""
    _require_session(db, customer_id)
    found = _rows(
        db,
        "SELECT r.return_id, r.order_id, r.status, r.reason, r.refund_amount, r.requested_at "
        "FROM returns r JOIN orders o USING (order_id) WHERE r.return_id = ? AND o.customer_id = ?",
        (return_id, customer_id),
    )
    if not found:
        raise ToolError(f"return {return_id} not found for this customer")
    result = found[0]
    result["items"] = _rows(
        db,
        "SELECT product_id, quantity FROM return_items WHERE return_id = ? ORDER BY product_id",
        (return_id,),
    )
    return result
