"""Corpus runs: the runner, its SQLite store, the model-response cache, corpus reading,
run reports, settings loading and the Ray engine.

- `runner`: `run_corpus`, documents in flight, retries, the stop on a dead endpoint.
- `options`: `RunOptions` (one invocation), `RunSummary`, run errors, segment size.
- `endpoint`: the model server preflight, cache and rate limiter on the chat model.
- `session`: the resume check against the settings fingerprint; closing a session.
- `environments`: saving produced environments into `RUN_DIR/environments/`.
- `store`: `RunStore`, every document's outcome, records and rejects, resumable.
- `summary`: the end-of-run summary read from the store (funnel, rejects, usage).
- `cache`: model responses keyed by prompt versions, prompt, model and sampling.
- `corpus`: JSONL, plain-text and Parquet corpora as `Document`s, bad lines kept as such.
- `report`: a finished run's summary as a table, and the live progress display.
- `config`: settings from every source with provenance; the settings fingerprint.
- `document`: the run's graph set-up and one document's outcome, shared by the engines.
- `engine`: which engine runs the graph (`local` or `ray`) and the model factory.
- `ray_engine`, `ray_pool`, `ray_actor`: the graph in Ray actors, the driver owning the store.
"""
