# Runs llama.cpp (llamacpp_logits) on the GGUF files TestWriteGGUFMatchesLlamaCpp
# exported and writes model/testdata/arch/<family>/llamacpp.json.
import json, os, subprocess, sys
repo = sys.argv[1]  # the repository root
exp = sys.argv[2]  # GOLORA_LLAMACPP_EXPORT
for fam in ["llama3", "llama_linear", "mistral", "qwen2", "qwen3", "phi3"]:
    g = json.load(open(f"{repo}/model/testdata/arch/{fam}/golden.json"))
    out = {}
    for typ in ["f32", "q8_0"]:
        r = subprocess.run(["./llamacpp_logits", f"{exp}/{fam}.{typ}.gguf"] + [str(t) for t in g["tokens"]], capture_output=True, text=True)
        if r.returncode != 0:
            print(fam, typ, "FAILED", r.stderr[-2000:]); continue
        out[typ] = json.loads(r.stdout)
        ref = g["logits"]
        d = max(abs(a - b) for ra, rb in zip(out[typ], ref) for a, b in zip(ra, rb))
        print(f"{fam} {typ}: max |llama.cpp - numpy reference| = {d:.3g}")
    if len(out) == 2:
        with open(f"{repo}/model/testdata/arch/{fam}/llamacpp.json", "w") as f:
            json.dump(out, f, separators=(",", ":"))
