"""Renders chat templates with Python Jinja2 the way Hugging Face transformers'
apply_chat_template does (chat_template_utils._compile_jinja_template:
ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
a tojson filter built on json.dumps(ensure_ascii=False), raise_exception and
strftime_now globals), and finds the character span of each assistant turn:
[len(render(messages[:i], add_generation_prompt=True)),
 len(render(messages[:i+1]))).
Usage: python3 render_chat.py cases.json > rendered.json"""
import json, sys
from datetime import datetime
import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

def strftime_now(fmt):
    return datetime.now().strftime(fmt)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

def token_text(v):
    if isinstance(v, dict):
        return v.get("content")
    return v

cases = json.load(open(sys.argv[1]))
out = []
for model in cases["models"]:
    cfg = json.load(open(model["tokenizer_config"]))
    tmpl = env.from_string(cfg["chat_template"])
    special = {k: token_text(cfg.get(k)) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
    def render(msgs, gen):
        return tmpl.render(messages=msgs, add_generation_prompt=gen, **special, **cases.get("extra", {}))
    for conv in cases["conversations"]:
        msgs = conv["messages"]
        if conv.get("generation_prompt"):
            out.append({"model": model["name"], "case": conv["name"], "text": render(msgs, True), "spans": []})
            continue
        full = render(msgs, False)
        spans = []
        for i, m in enumerate(msgs):
            if m["role"] != "assistant":
                continue
            a = render(msgs[:i], True)
            b = render(msgs[:i+1], False)
            assert full.startswith(b) and b.startswith(a), (model["name"], conv["name"], i)
            spans.append([len(a), len(b)])
        out.append({"model": model["name"], "case": conv["name"], "text": full, "spans": spans})
json.dump(out, sys.stdout, ensure_ascii=False, indent=1)
