"""Tokenizer and chat-template fixtures for strata's tokenizer tests (test/runtime/tokenizer.test.ts).

Trains three small tokenizers of the kinds released models use with HF `tokenizers`, on the text
below (written for this script, no licence concerns), and records the ids HF computes for a set of
awkward strings and the chat renderings transformers' apply_chat_template produces:
  - bytelevel_bpe: GPT-2 / Llama-3 / Qwen style (ByteLevel pre-tokenizer with the GPT-4 split regex);
  - sp_bpe: SentencePiece-style BPE (Metaspace, byte fallback, <s> prepended by a template);
  - unigram: SentencePiece Unigram (Metaspace).
Tokenizers are deterministic CPU code, so these ids do not depend on the machine.

    python3 tools/golden/make_tokenizer_golden.py test/fixtures/tokenizers

Versions used are written into each golden.json.
"""
import json
import os
import sys

import tokenizers
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
import transformers
from transformers import PreTrainedTokenizerFast

CORPUS = [
    "The quick brown fox jumps over the lazy dog. Then it runs home again, tired but happy.",
    "A compiler turns a description of a model into programs that run on the graphics card.",
    "Layers of attention and state space mixers alternate: seven of one kind, then one of the other.",
    "Numbers like 3.14159, 2048 and 1,000,000 appear in text, as do dates such as 2026-12-05.",
    "Whitespace matters:   several spaces, a tab\there, and new lines\nbetween sentences.",
    "Unicode too: café, naïve, Straße, 東京, Москва, and an emoji or two 🙂🚀.",
    "def add(a, b):\n    return a + b  # code is text as well",
] * 20

STRINGS = [
    "",
    " ",
    "Hello world",
    "Hello  world",
    "   leading and trailing   ",
    "tab\tand\nnew line\r\n",
    "café naïve Straße",
    "東京とМосква",
    "emoji 🙂🚀 and a family 👨‍👩‍👧",
    "numbers 3.14159 and 1,000,000",
    "def add(a, b):\n    return a + b",
    "<|endoftext|> special in the middle <|endoftext|>",
    "unseen: zyxwvq QQQ ~~~ @@@",
]

MESSAGES = [
    [{"role": "user", "content": "Hello!"}],
    [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4."},
        {"role": "user", "content": "And 3+3? Café ☕"},
    ],
]

# A ChatML template (Qwen's layout), the kind most released chat models ship.
CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def bytelevel_bpe():
    tok = Tokenizer(models.BPE())
    split = Regex(
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(split, behavior="isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS, trainer)
    config = {"eos_token": "<|im_end|>", "bos_token": None, "chat_template": CHATML}
    return tok, config


def sp_bpe():
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(vocab_size=500, special_tokens=specials + byte_tokens)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True}
    return tok, config


def unigram():
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=300, special_tokens=["<unk>", "</s>"], unk_token="<unk>")
    tok.train_from_iterator(CORPUS, trainer)
    config = {"eos_token": "</s>", "unk_token": "<unk>"}
    return tok, config


def main(out):
    for name, make in [("bytelevel_bpe", bytelevel_bpe), ("sp_bpe", sp_bpe), ("unigram", unigram)]:
        tok, config = make()
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False, **config}
        with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
            json.dump(config, f, indent=1, ensure_ascii=False)
        fast = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"), **{
            k: v for k, v in config.items() if k != "tokenizer_class"
        })
        golden = {
            "tokenizers": tokenizers.__version__,
            "transformers": transformers.__version__,
            "strings": STRINGS,
            # What transformers' tokenizer(text) gives: special tokens added as the post-processor says.
            "ids": [fast(s)["input_ids"] for s in STRINGS],
            "decoded": [fast.decode(fast(s)["input_ids"], skip_special_tokens=False) for s in STRINGS],
        }
        if config.get("chat_template"):
            golden["chat"] = [
                {"messages": m, "add_generation_prompt": True,
                 "text": fast.apply_chat_template(m, tokenize=False, add_generation_prompt=True)}
                for m in MESSAGES
            ]
        with open(os.path.join(d, "golden.json"), "w") as f:
            json.dump(golden, f, indent=1, ensure_ascii=False)
        print(name, tok.get_vocab_size(), "tokens")


if __name__ == "__main__":
    main(sys.argv[1])
