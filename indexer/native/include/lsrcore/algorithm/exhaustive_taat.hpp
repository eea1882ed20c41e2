// Exhaustive term-at-a-time (TAAT) scoring: the exact algorithm.
//
// For each query term, walk every block of its posting list (BlockCursor),
// decode it and add weight * impact into a dense u32 accumulator per
// document. Then one pass over the touched doc range [lo, hi] feeds every
// positive accumulator to the top-k queue and zeroes the accumulator again.
// With an allowed-document bitmap (bit d of allowed[d / 64]), only allowed
// documents reach the queue: a filter applied inside scoring, exact, with no
// over-fetching.
// Scores are exact integers (no overflow: see search.cpp), so every kernel,
// and indexer/reference.py, agrees bit for bit, ties going to the smaller doc.
//
// This file is included by src/kernels/taat_<isa>.cpp inside
// namespace lsrcore::kernels::<isa>; the ISA comes from the compiler flags of
// that translation unit. Helpers live in an anonymous namespace.
#pragma once

#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "../posting_cursor.hpp"
#include "../topk_queue.hpp"

namespace lsrcore {
namespace {

/// acc[docs[i]] += w * imps[i] for i < n. (An AVX-512 gather/scatter version
/// measured no faster on the debian workload: the loop is bound by the
/// scattered read-modify-write, not by instruction count.)
inline void accumulate(uint32_t* acc, const uint32_t* docs, const uint32_t* imps, uint32_t n, uint32_t w) {
    for (uint32_t i = 0; i < n; ++i) acc[docs[i]] += w * imps[i];
}

/// The n <= 32 bits of `allowed` starting at bit d (bits past the last word must not be read: callers keep
/// d + n within the bitmap's documents).
inline uint32_t allowed_bits(const uint64_t* allowed, uint32_t d, uint32_t n) {
    const uint32_t word = d >> 6, off = d & 63;
    uint64_t v = allowed[word] >> off;
    if (off + n > 64) v |= allowed[word + 1] << (64 - off);
    return static_cast<uint32_t>(v & ((uint64_t(1) << n) - 1));
}

inline bool is_allowed(const uint64_t* allowed, uint32_t d) {
    return allowed == nullptr || ((allowed[d >> 6] >> (d & 63)) & 1u);
}

/// Offer acc[d] for d in [lo, end) to q in doc order (only allowed documents when `allowed` is given) and zero
/// acc there.
inline void select_and_clear(uint32_t* acc, uint32_t lo, uint32_t end, TopkQueue& q, const uint64_t* allowed) {
    uint32_t d = lo;
    uint32_t thr = q.threshold();
#if defined(__AVX512F__)
    const __m512i zero = _mm512_setzero_si512();
    for (; d + 16 <= end; d += 16) {
        const __m512i v = _mm512_loadu_si512(acc + d);
        if (_mm512_test_epi32_mask(v, v) == 0) continue;
        __mmask16 m = _mm512_cmpgt_epu32_mask(v, _mm512_set1_epi32(static_cast<int>(thr)));
        if (allowed != nullptr) m &= static_cast<__mmask16>(allowed_bits(allowed, d, 16));
        while (m) {
            const uint32_t j = static_cast<uint32_t>(__builtin_ctz(m));
            if (acc[d + j] > thr) {
                q.insert(acc[d + j], d + j);
                thr = q.threshold();
            }
            m &= m - 1;
        }
        _mm512_storeu_si512(acc + d, zero);
    }
#elif defined(__AVX2__)
    const __m256i zero = _mm256_setzero_si256();
    const __m256i bias = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    for (; d + 8 <= end; d += 8) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + d));
        if (_mm256_testz_si256(v, v)) continue;
        const __m256i gt = _mm256_cmpgt_epi32(_mm256_xor_si256(v, bias),
                                              _mm256_xor_si256(_mm256_set1_epi32(static_cast<int>(thr)), bias));
        uint32_t m = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(gt)));
        if (allowed != nullptr) m &= allowed_bits(allowed, d, 8);
        while (m) {
            const uint32_t j = static_cast<uint32_t>(__builtin_ctz(m));
            if (acc[d + j] > thr) {
                q.insert(acc[d + j], d + j);
                thr = q.threshold();
            }
            m &= m - 1;
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + d), zero);
    }
#endif
    for (; d < end; ++d) {
        const uint32_t s = acc[d];
        if (s > thr && is_allowed(allowed, d)) {
            q.insert(s, d);
            thr = q.threshold();
        }
        acc[d] = 0;
    }
}

/// The queue's k best into out, best first; their number. Ends every algorithm.
inline uint32_t write_hits(TopkQueue& q, ScoredDoc* out) {
    const auto& best = q.finalize();
    for (size_t i = 0; i < best.size(); ++i) out[i] = ScoredDoc{best[i].score, best[i].doc};
    return static_cast<uint32_t>(best.size());
}

inline uint32_t exhaustive_taat_impl(const IndexView& ix, const QueryTerm* terms, size_t nterms, uint32_t* acc,
                                     uint32_t k, ScoredDoc* out, uint64_t* postings, const uint64_t* allowed) {
    uint32_t lo = UINT32_MAX, hi = 0;
    uint64_t scored = 0;
    for (size_t j = 0; j < nterms; ++j) {
        BlockCursor c(ix, terms[j].term);
        const uint32_t w = terms[j].weight;
        while (c.next_block()) {
            c.decode();
            lo = c.first_doc() < lo ? c.first_doc() : lo;
            hi = c.last_doc() > hi ? c.last_doc() : hi;
            accumulate(acc, c.docs(), c.impacts(), c.size(), w);
            scored += c.size();
        }
    }
    *postings += scored;
    if (lo > hi) return 0;
    TopkQueue q(k);
    select_and_clear(acc, lo, hi + 1, q, allowed);
    return write_hits(q, out);
}

}  // namespace
}  // namespace lsrcore
