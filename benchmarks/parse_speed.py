"""Parse time of a ~100 KB model card; the target is well under 50 ms.

Run: python benchmarks/parse_speed.py [--kib 100] [--runs 30]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from quantpick.card.markdown import split_front_matter
from quantpick.card.parser import parse_card

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cards"

_FILLER = """
## Example output

> The assistant answered at length, with a table of pros and cons:
>
> | Factor | Option A | Option B |
> | --- | --- | --- |
> | Speed | fast | slow |
> | Cost | low | high |

Some prose about the model, its training data and [a link](https://example.com/page) that a reader
may follow, plus `inline code` and **bold** words. The model supports 32k context.

```python
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained("someone/model")
```

| Task | Version | Metric | Value | | Stderr |
|------|--------:|--------|------:|---|------:|
| arc_challenge | 0 | acc | 58.36 | ± | 1.44 |
| | | acc_norm | 58.02 | ± | 1.44 |
"""


def build_card(target_bytes: int) -> str:
    """Every fixture card once (all the variant layouts), then benchmark and chat filler."""
    parts = [
        split_front_matter(p.read_text(encoding="utf-8"))[1] for p in sorted(FIXTURES.glob("*.md"))
    ]
    text = "\n\n".join(parts)
    while len(text.encode()) < target_bytes:
        text += _FILLER
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--kib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    text = build_card(args.kib * 1024)
    parse_card(text)  # warm-up: imports, compiled regexes, markdown-it rule chains
    times = []
    for i in range(args.runs):
        # a fresh text each run so the inline-parse cache does not flatter the figure
        fresh = text + f"\n\n<!-- run {i} -->\n"
        start = time.perf_counter()
        card = parse_card(fresh)
        times.append(time.perf_counter() - start)
    print(
        f"card {len(text.encode()) / 1024:.0f} KiB, {len(card.variants)} variants: "
        f"median {statistics.median(times) * 1000:.1f} ms, "
        f"min {min(times) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms over {args.runs} runs"
    )


if __name__ == "__main__":
    main()
