"""Convert a CTranslate2 Whisper model (``model.bin``) into a transformers ``WhisperForConditionalGeneration``.

Only CTranslate2 weights ship in the package registries, and users often already have them; the torch
engine runs the same weights after this conversion. The ``model.bin`` layout is the one written by
``ctranslate2.specs.model_spec.ModelSpec._serialize`` (binary version 6): a header, then each variable
as name, shape, dtype id and raw bytes, then aliases. Variable names follow ``WhisperSpec``; the
mapping below inverts CTranslate2's own transformers → CTranslate2 converter (fused q/k/v projections
are split again; Whisper's key projections have no bias, CTranslate2 stores zeros there).

    python -m pipeline.whisper_convert CT2_MODEL_DIR OUTPUT_DIR
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

# Order of CTranslate2's DataType enum (include/ctranslate2/types.h); bfloat16 is read as raw uint16.
_DTYPES = (np.float32, np.int8, np.int16, np.int32, np.float16, np.uint16)
_BFLOAT16 = 5
_SUPPORTED_VERSIONS = range(5, 7)


class ConversionError(ValueError):
    """The folder is not a CTranslate2 Whisper model this converter understands."""


def read_ct2_variables(model_bin: Path) -> dict[str, np.ndarray]:
    """All variables of a CTranslate2 ``model.bin`` as float32/int arrays, aliases resolved and int8
    weights dequantised with their ``weight_scale``."""
    data = memoryview(model_bin.read_bytes())
    pos = 0

    def unpack(fmt: str) -> Any:
        nonlocal pos
        (value,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        size = unpack("H")
        value = bytes(data[pos : pos + size - 1]).decode()
        pos += size
        return value

    version = unpack("I")
    if version not in _SUPPORTED_VERSIONS:
        raise ConversionError(f"{model_bin}: CTranslate2 binary version {version} is not supported (5-6 are)")
    spec = string()
    if spec != "WhisperSpec":
        raise ConversionError(f"{model_bin} holds a {spec}, not a Whisper model")
    unpack("I")  # spec revision
    raw: dict[str, np.ndarray] = {}
    for _ in range(unpack("I")):
        name = string()
        shape = tuple(unpack("I") for _ in range(unpack("B")))
        dtype_id = unpack("B")
        size = unpack("I")
        array = np.frombuffer(data[pos : pos + size], dtype=_DTYPES[dtype_id]).reshape(shape)
        if dtype_id == _BFLOAT16:
            array = (array.astype(np.uint32) << 16).view(np.float32)
        raw[name] = array
        pos += size
    for _ in range(unpack("I")):
        alias, target = string(), string()
        raw[alias] = raw[target]
    return _dequantised(raw)


def _dequantised(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = {}
    for name, value in raw.items():
        if name.endswith("weight_scale"):
            continue
        scale = raw.get(name + "_scale") if name.endswith("weight") else None
        if scale is not None and value.dtype in (np.int8, np.int16):
            value = value.astype(np.float32) / np.asarray(scale, np.float32).reshape(-1, *[1] * (value.ndim - 1))
        out[name] = value.astype(np.float32) if value.dtype.kind == "f" else value
    return out


def _count_layers(variables: dict[str, np.ndarray], stack: str) -> int:
    return len({match.group(1) for name in variables if (match := re.match(rf"{stack}/layer_(\d+)/", name))})


def _special_ids(model_dir: Path) -> dict[str, int]:
    vocab = json.loads((model_dir / "tokenizer.json").read_text())["added_tokens"]
    ids = {token["content"]: token["id"] for token in vocab}
    return {"eot": ids["<|endoftext|>"], "sot": ids["<|startoftranscript|>"]}


def transformers_config(model_dir: Path, variables: dict[str, np.ndarray]):
    """A ``WhisperConfig`` with the shapes found in ``variables`` and the ids of ``model_dir``'s tokenizer."""
    from transformers import WhisperConfig

    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    ct2_config = json.loads((model_dir / "config.json").read_text()) if (model_dir / "config.json").exists() else {}
    special = _special_ids(model_dir)
    return WhisperConfig(
        vocab_size=int(vocab_size),
        num_mel_bins=int(variables["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(variables, "encoder"),
        decoder_layers=_count_layers(variables, "decoder"),
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        pad_token_id=special["eot"],
        bos_token_id=special["eot"],
        eos_token_id=special["eot"],
        decoder_start_token_id=special["sot"],
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        tie_word_embeddings=True,
    )


def _linear(out: dict, prefix: str, variables: dict, source: str) -> None:
    out[f"{prefix}.weight"] = variables[f"{source}/weight"]
    if f"{source}/bias" in variables:
        out[f"{prefix}.bias"] = variables[f"{source}/bias"]


def _norm(out: dict, prefix: str, variables: dict, source: str) -> None:
    out[f"{prefix}.weight"] = variables[f"{source}/gamma"]
    out[f"{prefix}.bias"] = variables[f"{source}/beta"]


def _split_projections(out: dict, prefix: str, variables: dict, source: str, names: tuple[str, ...]) -> None:
    weights = np.split(variables[f"{source}/weight"], len(names))
    biases = np.split(variables[f"{source}/bias"], len(names))
    for name, weight, bias in zip(names, weights, biases, strict=True):
        out[f"{prefix}.{name}.weight"] = weight
        if name != "k_proj":  # Whisper's key projections have no bias (CTranslate2 stores zeros)
            out[f"{prefix}.{name}.bias"] = bias


def _layer(out: dict, prefix: str, variables: dict, source: str, decoder: bool) -> None:
    _split_projections(out, f"{prefix}.self_attn", variables, f"{source}/self_attention/linear_0", ("q_proj", "k_proj", "v_proj"))
    _linear(out, f"{prefix}.self_attn.out_proj", variables, f"{source}/self_attention/linear_1")
    _norm(out, f"{prefix}.self_attn_layer_norm", variables, f"{source}/self_attention/layer_norm")
    if decoder:
        _linear(out, f"{prefix}.encoder_attn.q_proj", variables, f"{source}/attention/linear_0")
        _split_projections(out, f"{prefix}.encoder_attn", variables, f"{source}/attention/linear_1", ("k_proj", "v_proj"))
        _linear(out, f"{prefix}.encoder_attn.out_proj", variables, f"{source}/attention/linear_2")
        _norm(out, f"{prefix}.encoder_attn_layer_norm", variables, f"{source}/attention/layer_norm")
    _linear(out, f"{prefix}.fc1", variables, f"{source}/ffn/linear_0")
    _linear(out, f"{prefix}.fc2", variables, f"{source}/ffn/linear_1")
    _norm(out, f"{prefix}.final_layer_norm", variables, f"{source}/ffn/layer_norm")


def transformers_state_dict(variables: dict[str, np.ndarray], config) -> dict[str, np.ndarray]:
    """transformers parameter names → arrays, from CTranslate2 ``variables``."""
    out: dict[str, np.ndarray] = {}
    for stack in ("encoder", "decoder"):
        out[f"model.{stack}.embed_positions.weight"] = variables[f"{stack}/position_encodings/encodings"]
        _norm(out, f"model.{stack}.layer_norm", variables, f"{stack}/layer_norm")
        layers = config.encoder_layers if stack == "encoder" else config.decoder_layers
        for i in range(layers):
            _layer(out, f"model.{stack}.layers.{i}", variables, f"{stack}/layer_{i}", decoder=stack == "decoder")
    for conv in ("conv1", "conv2"):
        _linear(out, f"model.encoder.{conv}", variables, f"encoder/{conv}")
    out["model.decoder.embed_tokens.weight"] = variables["decoder/embeddings/weight"]
    out["proj_out.weight"] = variables.get("decoder/projection/weight", variables["decoder/embeddings/weight"])
    return out


def load_ct2_as_transformers(model_dir: str | Path):
    """A ``WhisperForConditionalGeneration`` (float32, CPU) with the weights of a CTranslate2 folder."""
    import torch
    from transformers import WhisperForConditionalGeneration

    model_dir = Path(model_dir)
    variables = read_ct2_variables(model_dir / "model.bin")
    config = transformers_config(model_dir, variables)
    state = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in transformers_state_dict(variables, config).items()}
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    return model.eval()


def convert(model_dir: str | Path, output_dir: str | Path) -> Path:
    """Write a transformers Whisper folder (safetensors, config, tokenizer) from a CTranslate2 one."""
    output = Path(output_dir)
    model = load_ct2_as_transformers(model_dir)
    model.save_pretrained(output)
    for name in ("tokenizer.json", "preprocessor_config.json"):
        if (Path(model_dir) / name).exists():
            shutil.copy(Path(model_dir) / name, output / name)
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Convert a CTranslate2 Whisper model to transformers' format.")
    parser.add_argument("model_dir", help="CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json)")
    parser.add_argument("output_dir", help="folder for the transformers model")
    args = parser.parse_args(argv)
    print(convert(args.model_dir, args.output_dir))


if __name__ == "__main__":
    main()
