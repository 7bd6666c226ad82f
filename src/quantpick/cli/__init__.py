"""The command line: the only importer of typer (app.py) and rich (output.py, render.py); options,
rendering, the JSON envelope and its schemas."""
