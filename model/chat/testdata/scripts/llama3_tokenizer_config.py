"""Assembles testdata/llama-3.2/tokenizer_config.json and
testdata/llama-3.1/tokenizer_config.json: the chat templates of
meta-llama/Llama-3.2-1B-Instruct (LLAMA3_2_CHAT_TEMPLATE) and
Llama-3.1-8B-Instruct (LLAMA3_3_CHAT_TEMPLATE, which that file maps to Llama
3.1 and 3.3) as quoted, JSON-escaped, in microsoft/onnxruntime-extensions
shared/api/chat_template.cc (commit 8823a54f049b736675474d5926cbec18ae6abc2b),
and the special tokens and settings of those models' tokenizer_config.json.
Usage: python3 llama3_tokenizer_config.py chat_template.cc LLAMA3_2_CHAT_TEMPLATE > tokenizer_config.json"""
import json, re, sys

src = open(sys.argv[1]).read()
body = re.search(r'const char ' + sys.argv[2] + r'\[\] =\s*R"\((.*?)\)";', src, re.S).group(1)
template = json.loads('"' + body + '"')
names = {128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128002: "<|reserved_special_token_0|>",
         128003: "<|reserved_special_token_1|>", 128004: "<|finetune_right_pad_id|>",
         128005: "<|reserved_special_token_2|>", 128006: "<|start_header_id|>", 128007: "<|end_header_id|>",
         128008: "<|eom_id|>", 128009: "<|eot_id|>", 128010: "<|python_tag|>"}
for i in range(128011, 128256):
    names[i] = "<|reserved_special_token_%d|>" % (i - 128011 + 3)
cfg = {"add_bos_token": True,
       "added_tokens_decoder": {str(i): {"content": names[i], "lstrip": False, "normalized": False, "rstrip": False,
                                         "single_word": False, "special": True} for i in range(128000, 128256)},
       "bos_token": "<|begin_of_text|>", "chat_template": template, "clean_up_tokenization_spaces": True,
       "eos_token": "<|eot_id|>", "model_input_names": ["input_ids", "attention_mask"],
       "model_max_length": 131072, "tokenizer_class": "PreTrainedTokenizerFast"}
json.dump(cfg, sys.stdout, ensure_ascii=False, indent=2)
