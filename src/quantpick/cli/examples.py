"""The Examples section of each command's --help (plain strings: --help must start fast)."""

from __future__ import annotations

# "\b" keeps click from re-flowing the lines of the paragraph that follows it
LIST = """\b
Examples:
  quantpick list TheBloke/Mixtral-8x7B-v0.1-GPTQ
  quantpick list turboderp/Llama-3-8B-exl2 --vram 24 --ctx 16k
  quantpick list https://huggingface.co/bartowski/Qwen2.5-7B-Instruct-GGUF --wide
  quantpick list --card README.md --config config.json --vram 12
  quantpick list OWNER/NAME --format json | jq '.chosen.name'
"""

PICK = """\b
Examples:
  BRANCH=$(quantpick pick turboderp/Llama-3-8B-exl2 --vram 24 --ctx 16k)
  quantpick pick OWNER/NAME --vram auto --ctx 32k --kv-cache q4
  quantpick pick OWNER/NAME --vram 24,24 --json
"""

FETCH = """\b
Examples:
  quantpick fetch turboderp/Llama-3-8B-exl2 --vram 24 --ctx 16k
  quantpick fetch turboderp/Llama-3-8B-exl2:6.0bpw
  quantpick fetch OWNER/NAME --revision 6.0bpw          (a branch, as hf download takes it)
  quantpick fetch OWNER/NAME-GGUF --file Q4_K_M          (finds NAME.Q4_K_M.gguf)
  quantpick fetch hf://OWNER/NAME@0123abcd... --local-dir models/x
  quantpick fetch OWNER/NAME --vram 24 --include '*.jinja' --exclude 'README.md'
  QUANTPICK_MODELS=~/models quantpick fetch OWNER/NAME --vram 24   (-> ~/models/OWNER/NAME/VARIANT)
  quantpick fetch meta-llama/Llama-3.1-8B-Instruct --search --vram 24 --ctx 16k
"""

SEARCH = """\b
Examples:
  quantpick search meta-llama/Llama-3.1-8B-Instruct --vram 24 --ctx 16k
  quantpick search mistralai/Mistral-7B-Instruct-v0.2 --vram 8 --quant-format gguf,awq
  quantpick search OWNER/BASE --vram 24 --format json | jq '.chosen'
"""

VERIFY = """\b
Examples:
  quantpick verify ./OWNER__NAME-VARIANT
  quantpick verify models/x --json
"""
