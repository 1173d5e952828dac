// llamacpp_decode times llama.cpp's decode step as BenchmarkGenerateDecode
// times golora's (see README.md). It only calls llama.cpp's public API.
//
//   llamacpp_decode quantize IN OUT TYPE
//       llama_model_quantize IN to OUT with llama.cpp's own recipe for TYPE
//       (q4_0 or q8_0), as `llama-quantize IN OUT TYPE` does: for q4_0 the
//       output head (the tied token_embd) becomes Q6_K.
//   llamacpp_decode decode MODEL THREADS STEPS
//       a 16-token prefill, untimed, then STEPS one-token decode steps at
//       positions 16 to the model's context length, the prefill redone,
//       untimed, whenever the context is full; prints tokens/s over the
//       steps and the fastest step's rate.
//
// Set GGML_LIB_DIR to the directory of libggml-cpu-*.so.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int quantize(const char *in, const char *out, const char *type) {
    llama_model_quantize_params p = llama_model_quantize_default_params();
    if (strcmp(type, "q4_0") == 0) {
        p.ftype = LLAMA_FTYPE_MOSTLY_Q4_0;
    } else if (strcmp(type, "q8_0") == 0) {
        p.ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
    } else {
        fprintf(stderr, "llamacpp_decode: type %s: want q4_0 or q8_0\n", type);
        return 2;
    }
    return (int)llama_model_quantize(in, out, &p);
}

static int decode(const char *path, int threads, int steps) {
    struct llama_model *model = llama_model_load_from_file(path, llama_model_default_params());
    if (!model) {
        fprintf(stderr, "llamacpp_decode: cannot load %s\n", path);
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = llama_model_n_ctx_train(model);
    cp.n_batch = 16;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    // The ids do not matter to the speed; golora's benchmark draws its own.
    llama_token prompt[16];
    for (int i = 0; i < 16; i++) prompt[i] = 100 + 37 * i;
    int pos = (int)cp.n_ctx;
    double spent = 0, fastest = 1e9;
    for (int i = 0; i < steps; i++) {
        if (pos == (int)cp.n_ctx) {
            llama_memory_clear(llama_get_memory(ctx), true);
            if (llama_decode(ctx, llama_batch_get_one(prompt, 16)) != 0) return 1;
            pos = 16;
        }
        double start = now();
        if (llama_decode(ctx, llama_batch_get_one(&prompt[i % 16], 1)) != 0) {
            fprintf(stderr, "llamacpp_decode: decode failed at position %d\n", pos);
            return 1;
        }
        // As golora's Step returns them, the logits are ready when the
        // step ends: reading them waits for nothing more.
        (void)llama_get_logits_ith(ctx, -1);
        double d = now() - start;
        spent += d;
        if (d < fastest) fastest = d;
        pos++;
    }
    printf("llama.cpp %s %d threads: %.1f tokens/s, %.1f fastest-step-tokens/s\n", path, threads, steps / spent,
           1 / fastest);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

int main(int argc, char **argv) {
    // The CPU backends sit next to the libraries, not next to this program.
    const char *dir = getenv("GGML_LIB_DIR");
    if (dir) {
        ggml_backend_load_all_from_path(dir);
    } else {
        ggml_backend_load_all();
    }
    llama_backend_init();
    if (argc == 5 && strcmp(argv[1], "quantize") == 0) return quantize(argv[2], argv[3], argv[4]);
    if (argc == 5 && strcmp(argv[1], "decode") == 0) return decode(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr, "usage: llamacpp_decode quantize IN OUT TYPE | llamacpp_decode decode MODEL THREADS STEPS\n");
    return 2;
}
