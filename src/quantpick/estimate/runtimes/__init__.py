"""One module per runtime: its buffers, KV-cache accounting and fixed costs, each constant with its
source (the runtime's code or defaults, or a measurement in benchmarks/gpu/)."""
