"""The movers of bytes: quantpick's ranged engine over HTTP (Xet files over the Hub's bridge),
huggingface_hub's downloader (hf_xet for Xet files), hf_transfer.
A new engine is a module here plus a `Backend` member (download/plan.py) and a branch in
download/dispatch.py."""
