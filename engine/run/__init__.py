"""One study run on this host: the coordinator, its workers, and the pure bookkeeping between them."""
