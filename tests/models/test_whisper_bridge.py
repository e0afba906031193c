"""espnet2's own Whisper encoder/decoder, built from a config, on the rebuilt local weights."""

import shutil
import subprocess

import jiwer
import pytest
import soundfile as sf
import torch
import whisper
import whisper.audio
from espnet2.asr.decoder.whisper_decoder import OpenAIWhisperDecoder
from espnet2.asr.encoder.whisper_encoder import OpenAIWhisperEncoder

from espnet_p4q.models.whisper_asr import beam_decode, best_hypothesis, build_whisper_asr_model
from espnet_p4q.models.whisper_bridge import local_whisper
from espnet_p4q.models.whisper_tokens import WhisperPreprocessor, hypothesis_text, target_ids, token_list, tokenizer_for
from espnet_p4q.models.whisper_weights import WhisperCacheError, verified_checkpoint
from tiny_whisper import DIMS, NAME, noise_clip, real_base_config, tiny_whisper, tiny_whisper_config  # noqa: F401

TOKENIZER = tokenizer_for(DIMS.n_vocab)


@pytest.fixture(scope="module")
def built(tiny_whisper_config):
    model, args = build_whisper_asr_model(tiny_whisper_config)
    return model.eval(), args


def test_espnet2_builds_whisper_with_the_cached_weights(built, tiny_whisper):
    model, args = built
    _, ref = tiny_whisper
    assert isinstance(model.encoder, OpenAIWhisperEncoder) and isinstance(model.decoder, OpenAIWhisperDecoder)
    assert model.ctc is None and model.vocab_size == DIMS.n_vocab
    assert (model.sos, model.eos) == (TOKENIZER.sot, TOKENIZER.eot)
    assert torch.equal(model.encoder.encoders.conv1.weight, ref.encoder.conv1.weight)
    assert torch.equal(model.decoder.decoders.blocks[1].mlp[2].weight, ref.decoder.blocks[1].mlp[2].weight)
    assert torch.equal(model.decoder.decoders.token_embedding.weight, ref.decoder.token_embedding.weight)
    assert args.token_list[TOKENIZER.sot] == "<|startoftranscript|>"


def test_the_bridge_is_undone_on_exit(tiny_whisper):
    cache, ref = tiny_whisper
    original, had_n_mels = whisper.load_model, hasattr(whisper.audio, "N_MELS")
    with local_whisper():
        assert whisper.audio.N_MELS == 80
        loaded = whisper.load_model(NAME, download_root=str(cache), device="cpu")
        assert torch.equal(loaded.decoder.ln.weight, ref.decoder.ln.weight)
    assert whisper.load_model is original and hasattr(whisper.audio, "N_MELS") == had_n_mels


def test_encoder_and_decoder_compute_what_openai_whisper_computes(built, tiny_whisper):
    model, _ = built
    _, ref = tiny_whisper
    audio = noise_clip(seconds=2 * DIMS.n_audio_ctx / 100)  # the encoder's full context
    ys = torch.tensor([list(TOKENIZER.sot_sequence_including_notimestamps) + [440, 1002]])
    with torch.no_grad():
        enc, enc_lens, _ = model.encoder(audio[None], torch.tensor([audio.numel()]))
        ref_enc = ref.encoder(whisper.log_mel_spectrogram(audio)[None])
        dec, _ = model.decoder(enc, enc_lens, ys, torch.tensor([ys.shape[1]]))
        ref_dec = ref.decoder(ys, ref_enc)
    assert enc.shape == ref_enc.shape and int(enc_lens[0]) == DIMS.n_audio_ctx
    torch.testing.assert_close(enc, ref_enc, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(dec, ref_dec, rtol=1e-4, atol=1e-4)


def _openai_greedy(ref, audio, max_tokens):
    """Greedy decoding with openai-whisper's own modules, unpadded features as espnet feeds."""
    mel = whisper.log_mel_spectrogram(audio)[None]
    x = torch.nn.functional.gelu(ref.encoder.conv2(torch.nn.functional.gelu(ref.encoder.conv1(mel))))
    x = x.permute(0, 2, 1) + ref.encoder.positional_embedding[: x.shape[2]]
    for block in ref.encoder.blocks:
        x = block(x)
    feats = ref.encoder.ln_post(x)
    ys, score = list(TOKENIZER.sot_sequence_including_notimestamps), 0.0
    for _ in range(max_tokens):
        logp = ref.decoder(torch.tensor([ys]), feats)[0, -1].log_softmax(-1)
        nxt = int(logp.argmax())
        ys.append(nxt)
        score += float(logp[nxt])
        if nxt == TOKENIZER.eot:
            break
    return ys, score


def test_greedy_decoding_matches_openai_whisper(built, tiny_whisper):
    model, _ = built
    _, ref = tiny_whisper
    audio = noise_clip(seconds=1.0)
    primer = list(TOKENIZER.sot_sequence_including_notimestamps)
    with torch.no_grad():
        expected, score = _openai_greedy(ref, audio, DIMS.n_text_ctx - len(primer))
    hyp = best_hypothesis(model, audio, TOKENIZER, beam_size=1)
    got = hyp.yseq.tolist()
    assert len(expected) > len(primer) + 3  # the random model says something before stopping
    strip = lambda ys: ys[:-1] if ys[-1] == TOKENIZER.eot else ys  # noqa: E731
    assert strip(got) == strip(expected)
    # same log-probabilities step by step (espnet adds no score for an end token forced at max length)
    assert float(hyp.score) == pytest.approx(score, rel=1e-4, abs=1e-3)
    assert beam_decode(model, audio, TOKENIZER, beam_size=1) == hypothesis_text(TOKENIZER, expected)


def test_a_changed_cache_stops_the_build(tiny_whisper, tiny_whisper_config, tmp_path):
    cache, _ = tiny_whisper
    config = tiny_whisper_config.read_text().replace(str(cache), str(tmp_path))
    (tmp_path / "config.yaml").write_text(config)
    for f in (f"{NAME}.pt", f"{NAME}.json"):
        shutil.copy(cache / f, tmp_path / f)
    with open(tmp_path / f"{NAME}.pt", "r+b") as f:
        f.seek(2000)
        f.write(b"\xff\xfe")
    with pytest.raises(WhisperCacheError, match="differs"):
        build_whisper_asr_model(tmp_path / "config.yaml")


def test_token_list_has_one_unique_entry_per_id():
    tokens = token_list(TOKENIZER)
    assert len(tokens) == len(set(tokens)) == DIMS.n_vocab
    assert tokens[TOKENIZER.eot] == "<|endoftext|>" and tokens[TOKENIZER.no_timestamps] == "<|notimestamps|>"
    assert all(t and not any(c.isspace() for c in t) for t in tokens)


@pytest.mark.skipif(shutil.which("flite") is None, reason="flite not installed")
def test_real_whisper_base_transcribes_a_synthesised_sentence(tmp_path):
    """The real model through espnet2: build, load, greedy-decode a flite sentence."""
    config = real_base_config(tmp_path)
    verified_checkpoint(tmp_path / "cache", "base")
    tok = tokenizer_for(51865)
    model, _ = build_whisper_asr_model(config)
    text = "the quick brown fox jumps over the lazy dog"
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(tmp_path / "a.wav")], check=True)
    audio, rate = sf.read(tmp_path / "a.wav", dtype="float32")
    assert rate == 16000
    hyp = beam_decode(model.eval(), torch.from_numpy(audio), tok, beam_size=1)
    words = jiwer.RemovePunctuation()(hyp.lower())
    assert jiwer.wer(text, words) <= 0.25, hyp
    # training targets in the form espnet2's loss expects: the right sentence scores far better
    losses = {}
    for sentence in ("The quick brown fox jumps over the lazy dog.", "Nobody knows where the money went."):
        ys = torch.from_numpy(WhisperPreprocessor(tok)("u", {"text": sentence})["text"])[None]
        with torch.no_grad():
            loss, stats, _ = model(speech=torch.from_numpy(audio)[None], speech_lengths=torch.tensor([len(audio)]),
                                   text=ys, text_lengths=torch.tensor([ys.shape[1]]))
        losses[sentence] = float(loss)
    right, wrong = losses.values()
    assert right < 0.5 * wrong, losses


def test_target_ids_are_the_prompt_then_the_text():
    ids = target_ids(TOKENIZER, "  hello world ")
    prompt = list(TOKENIZER.sot_sequence_including_notimestamps)
    assert ids[: len(prompt) - 1] == prompt[1:] and TOKENIZER.sot not in ids
    assert hypothesis_text(TOKENIZER, [TOKENIZER.sot] + ids + [TOKENIZER.eot]) == "hello world"
    out = WhisperPreprocessor(TOKENIZER)("u1", {"speech": "unchanged", "text": "hello world"})
    assert out["speech"] == "unchanged" and out["text"].tolist() == ids


def test_checkpoints_of_espnet2s_unwrapped_model_load_strictly(tiny_whisper_config):
    """espnet2 alone (no tie, sinusoids stored) writes other key names; they load into ours."""
    import argparse

    from espnet2.tasks.asr import ASRTask

    from espnet_p4q.models.asr_model import resolved_config

    with local_whisper():
        plain = ASRTask.build_model(argparse.Namespace(**resolved_config(tiny_whisper_config)))
    state = plain.state_dict()
    assert "decoder.decoders.token_embedding.weight" in state and "encoder.encoders.positional_embedding" in state
    with torch.no_grad():
        state["decoder.decoders.token_embedding.weight"].mul_(2)
    fresh, _ = build_whisper_asr_model(tiny_whisper_config)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.decoder.decoders.token_embedding.weight, state["decoder.decoders.token_embedding.weight"])
    state = plain.state_dict()
    state["encoder.encoders.positional_embedding"] = state["encoder.encoders.positional_embedding"] + 1
    with pytest.raises(ValueError, match="differs"):
        fresh.load_state_dict(state, strict=True)
