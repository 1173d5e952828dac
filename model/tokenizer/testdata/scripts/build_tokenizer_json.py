"""Assembles the Llama-3 and Qwen2.5 tokenizer.json files of testdata/ from
the published vocabulary and merges files (see ../README.md for where each
input comes from). The pipeline fields are those of the models' published
tokenizer.json files: a Split pre-tokenizer with the model's regex
(Isolated), ByteLevel without its own regex, a ByteLevel decoder, NFC for
Qwen2, ignore_merges for Llama-3.
Usage: python3 build_tokenizer_json.py  (inputs in the current directory)"""
import json

L3RE = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
QRE = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

def tokenizer_json(added, normalizer, regex, vocab, merges, ignore_merges):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": normalizer,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges}}

def merges_of(path):
    return [l.rstrip("\n") for l in open(path, encoding="utf-8") if l.strip() and not l.startswith("#version")]

# Llama 3.1/3.2: 128000 BPE tokens and the 256 special tokens 128000..128255.
names = {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128002: "<|reserved_special_token_0|>",
         128003: "<|reserved_special_token_1|>", 128004: "<|finetune_right_pad_id|>",
         128005: "<|reserved_special_token_2|>", 128006: "<|start_header_id|>", 128007: "<|end_header_id|>",
         128008: "<|eom_id|>", 128009: "<|eot_id|>", 128010: "<|python_tag|>"}
for i in range(128011, 128256):
    names[i] = "<|reserved_special_token_%d|>" % (i - 128011 + 3)
added = [dict(id=i, content=names[i], single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
         for i in range(128000, 128256)]
json.dump(tokenizer_json(added, None, L3RE, json.load(open("llama_encoder.json")), merges_of("llama_vocab.bpe"), True),
          open("llama3_tokenizer.json", "w"), ensure_ascii=False, separators=(",", ":"))

# Qwen2.5: vocab.json, merges.txt and the added tokens of tokenizer_config.json.
cfg = json.load(open("qwen25_tokenizer_config.json"))
qadded = [dict(id=int(k), content=v["content"], single_word=v["single_word"], lstrip=v["lstrip"], rstrip=v["rstrip"],
               normalized=v["normalized"], special=v["special"])
          for k, v in sorted(cfg["added_tokens_decoder"].items(), key=lambda x: int(x[0]))]
json.dump(tokenizer_json(qadded, {"type": "NFC"}, QRE, json.load(open("qwen_vocab.json")), merges_of("qwen_merges.txt"), False),
          open("qwen25_tokenizer.json", "w"), ensure_ascii=False, separators=(",", ":"))
