"""Card markdown -> ModelCard: markdown tokens, tables, columns, links, values, names. Pure: no I/O
beyond what the caller hands in, no network."""
