// Peak device memory of llama.cpp contexts, as the CUDA driver sees it (cudaMemGetInfo).
//
// Built by benchmarks/llamacpp_calibrate.py on the GPU machine against libllama:
//   g++ -O2 -std=c++17 llamacpp_probe.cpp -I<llama>/include -I<llama>/ggml/include \
//       -I<cuda>/include -L<build>/bin -lllama -lggml -lggml-base -L<cuda>/lib64 -lcudart
// Usage: llamacpp_probe MODEL.gguf N_GPU_LAYERS PLAN
// PLAN: one context per line, "n_ctx flash(0|1) type_k type_v fill(0|1) n_batch n_ubatch".
// One JSON object per line on stdout: the load, then one per context. Memory is the device's
// total in use, so the caller subtracts what was in use before the process started.
#include <cuda_runtime.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "llama.h"

static long long used_bytes() {
    size_t free_b = 0, total_b = 0;
    cudaDeviceSynchronize();
    cudaMemGetInfo(&free_b, &total_b);
    return (long long) (total_b - free_b);
}

static double now_s() {
    using clock = std::chrono::steady_clock;
    return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

// keep llama.cpp's own account of its buffers (model, KV, compute) for the record, drop the rest
static void on_log(ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR || strstr(text, "buffer size") || strstr(text, "flash_attn") ||
        strstr(text, "n_ctx") || strstr(text, "SWA") || strstr(text, "failed")) {
        fputs(text, stderr);
    }
}

static ggml_type type_of(const std::string & name) {
    if (name == "q8_0") return GGML_TYPE_Q8_0;
    if (name == "q4_0") return GGML_TYPE_Q4_0;
    return GGML_TYPE_F16;
}

int main(int argc, char ** argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s MODEL N_GPU_LAYERS PLAN\n", argv[0]);
        return 2;
    }
    llama_log_set(on_log, nullptr);
    cudaFree(nullptr);  // the CUDA context alone, before llama.cpp allocates anything
    const long long used_context = used_bytes();
    llama_backend_init();

    llama_model_params mparams = llama_model_default_params();
    mparams.n_gpu_layers = atoi(argv[2]);
    const double t0 = now_s();
    llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (!model) {
        printf("{\"event\":\"load\",\"error\":\"load failed\"}\n");
        return 1;
    }
    const long long used_model = used_bytes();
    printf("{\"event\":\"load\",\"used_context\":%lld,\"used_model\":%lld,\"load_s\":%.2f}\n",
           used_context, used_model, now_s() - t0);
    fflush(stdout);
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    std::ifstream plan(argv[3]);
    std::string line;
    while (std::getline(plan, line)) {
        std::istringstream in(line);
        int n_ctx = 0, flash = 0, fill = 0, n_batch = 2048, n_ubatch = 512;
        std::string tk, tv;
        if (!(in >> n_ctx >> flash >> tk >> tv >> fill >> n_batch >> n_ubatch)) continue;
        llama_context_params cparams = llama_context_default_params();
        cparams.n_ctx = n_ctx;
        cparams.n_batch = n_batch;
        cparams.n_ubatch = n_ubatch;
        cparams.n_seq_max = 1;
        cparams.flash_attn_type = flash ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cparams.type_k = type_of(tk);
        cparams.type_v = type_of(tv);
        cparams.swa_full = false;  // common/common.h's default: what llama-cli and llama-server run
        cparams.no_perf = true;
        printf("{\"event\":\"context\",\"n_ctx\":%d,\"flash_attn\":%d,\"type_k\":\"%s\",\"type_v\":\"%s\","
               "\"n_batch\":%d,\"n_ubatch\":%d,\"fill\":%d",
               n_ctx, flash, tk.c_str(), tv.c_str(), n_batch, n_ubatch, fill);
        const double t1 = now_s();
        llama_context * ctx = llama_init_from_model(model, cparams);
        if (!ctx) {
            printf(",\"error\":\"context refused\"}\n");
            fflush(stdout);
            continue;
        }
        const long long used_init = used_bytes();
        // llama-cli and llama-server warm up with a tiny decode (common_init_from_params)
        llama_token warm[2] = {1 % n_vocab, 2 % n_vocab};
        int rc = llama_decode(ctx, llama_batch_get_one(warm, 2));
        const long long used_warm = used_bytes();
        long long used_peak = used_warm > used_init ? used_warm : used_init;
        int filled = 2;
        if (fill && rc == 0) {
            std::vector<llama_token> tokens(n_batch);
            while (filled < n_ctx && rc == 0) {
                const int n = std::min(n_batch, n_ctx - filled);
                for (int i = 0; i < n; ++i) tokens[i] = (llama_token) ((7919LL * (filled + i)) % n_vocab);
                rc = llama_decode(ctx, llama_batch_get_one(tokens.data(), n));
                filled += n;
                const long long u = used_bytes();
                if (u > used_peak) used_peak = u;
            }
        }
        printf(",\"used_init\":%lld,\"used_warm\":%lld,\"used_peak\":%lld,\"filled_tokens\":%d,"
               "\"decode_rc\":%d,\"seconds\":%.2f}\n",
               used_init, used_warm, used_peak, filled, rc, now_s() - t1);
        fflush(stdout);
        llama_free(ctx);
    }
    llama_model_free(model);
    return 0;
}
