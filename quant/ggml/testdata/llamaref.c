// llamaref checks GGUF models with llama.cpp's own library (see README.md).
// It only calls llama.cpp's public API.
//
//   llamaref quantize IN OUT   llama_model_quantize IN to OUT as
//                              LLAMA_FTYPE_MOSTLY_Q8_0 (what
//                              `llama-quantize IN OUT Q8_0` does), 1 thread.
//   llamaref quantize-q4k-pure IN OUT
//                              the same as LLAMA_FTYPE_MOSTLY_Q4_K_M with
//                              pure set (`llama-quantize --pure IN OUT
//                              Q4_K_M`): every matrix Q4_K, no mixing.
//   llamaref quantize-q4_0 IN OUT
//                              the same as LLAMA_FTYPE_MOSTLY_Q4_0
//                              (`llama-quantize IN OUT Q4_0`), whose recipe
//                              makes the output head (or a tied
//                              token_embd) Q6_K.
//   llamaref logits MODEL      loads MODEL, decodes a fixed prompt of token
//                              ids and prints the last position's logits.
//   llamaref decode MODEL THREADS STEPS
//                              times the decode step as model/infer's
//                              BenchmarkGenerateDecode times golora's: a
//                              16-token prefill, untimed, then STEPS
//                              one-token steps at positions 16 to the
//                              model's context length, the prefill redone,
//                              untimed, when the context is full; prints
//                              tokens/s and the fastest step's rate (see
//                              model/infer/testdata/peers).
//
// Set GGML_LIB_DIR to the directory of libggml-cpu-*.so.
// clock_gettime, under -std=c11.
#define _POSIX_C_SOURCE 199309L
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-backend.h"
#include "llama.h"

static int quantize(const char *in, const char *out, enum llama_ftype ftype, bool pure) {
    llama_model_quantize_params p = llama_model_quantize_default_params();
    p.ftype = ftype;
    p.pure = pure;
    p.nthread = 1;
    return (int)llama_model_quantize(in, out, &p);
}

static int logits(const char *path) {
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *model = llama_model_load_from_file(path, mp);
    if (!model) {
        fprintf(stderr, "llamaref: cannot load %s\n", path);
        return 1;
    }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 64;
    cp.n_batch = 64;
    cp.n_threads = 1;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    llama_token prompt[] = {1, 400, 300, 55, 200, 17, 42, 99};
    int n = sizeof prompt / sizeof prompt[0];
    if (llama_decode(ctx, llama_batch_get_one(prompt, n)) != 0) {
        fprintf(stderr, "llamaref: decode failed\n");
        return 1;
    }
    const float *l = llama_get_logits_ith(ctx, -1);
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
    for (int i = 0; i < nv; i++) printf("%.9g\n", l[i]);
    llama_free(ctx);
    llama_model_free(model);
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int decode(const char *path, int threads, int steps) {
    struct llama_model *model = llama_model_load_from_file(path, llama_model_default_params());
    if (!model) {
        fprintf(stderr, "llamaref: cannot load %s\n", path);
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
            fprintf(stderr, "llamaref: decode failed at position %d\n", pos);
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
    if (argc == 4 && strcmp(argv[1], "quantize") == 0) return quantize(argv[2], argv[3], LLAMA_FTYPE_MOSTLY_Q8_0, false);
    if (argc == 4 && strcmp(argv[1], "quantize-q4k-pure") == 0) return quantize(argv[2], argv[3], LLAMA_FTYPE_MOSTLY_Q4_K_M, true);
    if (argc == 4 && strcmp(argv[1], "quantize-q4_0") == 0) return quantize(argv[2], argv[3], LLAMA_FTYPE_MOSTLY_Q4_0, false);
    if (argc == 3 && strcmp(argv[1], "logits") == 0) return logits(argv[2]);
    if (argc == 5 && strcmp(argv[1], "decode") == 0) return decode(argv[2], atoi(argv[3]), atoi(argv[4]));
    fprintf(stderr,
            "usage: llamaref quantize IN OUT | llamaref quantize-q4k-pure IN OUT | llamaref quantize-q4_0 IN OUT |\n"
            "       llamaref logits MODEL | llamaref decode MODEL THREADS STEPS\n");
    return 2;
}
