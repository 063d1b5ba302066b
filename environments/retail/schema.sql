-- Retail orders: customers place orders of products; delivered orders can be returned.
CREATE TABLE customers (
    customer_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    zip_code TEXT NOT NULL
);

-- One row per authenticated customer in this conversation.
CREATE TABLE sessions (
    customer_id TEXT PRIMARY KEY REFERENCES customers(customer_id),
    started_at TEXT NOT NULL
);

CREATE TABLE products (
    product_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price REAL NOT NULL,
    stock INTEGER NOT NULL
);

CREATE TABLE orders (
    order_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers(customer_id),
    status TEXT NOT NULL CHECK (status IN ('pending', 'shipped', 'delivered', 'cancelled')),
    placed_at TEXT NOT NULL,
    delivered_at TEXT,
    shipping_address TEXT NOT NULL,
    cancel_reason TEXT
);

CREATE TABLE order_items (
    order_id TEXT NOT NULL REFERENCES orders(order_id),
    product_id TEXT NOT NULL REFERENCES products(product_id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price REAL NOT NULL,
    PRIMARY KEY (order_id, product_id)
);

CREATE TABLE returns (
    return_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL REFERENCES orders(order_id),
    status TEXT NOT NULL CHECK (status IN ('requested', 'received', 'refunded')),
    reason TEXT NOT NULL,
    refund_amount REAL NOT NULL,
    requested_at TEXT NOT NULL
);

CREATE TABLE return_items (
    return_id TEXT NOT NULL REFERENCES returns(return_id),
    product_id TEXT NOT NULL REFERENCES products(product_id),
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (return_id, product_id)
);
