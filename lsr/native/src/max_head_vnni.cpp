// AVX-512 VNNI screen: 16 vocabulary rows x 8 tokens of int32 sums per inner step, each packed
// row block loaded once per 8 tokens; float32 recompute only where the bound beats the running max.
#include "max_head.hpp"

#if defined(LSR_X86_KERNELS)
#include <immintrin.h>

namespace lsrhead {

static inline float dot512(const float* a, const float* b, uint32_t n) {
    __m512 s = _mm512_setzero_ps();
    uint32_t i = 0;
    for (; i + 16 <= n; i += 16) s = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s);
    float r = _mm512_reduce_add_ps(s);
    for (; i < n; ++i) r += a[i] * b[i];
    return r;
}

void project_avx512(const Head& h, const float* r, float* rh) {
    project_impl(h, r, rh);
}

// 4 bytes broadcast to all 16 lanes (an unaligned, aliasing-safe load).
static inline __m512i bcast(const uint8_t* p) { return _mm512_broadcastd_epi32(_mm_loadu_si32(p)); }

// int32 sums of 8 consecutive tokens (uint8 + 128 offset) against one packed 16-row block.
static inline __attribute__((always_inline)) void dots8(const int8_t* P, const uint8_t* X, uint32_t stride,
                                                        uint32_t K, __m512i* out) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (uint32_t k = 0; k < K; ++k) {
        const __m512i u = _mm512_loadu_si512(P + size_t(k) * 64);
        a0 = _mm512_dpbusd_epi32(a0, bcast(X + 4 * k), u);
        a1 = _mm512_dpbusd_epi32(a1, bcast(X + 1u * stride + 4 * k), u);
        a2 = _mm512_dpbusd_epi32(a2, bcast(X + 2u * stride + 4 * k), u);
        a3 = _mm512_dpbusd_epi32(a3, bcast(X + 3u * stride + 4 * k), u);
        a4 = _mm512_dpbusd_epi32(a4, bcast(X + 4u * stride + 4 * k), u);
        a5 = _mm512_dpbusd_epi32(a5, bcast(X + 5u * stride + 4 * k), u);
        a6 = _mm512_dpbusd_epi32(a6, bcast(X + 6u * stride + 4 * k), u);
        a7 = _mm512_dpbusd_epi32(a7, bcast(X + 7u * stride + 4 * k), u);
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3; out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7;
}

void text_vnni(const Head& h, const Tokens& tk, std::vector<uint32_t>& idx, std::vector<float>& val,
               uint64_t& exact) {
    const uint32_t K = h.sdim4 / 4;
    alignas(64) float best[kLanes];
    for (uint32_t b = 0; b < h.blocks; ++b) {
        const int8_t* P = h.packed.data() + size_t(b) * K * 64;
        const size_t r0 = size_t(b) * kLanes;
        const __m512 su = _mm512_loadu_ps(&h.scale[r0]);
        const __m512 bias = _mm512_loadu_ps(&h.bias_up[r0]);
        const __m512 nu = _mm512_loadu_ps(&h.norm[r0]);
        const __m512 ru = _mm512_loadu_ps(&h.qerr_up[r0]);
        const __m512 tu = _mm512_loadu_ps(&h.tail[r0]);
        const __m512i qs = _mm512_loadu_si512(&h.qsum128[r0]);
        __m512 bestv = _mm512_setzero_ps();
        for (uint32_t t0 = 0; t0 < tk.count; t0 += 8) {
            // named accumulators in dots8: an indexed array made GCC copy registers every step
            __m512i acc[8];
            dots8(P, tk.q.data() + size_t(t0) * h.sdim4, h.sdim4, K, acc);
            const uint32_t n = tk.count - t0 < 8 ? tk.count - t0 : 8;
            for (uint32_t j = 0; j < n; ++j) {
                const uint32_t t = t0 + j;
                // upper bound: (acc - qsum) s_t s_v + b_v + err_t ||u_v|| + ||x~_t|| qerr'_v + ||x'_t|| ||u'_v||,
                // the float rounding slack folded into err, bias_up and qerr' (see max_head.hpp)
                const __m512 dq = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[j], qs));
                __m512 ub = _mm512_fmadd_ps(dq, _mm512_mul_ps(_mm512_set1_ps(tk.scale[t]), su), bias);
                ub = _mm512_fmadd_ps(_mm512_set1_ps(tk.err[t]), nu, ub);
                ub = _mm512_fmadd_ps(_mm512_set1_ps(tk.qnorm[t]), ru, ub);
                ub = _mm512_fmadd_ps(_mm512_set1_ps(tk.tail[t]), tu, ub);
                __mmask16 m = _mm512_cmp_ps_mask(ub, bestv, _CMP_GT_OQ);
                if (!m) continue;
                _mm512_store_ps(best, bestv);
                const float* xt = tk.x + size_t(t) * h.dim;
                while (m) {
                    const unsigned lane = unsigned(__builtin_ctz(m));
                    m &= m - 1;
                    const size_t v = r0 + lane;
                    if (v >= h.vocab) continue;
                    ++exact;
                    const float e = dot512(&h.weight[v * h.dim], xt, h.dim) + h.bias[v];
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
