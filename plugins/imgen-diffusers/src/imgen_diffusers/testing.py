"""Test helpers for the diffusers backend.

The main entry point is `build_tiny_pipeline`, which writes a random-weight
Stable Diffusion pipeline of a few megabytes to disk. It lets tests exercise the
real diffusers loading and generation code paths without network access or
real checkpoints.
"""

from __future__ import annotations

import json
import os
import pathlib
import tempfile

__all__ = ["build_tiny_pipeline"]

_BOS_TOKEN = "<|startoftext|>"
_EOS_TOKEN = "<|endoftext|>"
_END_OF_WORD = "</w>"
_MAX_TOKENS = 77
_HIDDEN_SIZE = 32

# A few merges so the BPE path is exercised on common test prompts
# ("the", "red", "fox", "and", "a"); everything else falls back to single bytes.
_MERGES: tuple[tuple[str, str], ...] = (
    ("t", "h"),
    ("th", "e</w>"),
    ("r", "e"),
    ("re", "d</w>"),
    ("f", "o"),
    ("fo", "x</w>"),
    ("a", "n"),
    ("an", "d</w>"),
)


def _byte_to_unicode() -> dict[int, str]:
    """Map every byte to a printable unicode character, as byte-level BPE expects.

    Printable Latin-1 bytes map to themselves; the remaining bytes (control
    characters, whitespace, ...) are shifted into the range starting at U+0100
    so that no token ever contains whitespace or unprintable characters.

    Returns:
        A dict with one entry for each of the 256 byte values.
    """
    printable = [
        *range(0x21, 0x7E + 1),  # "!" .. "~"
        *range(0xA1, 0xAC + 1),  # inverted "!" .. "not" sign
        *range(0xAE, 0xFF + 1),  # registered sign .. "y" with diaeresis
    ]
    printable_set = set(printable)
    mapping = {byte: chr(byte) for byte in printable}
    next_codepoint = 256
    for byte in range(256):
        if byte not in printable_set:
            mapping[byte] = chr(next_codepoint)
            next_codepoint += 1
    return mapping


def _tokenizer_files() -> tuple[dict[str, int], list[str]]:
    """Build the vocabulary and merge list of the tiny CLIP tokenizer.

    Returns:
        The token-to-id vocabulary and the `merges.txt` lines (header included).
    """
    chars = list(_byte_to_unicode().values())
    tokens = [*chars, *(char + _END_OF_WORD for char in chars)]
    tokens.extend(left + right for left, right in _MERGES)
    tokens.extend((_BOS_TOKEN, _EOS_TOKEN))
    vocab = {token: index for index, token in enumerate(tokens)}

    for left, right in _MERGES:
        missing = {left, right, left + right} - vocab.keys()
        if missing:
            raise AssertionError(f"BPE merge {left!r} + {right!r} uses unknown tokens {missing}")

    merges = ["#version: 0.2", *(f"{left} {right}" for left, right in _MERGES)]
    return vocab, merges


def build_tiny_pipeline(path: str | os.PathLike[str], *, seed: int = 0) -> pathlib.Path:
    """Build a random-weight tiny Stable Diffusion pipeline and save it to `path`.

    The pipeline (CLIP text encoder, UNet, VAE, DDIM scheduler and a byte-level
    CLIP tokenizer) takes about 6.5 MB on disk, produces 64x64 images by
    default and loads with `diffusers.AutoPipelineForText2Image.from_pretrained`.
    It has no safety checker and no feature extractor.

    Args:
        path: Directory to write the pipeline to; created if it does not exist.
        seed: Seed for the random weights; the same seed gives identical weights.

    Returns:
        `path` as a `pathlib.Path`.
    """
    # Imported here so that importing this module stays cheap: torch and
    # diffusers take seconds to import.
    import torch
    from diffusers import (
        AutoencoderKL,
        DDIMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    target = pathlib.Path(path)
    vocab, merges = _tokenizer_files()

    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer_path = pathlib.Path(tokenizer_dir)
        (tokenizer_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (tokenizer_path / "merges.txt").write_text("\n".join(merges) + "\n", encoding="utf-8")
        tokenizer = CLIPTokenizer.from_pretrained(
            tokenizer_dir,
            model_max_length=_MAX_TOKENS,
            bos_token=_BOS_TOKEN,
            eos_token=_EOS_TOKEN,
            pad_token=_EOS_TOKEN,
            unk_token=_EOS_TOKEN,
        )

    # The `type: ignore`s below work around diffusers' typing, not this code: its
    # `register_to_config` decorator is unannotated, and its lazy `__init__` makes
    # type checkers resolve the pipeline class to a dummy placeholder.

    # fork_rng keeps the caller's global torch RNG untouched while still
    # making the weights a pure function of `seed`.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(vocab),
                hidden_size=_HIDDEN_SIZE,
                intermediate_size=37,
                num_hidden_layers=2,
                num_attention_heads=4,
                # Must match the tokenizer, which pads every prompt to this length.
                max_position_embeddings=_MAX_TOKENS,
                bos_token_id=vocab[_BOS_TOKEN],
                eos_token_id=vocab[_EOS_TOKEN],
                pad_token_id=vocab[_EOS_TOKEN],
            )
        )
        unet = UNet2DConditionModel(  # type: ignore[no-untyped-call]
            # Latent size: 64 px images / VAE scale factor 2 (two VAE blocks).
            sample_size=32,
            in_channels=4,
            out_channels=4,
            block_out_channels=(32, 64),
            layers_per_block=1,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=_HIDDEN_SIZE,
            # diffusers reads this as the number of heads per block.
            attention_head_dim=(2, 4),
        )
        vae = AutoencoderKL(  # type: ignore[no-untyped-call]
            sample_size=64,
            in_channels=3,
            out_channels=3,
            block_out_channels=(32, 64),
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
            up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
            latent_channels=4,
        )

    # DDIM with eta=0 (the pipeline default) adds no noise after the initial
    # latents, so output depends only on the per-image generators.
    scheduler = DDIMScheduler(  # type: ignore[no-untyped-call]
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(  # type: ignore[no-untyped-call]
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(target)  # type: ignore[attr-defined]
    return target
