// AVX-512 VNNI screen: 16 vocabulary rows x 8 tokens of int32 sums per inner step, each packed
// row block loaded once per 8 tokens; float32 recompute only where the bound beats the running max.
#include "max_head.hpp"

#if defined(LSR_X86_KERNELS)
#include <immintrin.h>

#include <cstring>

namespace lsrhead {

static inline float dot512(const float* a, const float* b, uint32_t n) {
    __m512 s = _mm512_setzero_ps();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s);
    float r = _mm512_reduce_add_ps(s);
    for (; i < n; ++i) r += a[i] * b[i];
    return r;
}

void text_vnni(const Head& h, const Tokens& tk, std::vector<uint32_t>& idx, std::vector<float>& val,
               uint64_t& exact) {
    const uint32_t K = h.dim4 / 4;
    alignas(64) float best[kLanes];
    for (uint32_t b = 0; b < h.blocks; ++b) {
        const int8_t* P = h.packed.data() + size_t(b) * K * 64;
        const size_t r0 = size_t(b) * kLanes;
        const __m512 su = _mm512_loadu_ps(&h.scale[r0]);
        const __m512 bias = _mm512_loadu_ps(&h.bias_up[r0]);
        const __m512 nu = _mm512_loadu_ps(&h.norm[r0]);
        const __m512 ru = _mm512_loadu_ps(&h.qerr_up[r0]);
        const __m512i qs = _mm512_loadu_si512(&h.qsum128[r0]);
        __m512 bestv = _mm512_setzero_ps();
        for (uint32_t t0 = 0; t0 < tk.count; t0 += 8) {
            __m512i acc[8];
            for (int j = 0; j < 8; ++j) acc[j] = _mm512_setzero_si512();
            const uint8_t* X = tk.q.data() + size_t(t0) * h.dim4;
            for (uint32_t k = 0; k < K; ++k) {
                const __m512i u = _mm512_loadu_si512(P + size_t(k) * 64);
                for (int j = 0; j < 8; ++j) {
                    int32_t x4;
                    std::memcpy(&x4, X + size_t(j) * h.dim4 + 4 * k, 4);
                    acc[j] = _mm512_dpbusd_epi32(acc[j], _mm512_set1_epi32(x4), u);
                }
            }
            const uint32_t n = tk.count - t0 < 8 ? tk.count - t0 : 8;
            for (uint32_t j = 0; j < n; ++j) {
                const uint32_t t = t0 + j;
                // upper bound: (acc - qsum) * s_t * s_v + b_v + err_t * ||w_v|| + qnorm_t * qerr'_v, where the
                // float rounding slack is folded into bias_up and qerr' (see Head)
                const __m512 dq = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[j], qs));
                __m512 ub = _mm512_fmadd_ps(dq, _mm512_mul_ps(_mm512_set1_ps(tk.scale[t]), su), bias);
                ub = _mm512_fmadd_ps(_mm512_set1_ps(tk.err[t]), nu, ub);
                ub = _mm512_fmadd_ps(_mm512_set1_ps(tk.qnorm[t]), ru, ub);
                __mmask16 m = _mm512_cmp_ps_mask(ub, bestv, _CMP_GT_OQ);
                if (!m) continue;
                _mm512_store_ps(best, bestv);
                const float* xt = tk.x.data() + size_t(t) * h.dim4;
                while (m) {
                    const unsigned lane = unsigned(__builtin_ctz(m));
                    m &= m - 1;
                    const size_t v = r0 + lane;
                    ++exact;
                    const float e = dot512(&h.weight[v * h.dim4], xt, h.dim4) + h.bias[v];
                    if (e > best[lane]) best[lane] = e;
                }
                bestv = _mm512_load_ps(best);
            }
        }
        __mmask16 pos = _mm512_cmp_ps_mask(bestv, _mm512_setzero_ps(), _CMP_GT_OQ);
        if (!pos) continue;
        _mm512_store_ps(best, bestv);
        while (pos) {
            const unsigned lane = unsigned(__builtin_ctz(pos));
            pos &= pos - 1;
            if (r0 + lane < h.vocab) {
                idx.push_back(uint32_t(r0 + lane));
                val.push_back(best[lane]);
            }
        }
    }
}

}  // namespace lsrhead
#endif
