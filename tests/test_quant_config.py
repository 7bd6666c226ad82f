"""config.json `quantization_config` read per branch: what the files say a card left out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qp import run_qp
from quantpick.hub.quant_config import read_quant_config
from quantpick.testing.builder import make_repo
from quantpick.testing.server import HubServer

GPTQ = {"quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": True}
AWQ = {"quant_method": "awq", "bits": 4, "group_size": 128, "version": "gemm", "zero_point": True}
COMPRESSED = {
    "quant_method": "compressed-tensors",
    "format": "pack-quantized",
    "config_groups": {
        "group_0": {
            "targets": ["Linear"],
            "weights": {
                "num_bits": 4,
                "group_size": 128,
                "strategy": "group",
                "actorder": "weight",
            },
        }
    },
}
FP8 = {"quant_method": "fp8", "activation_scheme": "dynamic", "weight_block_size": [128, 128]}
BNB = {"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4"}
EXL2 = {"quant_method": "exl2", "bits": 4.65, "head_bits": 6}


@pytest.mark.parametrize(
    ("config", "want"),
    [
        ({"quantization_config": GPTQ}, ("gptq", 4, None, 32, True, None)),
        (
            {"quantization_config": {**GPTQ, "group_size": -1, "desc_act": False}},
            ("gptq", 4, None, None, False, None),
        ),
        ({"quantization_config": AWQ}, ("awq", 4, None, 128, None, None)),
        ({"quantization_config": COMPRESSED}, ("compressed-tensors", 4, None, 128, True, "group")),
        ({"quantization_config": FP8}, ("fp8", 8, None, None, None, "dynamic")),
        ({"quantization_config": BNB}, ("bitsandbytes", 4, None, None, None, "nf4")),
        ({"quantization_config": EXL2}, ("exl2", 4.65, 6, None, None, None)),
        ({"quantization": {"group_size": 64, "bits": 4}}, ("mlx", 4, None, 64, None, None)),
    ],
)
def test_each_format_reads(config: dict[str, Any], want: tuple[object, ...]) -> None:
    qc = read_quant_config(config)
    assert qc is not None
    assert (qc.method, qc.bits, qc.head_bits, qc.group_size, qc.act_order, qc.scheme) == want


def test_an_unquantized_config_says_nothing() -> None:
    assert read_quant_config({"architectures": ["LlamaForCausalLM"], "hidden_size": 64}) is None


def _list(tmp_path: Path, repo: str, branches: dict[str, dict[str, Any]], readme: str) -> Any:
    make_repo(tmp_path / "hub", repo, branches, readme=readme)
    with HubServer(tmp_path / "hub") as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path / "hf")}
        r = run_qp("list", repo, "--json", env=env)
    assert r.returncode == 0, r.stderr
    return {v["name"]: v for v in json.loads(r.stdout)["variants"]}


def test_single_variant_repo_gets_its_parameters_from_config(tmp_path: Path) -> None:
    config = json.dumps({"model_type": "llama", "quantization_config": COMPRESSED})
    got = _list(
        tmp_path,
        "o/m-W4A16",
        {"main": {"config.json": config, "model.safetensors": 1 << 20}},
        "# m quantized with llm-compressor\n\nSee the benchmarks below.\n",
    )
    main = got["main"]
    assert (main["bits"], main["bits_source"], main["group_size"], main["act_order"]) == (
        4,
        "name",
        128,
        True,
    )
    assert main["extra"]["config_quant_method"] == "compressed-tensors"


def test_branches_each_read_their_own_config(tmp_path: Path) -> None:
    card = (
        "| Branch | Bits | Size |\n|---|---|---|\n"
        "| [main](https://huggingface.co/o/g-GPTQ/tree/main) | 4 | 4 GB |\n"
        "| [gptq-8bit](https://huggingface.co/o/g-GPTQ/tree/gptq-8bit) | 8 | 8 GB |\n"
    )

    def branch(qc: dict[str, Any]) -> dict[str, Any]:
        return {"config.json": json.dumps({"quantization_config": qc}), "m.safetensors": 1024}

    got = _list(
        tmp_path,
        "o/g-GPTQ",
        {"main": branch(GPTQ), "gptq-8bit": branch({**GPTQ, "bits": 8, "group_size": 128})},
        card,
    )
    assert (got["main"]["group_size"], got["main"]["act_order"]) == (32, True)
    assert (got["gptq-8bit"]["group_size"], got["gptq-8bit"]["bits_source"]) == (128, "card")


def test_repo_whose_name_states_no_bits_reads_them_from_config(tmp_path: Path) -> None:
    config = json.dumps({"model_type": "mistral", "quantization_config": AWQ})
    got = _list(
        tmp_path,
        "o/m-AWQ",
        {"main": {"config.json": config, "model.safetensors": 1 << 20}},
        "# m\n\nAn AWQ model. Use it with vLLM.\n",
    )
    (main,) = got.values()
    assert (main["name"], main["format"], main["bits"], main["bits_source"]) == (
        "main",
        "awq",
        4,
        "config",
    )
    assert main["group_size"] == 128
