"""CTranslate2 reading and the conversion to openai-whisper's format."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from earmark.models import ct2


def _string(s: str) -> bytes:
    b = s.encode() + b"\0"
    return struct.pack("<H", len(b)) + b


def _write_model_bin(path, variables: dict[str, np.ndarray], aliases: dict[str, str]) -> None:
    ids = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int16): 2,
           np.dtype(np.int32): 3, np.dtype(np.float16): 4}
    out = struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<I", 3)
    out += struct.pack("<I", len(variables))
    for name, v in variables.items():
        out += _string(name) + struct.pack("<B", v.ndim) + struct.pack(f"<{v.ndim}I", *v.shape)
        out += struct.pack("<B", ids[v.dtype]) + struct.pack("<I", v.nbytes) + v.tobytes()
    out += struct.pack("<I", len(aliases))
    for a, t in aliases.items():
        out += _string(a) + _string(t)
    path.write_bytes(out)


def test_reader_round_trips_values_shapes_dtypes_and_aliases(tmp_path):
    rng = np.random.default_rng(0)
    variables = {"a/weight": rng.standard_normal((3, 4)).astype(np.float16),
                 "b/scalar": np.array(7, dtype=np.int16),
                 "c/bias": rng.standard_normal(5).astype(np.float32)}
    _write_model_bin(tmp_path / "model.bin", variables, {"d/weight": "a/weight"})
    model = ct2.read_model_bin([tmp_path / "model.bin"])
    assert model.spec == "WhisperSpec" and model.revision == 3
    for k, v in variables.items():
        assert model.variables[k].dtype == v.dtype and model.variables[k].tobytes() == v.tobytes()
    assert model.variables["d/weight"] is model.variables["a/weight"]


def test_reader_accepts_a_file_split_in_parts(tmp_path):
    variables = {"x": np.arange(10, dtype=np.float32)}
    _write_model_bin(tmp_path / "whole.bin", variables, {})
    blob = (tmp_path / "whole.bin").read_bytes()
    (tmp_path / "p1").write_bytes(blob[:20])
    (tmp_path / "p2").write_bytes(blob[20:])
    model = ct2.read_model_bin([tmp_path / "p1", tmp_path / "p2"])
    assert np.array_equal(model.variables["x"], variables["x"])


def test_truncated_file_raises(tmp_path):
    _write_model_bin(tmp_path / "m.bin", {"x": np.arange(10, dtype=np.float32)}, {})
    (tmp_path / "cut.bin").write_bytes((tmp_path / "m.bin").read_bytes()[:30])
    with pytest.raises(ValueError):
        ct2.read_model_bin([tmp_path / "cut.bin"])


@pytest.mark.slow
def test_converted_tiny_en_matches_the_package_bit_for_bit(tmp_path):
    """Every tensor of the converted checkpoint equals its source bytes exactly."""
    import torch

    from earmark.models.loading import BUNDLED, _package_dir, convert_bundled

    pkg = BUNDLED["tiny.en"]
    src = ct2.read_model_bin([_package_dir(pkg.packages[0]) / pkg.files[0]]).variables
    path = convert_bundled("tiny.en", tmp_path / "tiny.en.pt")
    ckpt = torch.load(path, weights_only=True)
    sd = {k: v.numpy() for k, v in ckpt["model_state_dict"].items()}
    assert ckpt["dims"]["n_text_layer"] == 4 and ckpt["dims"]["n_vocab"] == 51864

    def same(a: np.ndarray, b: np.ndarray) -> bool:
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()

    covered = 0
    for side, n in (("encoder", 4), ("decoder", 4)):
        for i in range(n):
            s, d = f"{side}/layer_{i}/self_attention", f"{side}.blocks.{i}.attn"
            fused = np.concatenate([sd[f"{d}.query.weight"], sd[f"{d}.key.weight"], sd[f"{d}.value.weight"]])
            assert same(fused, src[f"{s}/linear_0/weight"])
            bias = np.concatenate([sd[f"{d}.query.bias"], np.zeros_like(sd[f"{d}.query.bias"]),
                                   sd[f"{d}.value.bias"]])
            assert same(bias, src[f"{s}/linear_0/bias"])
            assert same(sd[f"{d}.out.weight"], src[f"{s}/linear_1/weight"])
            assert same(sd[f"{side}.blocks.{i}.mlp.0.weight"], src[f"{side}/layer_{i}/ffn/linear_0/weight"])
            assert same(sd[f"{side}.blocks.{i}.mlp.2.bias"], src[f"{side}/layer_{i}/ffn/linear_1/bias"])
            assert same(sd[f"{side}.blocks.{i}.mlp_ln.weight"], src[f"{side}/layer_{i}/ffn/layer_norm/gamma"])
            covered += 8
            if side == "decoder":
                c, x = f"decoder/layer_{i}/attention", f"decoder.blocks.{i}.cross_attn"
                assert same(sd[f"{x}.query.weight"], src[f"{c}/linear_0/weight"])
                assert same(np.concatenate([sd[f"{x}.key.weight"], sd[f"{x}.value.weight"]]),
                            src[f"{c}/linear_1/weight"])
                assert same(sd[f"{x}.out.bias"], src[f"{c}/linear_2/bias"])
                covered += 3
    assert same(sd["decoder.token_embedding.weight"], src["decoder/embeddings/weight"])
    assert same(sd["decoder.token_embedding.weight"], src["decoder/projection/weight"])  # tied
    assert same(sd["encoder.positional_embedding"], src["encoder/position_encodings/encodings"])
    assert same(sd["encoder.conv1.weight"], src["encoder/conv1/weight"])
    assert same(sd["decoder.ln.weight"], src["decoder/layer_norm/gamma"])

    # the whole state dict, tensor by tensor, against the converter's own mapping
    mapped = ct2.to_whisper_state_dict(ct2.read_model_bin([_package_dir(pkg.packages[0]) / pkg.files[0]]))
    assert mapped.keys() == sd.keys()
    assert all(same(sd[k], mapped[k]) for k in sd)
    assert covered > 50


@pytest.mark.slow
def test_whisper_load_model_reads_the_converted_file(tmp_path):
    import whisper

    from earmark.models.loading import convert_bundled

    model = whisper.load_model(str(convert_bundled("tiny.en", tmp_path / "t.pt")), device="cpu")
    assert model.dims.n_audio_layer == 4 and not model.is_multilingual
