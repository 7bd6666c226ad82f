"""The Hub: the only importer of huggingface_hub (client.py), the offline look-up cache, and the
inventory that reconciles what the Hub holds with what the card and the files say.

Empty on purpose: importing quantpick.hub.reconcile must not pull in huggingface_hub."""
