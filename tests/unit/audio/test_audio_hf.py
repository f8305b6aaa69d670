"""A local Hugging Face audio-classification folder as a `genex explain` SPEC.

Every model here is a tiny randomly initialised one saved to a temporary folder: nothing is
downloaded (HF_HUB_OFFLINE=1 and local_files_only=True).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from genex.audio.models import ModelError, load_model  # noqa: E402
from genex.cli import main  # noqa: E402

RATE = 16000
LABELS = {0: "dog", 1: "cat", 2: "bird"}


def _config(**overrides) -> "transformers.Wav2Vec2Config":
    # a few hidden units, one layer, three small convolutions (stride 20: 800 frames a second)
    kw = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
              conv_dim=(8, 8, 8), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
              num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=2, classifier_proj_size=8,
              # layer norm after every convolution (as wav2vec2-large-lv60): unlike the default
              # group norm it does not hide the clip's offset and scale, so the extractor's
              # normalisation shows in the logits
              feat_extract_norm="layer", conv_bias=True,
              vocab_size=4, num_labels=3, id2label=LABELS,
              label2id={v: k for k, v in LABELS.items()},
              initializer_range=0.5)  # large weights: logits far apart, a clear predicted class
    kw.update(overrides)
    return transformers.Wav2Vec2Config(**kw)


def _save(folder, config=None, *, do_normalize=True, seed=0):
    torch.manual_seed(seed)
    model = transformers.Wav2Vec2ForSequenceClassification(config or _config()).eval()
    model.save_pretrained(folder)
    extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, do_normalize=do_normalize)
    extractor.save_pretrained(folder)
    return model, extractor


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "wav2vec2-tiny"
    model, extractor = _save(folder)
    return folder, model, extractor


def _clip(seconds=0.5, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    # an offset and a scale the extractor's normalisation has to remove
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size) + 0.2).astype(np.float32)


def test_folder_loads_with_labels_rate_and_output(hf_folder):
    folder, _, _ = hf_folder
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors",
                                                 "preprocessor_config.json"}
    loaded = load_model(str(folder))
    assert loaded.labels == ["dog", "cat", "bird"]
    assert loaded.sample_rate == RATE and loaded.input_kind == "waveform"
    assert loaded.output == "softmax" and loaded.spec == str(folder)
    assert not loaded.module.training


@pytest.mark.parametrize("do_normalize", [True, False])
def test_logits_equal_transformers_pipeline(tmp_path, do_normalize):
    model, extractor = _save(tmp_path / "m", do_normalize=do_normalize)
    loaded = load_model(str(tmp_path / "m"))
    # short clips: the population variance transformers uses (not the unbiased one) shows
    clips = np.stack([_clip(0.1, seed=1), 3 * _clip(0.1, seed=2) - 0.5])
    # transformers' own route: the extractor in numpy, then the model
    with torch.no_grad():
        reference = model(**extractor(list(clips), sampling_rate=RATE, return_tensors="pt")).logits
        ours = loaded.module(torch.from_numpy(clips))
    assert reference.abs().max() > 1e-2  # not a trivially zero comparison
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
    assert not torch.allclose(ours[0], ours[1])


def test_gradients_pass_through_the_preprocessing(hf_folder):
    loaded = load_model(str(hf_folder[0]))
    wave = torch.from_numpy(_clip()[None]).requires_grad_(True)
    loaded.module(wave)[0, 0].backward()
    assert wave.grad is not None and wave.grad.abs().sum() > 0
    # normalisation makes the logits blind to the clip's offset: gradients sum to ~0 per clip
    assert abs(float(wave.grad.sum())) < 1e-3 * float(wave.grad.abs().sum())


def test_explain_cli_writes_every_output(tmp_path, hf_folder, monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")
    clip = tmp_path / "clip.wav"
    sf.write(clip, _clip(0.25), RATE)  # short: every RDE step runs the model
    out = tmp_path / "out"
    assert main(["explain", "--model", str(hf_folder[0]), "--audio", str(clip), "--target", "cat",
                 "--components", "tiles:4x4", "--steps", "5", "--n-samples", "2",
                 "--no-in-distribution", "--out", str(out)]) == 0
    assert {"masks.npz", "explanation.json", "mask.png", "kept.wav", "removed.wav",
            "index.html"} <= {p.name for p in out.iterdir()}
    info = json.loads((out / "explanation.json").read_text())
    assert info["model"] == str(hf_folder[0])
    assert info["target"]["index"] == 1 and info["target"]["label"] == "cat"
    assert len(info["scores"]) == 16 and np.isfinite(info["scores"]).all()
    kept, rate = sf.read(out / "kept.wav")
    assert rate == RATE and kept.shape == (RATE // 4,)


def test_unknown_label_lists_the_labels(tmp_path, hf_folder, capsys, monkeypatch):
    monkeypatch.setenv("GENEX_NO_PROGRESS", "1")
    clip = tmp_path / "clip.wav"
    sf.write(clip, _clip(), RATE)
    code = main(["explain", "--model", str(hf_folder[0]), "--audio", str(clip), "--target", "cow",
                 "--steps", "2", "--no-in-distribution", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code != 0 and "cow" in err and all(name in err for name in ("dog", "cat", "bird"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_multi_label_config_uses_sigmoid(tmp_path):
    _save(tmp_path / "m", _config(problem_type="multi_label_classification"))
    loaded = load_model(str(tmp_path / "m"))
    assert loaded.output == "sigmoid" and loaded.labels == ["dog", "cat", "bird"]


def test_a_regression_head_is_refused(tmp_path):
    _save(tmp_path / "m", _config(num_labels=1, id2label={0: "loudness"}, label2id={"loudness": 0}))
    with pytest.raises(ModelError, match="a regression model.*genex explains classifiers"):
        load_model(str(tmp_path / "m"))
    _save(tmp_path / "b", _config(num_labels=1, id2label={0: "speech"}, label2id={"speech": 0},
                                  problem_type="multi_label_classification"))
    assert load_model(str(tmp_path / "b")).output == "sigmoid"  # one sigmoid output: a binary classifier


def test_half_precision_weights_run_in_float32(tmp_path):
    model, extractor = _save(tmp_path / "m")
    model.to(torch.float16).save_pretrained(tmp_path / "half")
    extractor.save_pretrained(tmp_path / "half")
    loaded = load_model(str(tmp_path / "half"))
    assert {p.dtype for p in loaded.module.parameters()} == {torch.float32}
    clip = torch.from_numpy(_clip(0.1)[None])
    with torch.no_grad():
        reference = model.float()(input_values=loaded.module.preprocess(clip)).logits
        torch.testing.assert_close(loaded.module(clip), reference, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore:At least one mel filter")  # AST's default filterbank
def test_unsupported_feature_extractor_is_refused(tmp_path):
    folder = tmp_path / "ast"
    transformers.ASTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=32).save_pretrained(folder)
    transformers.ASTFeatureExtractor().save_pretrained(folder)
    with pytest.raises(ModelError) as info:
        load_model(str(folder))
    message = str(info.value)
    assert "\n" not in message and str(folder) in message
    assert "ASTFeatureExtractor" in message and "package.module:factory" in message


def test_pickled_weights_are_refused(tmp_path):
    folder = tmp_path / "pickled"
    model, extractor = _save(folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match=r"pytorch_model\.bin.*safetensors only") as info:
        load_model(str(folder))
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


def test_folder_without_config_or_extractor_is_refused(tmp_path):
    with pytest.raises(ModelError, match="without config.json"):
        load_model(str(tmp_path))
    folder = tmp_path / "no-extractor"
    _save(folder)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(ModelError, match="no preprocessor_config.json"):
        load_model(str(folder))


def test_frame_classification_is_framewise(tmp_path):
    torch.manual_seed(0)
    model = transformers.Wav2Vec2ForAudioFrameClassification(_config()).eval()
    model.save_pretrained(tmp_path / "m")
    transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE).save_pretrained(tmp_path / "m")
    loaded = load_model(str(tmp_path / "m"))
    assert loaded.output == "framewise" and loaded.labels == ["dog", "cat", "bird"]
    clip = _clip(0.1)
    with torch.no_grad():
        logits = loaded.module(torch.from_numpy(clip[None]))
        extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE)
        reference = model(**extractor(clip, sampling_rate=RATE, return_tensors="pt")).logits
    assert logits.shape == (1, len(clip) // 20 - 1, 3)
    torch.testing.assert_close(logits, reference, atol=1e-5, rtol=0)


def test_nothing_is_downloaded(hf_folder, monkeypatch):
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError("genex tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert load_model(str(hf_folder[0])).labels == ["dog", "cat", "bird"]


def test_without_transformers_the_folder_asks_for_the_extra(hf_folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # `import transformers` fails
    with pytest.raises(ModelError, match=r"needs transformers \(pip install 'genex\[hf\]'\)"):
        load_model(str(hf_folder[0]))


def test_loading_other_specs_does_not_import_transformers():
    code = ("import sys; import genex.audio.models as m; from genex.cli import main; "
            "print('transformers' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"



# WavLM with an attention mask trips a torch deprecation inside transformers (the reference run)
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("family", ["Hubert", "WavLM", "Data2VecAudio"])
def test_other_wav2vec2_extractor_families_match_transformers(tmp_path, family):
    """HuBERT, WavLM and data2vec-audio classifiers share Wav2Vec2FeatureExtractor; their
    extractors ask for an attention mask (all ones for one unpadded clip), which genex omits."""
    kw = _config().to_dict()
    for key in ("architectures", "model_type", "transformers_version", "feat_extract_norm",
                "num_conv_pos_embeddings"):
        kw.pop(key, None)
    if family == "Data2VecAudio":  # layer norm always; a stack of small positional convolutions
        kw.update(num_conv_pos_embeddings=2, conv_pos_kernel_size=3)
    else:
        kw.update(feat_extract_norm="layer", num_conv_pos_embeddings=8)
    config = getattr(transformers, f"{family}Config")(**kw)
    torch.manual_seed(0)
    model = getattr(transformers, f"{family}ForSequenceClassification")(config).eval()
    extractor = transformers.Wav2Vec2FeatureExtractor(sampling_rate=RATE, return_attention_mask=True)
    model.save_pretrained(tmp_path / "m")
    extractor.save_pretrained(tmp_path / "m")
    loaded = load_model(str(tmp_path / "m"))
    assert loaded.labels == ["dog", "cat", "bird"] and loaded.output == "softmax"
    clip = _clip(0.1)
    with torch.no_grad():
        features = extractor(clip, sampling_rate=RATE, return_tensors="pt")
        assert "attention_mask" in features
        reference = model(**features).logits
        ours = loaded.module(torch.from_numpy(clip[None]))
    assert reference.abs().max() > 1e-2
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=0)
