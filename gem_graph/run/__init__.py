"""Corpus runs: the runner, its SQLite store, the model-response cache, corpus reading,
run reports, run settings files and multi-process workers.

- `runner`: `run_corpus`, documents in flight, retries, the stop on a dead endpoint.
- `store`: `RunStore`, every document's outcome, records and rejects, resumable.
- `cache`: model responses keyed by prompt versions, prompt, model and sampling.
- `corpus`: JSONL, plain-text and Parquet corpora as `Document`s, bad lines kept as such.
- `report`: a finished run's summary.
- `config`: settings files (TOML) merged over the defaults, the settings fingerprint.
- `workers`: one corpus sharded over several processes writing to the same store.
"""
