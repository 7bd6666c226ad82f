"""One module per command's use case (listing, pick, fetch, verify, search): arguments in, a typed
result out (results.py), free of typer and rich; they report through report.Reporter."""
