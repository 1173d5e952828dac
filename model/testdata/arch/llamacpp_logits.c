// llamacpp_logits MODEL.gguf ID... : prints, as JSON, the logits llama.cpp computes at
// every position of the token ids (one batch, all positions' logits).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ggml-backend.h"
#include "llama.h"

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: lllogits MODEL ID...\n"); return 2; }
    const char *dir = getenv("GGML_LIB_DIR");
    if (dir) ggml_backend_load_all_from_path(dir); else ggml_backend_load_all();
    llama_backend_init();
    if (!getenv("LLLOG")) llama_log_set(NULL, NULL);
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    int n = argc - 2;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 64; cp.n_batch = 64; cp.n_ubatch = 64; cp.n_threads = 1; cp.n_threads_batch = 1;
    // float32 KV cache and no flash attention: nothing rounds to f16 on the way.
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED; cp.type_k = GGML_TYPE_F32; cp.type_v = GGML_TYPE_F32;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "cannot create context\n"); return 1; }
    struct llama_batch batch = llama_batch_init(n, 0, 1);
    for (int i = 0; i < n; i++) {
        batch.token[i] = atoi(argv[2 + i]);
        batch.pos[i] = i;
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = n;
    if (llama_decode(ctx, batch) != 0) { fprintf(stderr, "decode failed\n"); return 1; }
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    printf("[");
    for (int i = 0; i < n; i++) {
        const float *l = llama_get_logits_ith(ctx, i);
        printf(i ? ",\n[" : "[");
        for (int j = 0; j < nv; j++) printf(j ? ",%.9g" : "%.9g", l[j]);
        printf("]");
    }
    printf("]\n");
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
