"""The engine: everything that decides what to write and writes it, and nothing that prints.

    diff.py         a version's id→hash table (VersionIndex) and the desired-vs-actual Diff
    hashing.py      per-record content hashes (xxh3 of float32 rows and canonical JSON)
    index_cache.py  version indexes cached on disk by DVC digest
    stash.py        the records a plan will write, kept so apply reads no dataset twice
    state.py        per-environment state documents (format_version), lease lock, history
    plan.py         plan building: resolve → refresh → diff → decide, and the saved-plan form
    apply.py        applying a plan: intent, fenced writes, state, validation
    validation.py   canaries and post-apply checks
    adopt.py        import (adopt an existing index) and export

The engine reads manifests, datasets and destinations; it never imports the CLI or renderers.
"""
