// ggmlref produces the golden vectors of quant/ggml's tests with ggml's own
// implementation (see README.md for the exact build and version). It only
// calls ggml's public API.
//
//   ggmlref gen DIR        writes DIR/input.f32 (the seeded test weights) and,
//                          per type T, DIR/T.blocks (ggml_quantize_chunk, no
//                          imatrix) and DIR/T.f32 (the type traits' to_float
//                          of those blocks).
//   ggmlref read FILE OUT  loads the GGUF FILE with gguf_init_from_file and
//                          writes every tensor, in file order, dequantized to
//                          float32 by ggml, to OUT.
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml.h"
#include "gguf.h"

enum { ROWS = 6, COLS = 512 };

static uint32_t rng_state = 20261206u;

static double uniform(void) {
    // xorshift32: a fixed, documented sequence independent of libc.
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return (rng_state + 0.5) / 4294967296.0;
}

static double gauss(void) {
    double u1 = uniform(), u2 = uniform();
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

static void make_input(float *w) {
    for (int c = 0; c < COLS; c++) {
        w[0 * COLS + c] = (float)gauss();
        w[1 * COLS + c] = (float)(0.02 * gauss());
        w[2 * COLS + c] = (float)(3.0 + 0.5 * gauss());   // all positive
        w[3 * COLS + c] = (float)(-0.01 - uniform());      // all negative
        double v;
        if (c < 32) {
            v = 0;                                        // an all-zero block
        } else if (c < 64) {
            v = 0.5;                                      // a constant block
        } else if (c < 96) {
            v = 1e-7 * gauss();                           // tiny values
        } else {
            v = 0.1 * gauss() * (c % 37 == 0 ? 20.0 : 1.0); // outliers
        }
        w[4 * COLS + c] = (float)v;
        // multiples of 1/8 in [-4, 4]: many exact rounding ties
        w[5 * COLS + c] = (float)((int)(uniform() * 65) - 32) / 8.0f;
    }
}

static int write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "ggmlref: writing %s failed\n", path);
        return 1;
    }
    return 0;
}

static int gen(const char *dir) {
    static const enum ggml_type types[] = {
        GGML_TYPE_Q8_0, GGML_TYPE_Q4_0, GGML_TYPE_Q4_1, GGML_TYPE_Q5_0, GGML_TYPE_Q5_1,
        GGML_TYPE_Q2_K, GGML_TYPE_Q3_K, GGML_TYPE_Q4_K, GGML_TYPE_Q5_K, GGML_TYPE_Q6_K,
    };
    static float w[ROWS * COLS], deq[ROWS * COLS];
    make_input(w);
    if (write_file(dir, "input.f32", w, sizeof w)) return 1;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        enum ggml_type t = types[i];
        const struct ggml_type_traits *tr = ggml_get_type_traits(t);
        size_t size = ggml_row_size(t, COLS) * ROWS;
        void *blocks = calloc(1, size);
        size_t got = ggml_quantize_chunk(t, w, blocks, 0, ROWS, COLS, NULL);
        if (got != size) {
            fprintf(stderr, "ggmlref: %s: quantized %zu bytes, want %zu\n", tr->type_name, got, size);
            return 1;
        }
        tr->to_float(blocks, deq, ROWS * COLS);
        char name[64];
        snprintf(name, sizeof name, "%s.blocks", tr->type_name);
        if (write_file(dir, name, blocks, size)) return 1;
        snprintf(name, sizeof name, "%s.f32", tr->type_name);
        if (write_file(dir, name, deq, sizeof deq)) return 1;
        free(blocks);
    }
    return 0;
}

static int read_gguf(const char *path, const char *out) {
    struct ggml_context *ctx = NULL;
    struct gguf_init_params params = {.no_alloc = false, .ctx = &ctx};
    struct gguf_context *g = gguf_init_from_file(path, params);
    if (!g) {
        fprintf(stderr, "ggmlref: gguf_init_from_file(%s) failed\n", path);
        return 1;
    }
    FILE *f = fopen(out, "wb");
    if (!f) return 1;
    for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
        struct ggml_tensor *t = ggml_get_tensor(ctx, gguf_get_tensor_name(g, i));
        int64_t n = ggml_nelements(t);
        float *buf = malloc(n * sizeof(float));
        if (t->type == GGML_TYPE_F32) {
            memcpy(buf, t->data, n * sizeof(float));
        } else {
            ggml_get_type_traits(t->type)->to_float(t->data, buf, n);
        }
        fwrite(buf, sizeof(float), n, f);
        printf("%s %s [%lld, %lld]\n", t->name, ggml_type_name(t->type), (long long)t->ne[0], (long long)t->ne[1]);
        free(buf);
    }
    gguf_free(g);
    ggml_free(ctx);
    return fclose(f) != 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "gen") == 0) return gen(argv[2]);
    if (argc == 4 && strcmp(argv[1], "read") == 0) return read_gguf(argv[2], argv[3]);
    fprintf(stderr, "usage: ggmlref gen DIR | ggmlref read FILE.gguf OUT.f32\n");
    return 2;
}
