"""A tiny GGUF language model, written by the tests themselves, that always says one sentence.

Tests of code that talks to an inference engine need a real engine (llama.cpp) and a model
it loads, but no model weights can be downloaded here, and a random model answers gibberish
of unpredictable length. This one is built by hand instead: a llama-architecture model
(2 layers, embedding 64, 4 heads, feed-forward 128, context 2048, F32; about 0.5 MB,
written in well under a second) whose reply to any prompt is exactly ``reply`` followed by
the end-of-turn token, at any sampling temperature.

    path = write_tiny_model(tmp_path / "tiny.gguf", reply="the mesh is alive")

How it works. The vocabulary is what llama.cpp's SentencePiece-style tokenizer needs (
``<unk>``, ``<s>``, ``</s>``, the ChatML markers ``<|im_start|>`` and ``<|im_end|>``, the
256 ``<0xNN>`` byte tokens, ``▁`` and printable ASCII) plus one token per word of the reply
(``the``, ``▁mesh``, ``▁is``, ``▁alive``: a piece's ``▁`` is its leading space). Each token's
embedding is one of a few orthogonal directions (a one-hot vector): word *i* of the reply has
its own, and every other token shares one. The transformer blocks are random (seeded) but
small, so the residual stream that reaches the output head is still, to within a few per
cent, the current token's direction. The output head maps each direction to one token with a
logit about 150 above every other: "any other token" to the reply's first word, word *i* to
word *i+1*, the last word to ``<|im_end|>`` (the end-of-sequence token). Whatever the prompt,
its last token is not a reply word, so the model writes the reply one word per token and
stops; a margin of 150 leaves every other token a probability below e^-100 even at
temperature 1 (or 2).

So ``max_tokens=n`` gives exactly the reply's first ``n`` words. The reply's words must be
distinct (the next token depends only on the current one) and at most 63 (one direction of
the 64 each, one for everything else).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

N_EMBD = 64
N_HEAD = 4
N_FF = 128
N_LAYER = 2
N_CTX = 2048
SEED = 20_260_601
# Logit of the predicted token: about MARGIN * 7.7 (the final RMS norm scales a one-hot
# direction by sqrt(N_EMBD) = 8); every other token's is within a few units of 0.
MARGIN = 20.0
# Random block weights: small enough that they shift the residual stream by a few per cent.
LAYER_STD = 0.02

SPECIALS = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
UNK, BOS, EOS_TEXT, IM_START, IM_END = range(len(SPECIALS))
EOS = IM_END

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def reply_pieces(reply: str) -> list[str]:
    """The reply's tokens as vocabulary pieces: the first word as is, later ones with ``▁``."""
    words = reply.split(" ")
    if not reply or any(not w or w != w.strip() for w in words):
        raise ValueError(f"reply must be words separated by single spaces: {reply!r}")
    if len(set(words)) != len(words):
        raise ValueError(f"the reply's words must be distinct: {reply!r}")
    if len(words) > N_EMBD - 1:
        raise ValueError(f"at most {N_EMBD - 1} words in the reply, not {len(words)}")
    return [words[0]] + ["\u2581" + w for w in words[1:]]


def _vocab(pieces: list[str]) -> tuple[list[str], list[float], list[int], list[int]]:
    """Tokens, scores, types, and the reply's token ids."""
    import gguf

    T = gguf.TokenType
    tokens = list(SPECIALS)
    types = [T.UNKNOWN, T.CONTROL, T.CONTROL, T.CONTROL, T.CONTROL]
    tokens += [f"<0x{b:02X}>" for b in range(256)]
    types += [T.BYTE] * 256
    tokens.append("\u2581")
    types.append(T.NORMAL)
    tokens += [chr(c) for c in range(0x21, 0x7F)]
    types += [T.NORMAL] * (0x7F - 0x21)
    index = {t: i for i, t in enumerate(tokens)}
    ids = []
    for piece in pieces:
        if piece not in index:  # a one-character word is already there
            index[piece] = len(tokens)
            tokens.append(piece)
            types.append(T.NORMAL)
        ids.append(index[piece])
    # SentencePiece merges prefer higher scores: longer pieces first.
    scores = [0.0 if ty != T.NORMAL else float(len(t)) - 100.0
              for t, ty in zip(tokens, types, strict=True)]  # built side by side
    return tokens, scores, [int(t) for t in types], ids


def _tensors(n_vocab: int, reply_ids: list[int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)

    def rand(*shape: int, std: float = LAYER_STD) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    # Direction 0 is "not a reply word"; direction i+1 is reply word i.
    embd = np.zeros((n_vocab, N_EMBD), dtype=np.float32)
    embd[:, 0] = 1.0
    for i, tok in enumerate(reply_ids):
        embd[tok] = 0.0
        embd[tok, i + 1] = 1.0
    embd += rand(n_vocab, N_EMBD, std=0.001)

    # Numpy shapes are [out, in] (GGUF stores them reversed, as ggml's ne).
    output = rand(n_vocab, N_EMBD, std=0.001)
    for direction, target in enumerate(reply_ids + [EOS]):
        output[target] = 0.0
        output[target, direction] = MARGIN

    tensors = {
        "token_embd.weight": embd,
        "output_norm.weight": np.ones(N_EMBD, dtype=np.float32),
        "output.weight": output,
    }
    for layer in range(N_LAYER):
        blk = f"blk.{layer}"
        tensors.update({
            f"{blk}.attn_norm.weight": np.ones(N_EMBD, dtype=np.float32),
            f"{blk}.attn_q.weight": rand(N_EMBD, N_EMBD),
            f"{blk}.attn_k.weight": rand(N_EMBD, N_EMBD),
            f"{blk}.attn_v.weight": rand(N_EMBD, N_EMBD),
            f"{blk}.attn_output.weight": rand(N_EMBD, N_EMBD),
            f"{blk}.ffn_norm.weight": np.ones(N_EMBD, dtype=np.float32),
            f"{blk}.ffn_gate.weight": rand(N_FF, N_EMBD),
            f"{blk}.ffn_up.weight": rand(N_FF, N_EMBD),
            f"{blk}.ffn_down.weight": rand(N_EMBD, N_FF),
        })
    return tensors


def write_tiny_model(path: Path, reply: str = "the mesh is alive") -> Path:
    """Write a GGUF model to ``path`` that answers every prompt with exactly ``reply``.

    Deterministic (the same reply gives the same bytes); the file appears whole (written
    beside it, then renamed). Returns ``path``.
    """
    import gguf

    path = Path(path)
    tokens, scores, types, reply_ids = _vocab(reply_pieces(reply))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    try:
        writer.add_name("bzzz-tiny")
        writer.add_context_length(N_CTX)
        writer.add_embedding_length(N_EMBD)
        writer.add_block_count(N_LAYER)
        writer.add_feed_forward_length(N_FF)
        writer.add_head_count(N_HEAD)
        writer.add_head_count_kv(N_HEAD)
        writer.add_rope_dimension_count(N_EMBD // N_HEAD)
        writer.add_layer_norm_rms_eps(1e-5)
        writer.add_vocab_size(len(tokens))
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)

        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_unk_token_id(UNK)
        writer.add_bos_token_id(BOS)
        writer.add_eos_token_id(EOS)
        writer.add_add_bos_token(True)
        writer.add_add_eos_token(False)
        writer.add_chat_template(CHATML)

        for name, array in _tensors(len(tokens), reply_ids).items():
            writer.add_tensor(name, array)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(tmp, path)
    return path
