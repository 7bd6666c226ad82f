"""The movers of bytes: quantpick's ranged engine over HTTP, huggingface_hub's downloader, hf_transfer.
A new engine is a module here plus a `Backend` member (download/plan.py) and a branch in
download/dispatch.py."""
