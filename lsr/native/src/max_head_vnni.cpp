// AVX-512 VNNI screen: 16 vocabulary rows x 16 tokens of int32 sums per inner step, each packed
// row block loaded once per 16 tokens; float32 recompute only where the bound beats the running max.
//
// Throughput notes (measured on a 2-core Xeon, Emerald Rapids): VPDPBUSD issues twice a cycle with
// a latency of 5, so 16 independent accumulators keep it busy where 8 left it waiting; the bound of
// the 16 (token, block) pairs of a tile is computed without a branch and the rare tiles with a
// candidate (under 1% on SPLADE-tiny) take the slow path.
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

// int32 sums of the first N tokens (uint8 + 128 offset) of a tile (Tokens::q: [K][16 tokens][4 bytes])
// against one packed 16-row block, N = 8 or 16; named accumulators: an indexed array made GCC copy
// registers every step.
#define LSR_STEP(i) a##i = _mm512_dpbusd_epi32(a##i, bcast(X + size_t(k) * 64 + 4 * i), u)
static inline __attribute__((always_inline)) void dots16(const int8_t* P, const uint8_t* X, uint32_t K,
                                                         __m512i* out) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    __m512i a8 = a0, a9 = a0, a10 = a0, a11 = a0, a12 = a0, a13 = a0, a14 = a0, a15 = a0;
    for (uint32_t k = 0; k < K; ++k) {
        const __m512i u = _mm512_loadu_si512(P + size_t(k) * 64);
        LSR_STEP(0); LSR_STEP(1); LSR_STEP(2); LSR_STEP(3); LSR_STEP(4); LSR_STEP(5); LSR_STEP(6); LSR_STEP(7);
        LSR_STEP(8); LSR_STEP(9); LSR_STEP(10); LSR_STEP(11); LSR_STEP(12); LSR_STEP(13); LSR_STEP(14); LSR_STEP(15);
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3; out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7;
    out[8] = a8; out[9] = a9; out[10] = a10; out[11] = a11; out[12] = a12; out[13] = a13; out[14] = a14; out[15] = a15;
}

static inline __attribute__((always_inline)) void dots8(const int8_t* P, const uint8_t* X, uint32_t K,
                                                        __m512i* out) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (uint32_t k = 0; k < K; ++k) {
        const __m512i u = _mm512_loadu_si512(P + size_t(k) * 64);
        LSR_STEP(0); LSR_STEP(1); LSR_STEP(2); LSR_STEP(3); LSR_STEP(4); LSR_STEP(5); LSR_STEP(6); LSR_STEP(7);
    }
    out[0] = a0; out[1] = a1; out[2] = a2; out[3] = a3; out[4] = a4; out[5] = a5; out[6] = a6; out[7] = a7;
}
#undef LSR_STEP

void text_vnni(const Head& h, const Tokens& tk, std::vector<uint32_t>& idx, std::vector<float>& val,
               uint64_t& exact) {
    const uint32_t K = h.sdim4 / 4;
    alignas(64) float best[kLanes];
    alignas(64) __m512i acc[16];
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
        for (uint32_t t0 = 0, n = 0; t0 < tk.count; t0 += n) {
            const uint8_t* X = tk.q.data() + tk.at(t0, 0, h.sdim4);  // t0 is a multiple of 16
            n = tk.count - t0;
            if (n > 8) {  // 16 tokens (Tokens pads to 16), or 8 for the last few
                dots16(P, X, K, acc);
                n = n < 16 ? n : 16;
            } else {
                dots8(P, X, K, acc);
            }
            // upper bound: (acc - qsum) s_t s_v + b_v + err_t ||u_v|| + ||x~_t|| qerr'_v + ||x'_t|| ||u'_v||,
            // the float rounding slack folded into err, bias_up and qerr' (see max_head.hpp)
            const TokenBound* tb = tk.bound.data() + t0;
            __mmask16 live[16];
            __mmask16 any = 0;
            for (uint32_t j = 0; j < n; ++j) {
                const __m512 dq = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[j], qs));
                __m512 ub = _mm512_fmadd_ps(_mm512_set1_ps(tb[j].tail), tu, bias);
                ub = _mm512_fmadd_ps(_mm512_set1_ps(tb[j].err), nu, ub);
                ub = _mm512_fmadd_ps(_mm512_set1_ps(tb[j].qnorm), ru, ub);
                ub = _mm512_fmadd_ps(dq, _mm512_mul_ps(_mm512_set1_ps(tb[j].scale), su), ub);
                live[j] = _mm512_cmp_ps_mask(ub, bestv, _CMP_GT_OQ);
                any = any | live[j];
            }
            if (!any) continue;
            // the rare tile with candidates: float32 recompute, each against the best so far (a bound
            // that beat an older, lower best only costs a recompute)
            _mm512_store_ps(best, bestv);
            for (uint32_t j = 0; j < n; ++j) {
                const float* xt = tk.x + size_t(t0 + j) * h.dim;
                for (__mmask16 m = live[j]; m; m &= m - 1) {
                    const unsigned lane = unsigned(__builtin_ctz(m));
                    const size_t v = r0 + lane;
                    if (v >= h.vocab) continue;
                    ++exact;
                    const float e = dot512(&h.weight[v * h.dim], xt, h.dim) + h.bias[v];
                    if (e > best[lane]) best[lane] = e;
                }
            }
            bestv = _mm512_load_ps(best);
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
