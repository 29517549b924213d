"""The embedded language model: a byte-level BPE tokenizer trained on the project's own prompt and
answer corpus (`tokenizers`), and a small Llama (`transformers`), built here so that nothing is
fetched from a hub. Training (training/) gives it its weights; `new_model` is its starting point.

    model = new_model()                    # an untrained Hawkeye model around the embedded LM
    model = new_model(lm_path="/models/vicuna-7b")   # or around any local Hugging Face checkpoint
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from stream.llm.hawkeye import VIDEO_TOKEN, HawkeyeConfig, HawkeyeModel, add_lora
from stream.llm.prompts import CATEGORIES, answer_category, corpus

SPECIAL = ["<pad>", "<s>", "</s>", "<unk>", VIDEO_TOKEN]


def build_tokenizer(vocab_size: int = 1024):
    """A byte-level BPE trained on `prompts.corpus()` (any text encodes; the answers' first words
    are single tokens)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", additional_special_tokens=[VIDEO_TOKEN])
    for answer in [" Yes", " No", *(answer_category(c) for c in CATEGORIES)]:
        word = " " + answer.split()[0]              # categories are told apart by their first word
        ids = fast(word, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise RuntimeError(f"answer word {word!r} is {len(ids)} tokens; the fast score needs one")
    return fast


def embedded_lm(vocab_size: int, *, dim: int = 256, layers: int = 4, heads: int = 4):
    """A small Llama: 4 layers of 256, about 3.5 M parameters, real time on two CPU cores."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=vocab_size, hidden_size=dim, intermediate_size=2 * dim, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=1024,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    return LlamaForCausalLM(cfg)


def new_model(cfg: HawkeyeConfig | None = None, *, lm_path: str | Path | None = None, lora: bool = True,
              seed: int = 0) -> HawkeyeModel:
    """An untrained Hawkeye model: the embedded tokenizer and LM, or a local checkpoint directory's
    (its own tokenizer gains the `<video>` token)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    cfg = replace(cfg or HawkeyeConfig(), categories=CATEGORIES)
    if lm_path is None:
        tokenizer = build_tokenizer()
        lm = embedded_lm(len(tokenizer))
    else:
        if not (Path(lm_path) / "config.json").exists():
            raise FileNotFoundError(f"{lm_path} is not a Hugging Face checkpoint directory (no config.json)")
        tokenizer = AutoTokenizer.from_pretrained(lm_path, local_files_only=True)
        tokenizer.add_special_tokens({"additional_special_tokens": [VIDEO_TOKEN]})
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        lm = AutoModelForCausalLM.from_pretrained(lm_path, local_files_only=True)
        lm.resize_token_embeddings(len(tokenizer))
    if lora:
        lm = add_lora(lm, cfg)
    return HawkeyeModel(cfg, lm, tokenizer)
