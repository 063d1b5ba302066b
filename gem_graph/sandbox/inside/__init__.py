"""Code that runs inside the sandbox worker. Stdlib only; loaded by path (see ../worker.py).

Every episode is two processes. The **monitor** (`monitor`) talks to the client, owns the
database and writes every verdict (outputs, state hash, diff); it never runs tool code. The
**tool process** (`tool`), forked by the monitor and locked down further, runs the tool
code; its `db` is a proxy (`proxy`) whose statements travel to the monitor as JSON
(`frames`) and run there under an authorizer. Tool code therefore cannot reach the protocol
writer, the database or the digest. `lockdown` applies the isolation layers; `forks` holds
the entry points: a fresh worker, the zygote (fork server), the templates it forks (one
built database each) and the episodes forked from them.
"""
