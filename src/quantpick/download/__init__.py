"""Fetching a planned variant: the plan, the engines that move bytes (engines/), partial files,
joins, the manifest, the lock and progress events."""
