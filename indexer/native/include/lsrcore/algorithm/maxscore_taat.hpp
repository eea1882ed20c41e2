// Term-at-a-time MaxScore (Turtle & Flood, 1995): exact top-k with pruning.
//
// Terms are taken in decreasing order of their largest possible contribution
// c_t = q_t * max impact(t); R_j is the sum of c over terms j, j+1, ...
//
// 1. Accumulate terms exhaustively (as exhaustive_taat.hpp) while much work
//    is left. Before term j, when the postings still to come are worth it,
//    find theta = the k-th best partial score (a SIMD pass over the touched
//    accumulators). Scores only grow, so the final k-th best is >= theta.
// 2. If R_j < theta, no untouched document can reach the top k (it scores at
//    most R_j), nor can one whose partial score s has s + R_j < theta.
//    The others become candidates (doc order); ties are kept (>=) so the
//    tie-break by doc id stays exact.
// 3. The remaining terms only update candidates: each list is merged with the
//    candidate list, skipping every block whose doc range holds no candidate
//    without decoding it. After each term, theta is raised to the k-th best
//    candidate score and candidates that can no longer reach it are dropped.
// 4. The top k of the candidates, with their now complete scores, is the
//    answer: the same documents and scores as exhaustive TAAT, bit for bit.
//
// Included by src/kernels/taat_<isa>.cpp after exhaustive_taat.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "exhaustive_taat.hpp"

namespace lsrcore {
namespace {

/// k-th best score among acc[lo, end) (0 if fewer than k are positive); acc unchanged.
inline uint32_t kth_best(const uint32_t* acc, uint32_t lo, uint32_t end, uint32_t k) {
    TopkQueue q(k);
    uint32_t d = lo;
    uint32_t thr = 0;
#if defined(__AVX512F__)
    for (; d + 16 <= end; d += 16) {
        const __m512i v = _mm512_loadu_si512(acc + d);
        __mmask16 m = _mm512_cmpgt_epu32_mask(v, _mm512_set1_epi32(static_cast<int>(thr)));
        while (m) {
            const uint32_t j = static_cast<uint32_t>(__builtin_ctz(m));
            if (acc[d + j] > thr) {
                q.insert(acc[d + j], d + j);
                thr = q.threshold();
            }
            m &= m - 1;
        }
    }
#elif defined(__AVX2__)
    const __m256i bias = _mm256_set1_epi32(static_cast<int>(0x80000000u));
    for (; d + 8 <= end; d += 8) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + d));
        const __m256i gt = _mm256_cmpgt_epi32(_mm256_xor_si256(v, bias),
                                              _mm256_xor_si256(_mm256_set1_epi32(static_cast<int>(thr)), bias));
        uint32_t m = static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(gt)));
        while (m) {
            const uint32_t j = static_cast<uint32_t>(__builtin_ctz(m));
            if (acc[d + j] > thr) {
                q.insert(acc[d + j], d + j);
                thr = q.threshold();
            }
            m &= m - 1;
        }
    }
#endif
    for (; d < end; ++d) {
        if (acc[d] > thr) {
            q.insert(acc[d], d);
            thr = q.threshold();
        }
    }
    return q.full() ? thr : 0;
}

/// Move documents with acc[d] > 0 and acc[d] >= need into (docs, scores) in
/// doc order, and zero acc[lo, end).
inline void collect_candidates(uint32_t* acc, uint32_t lo, uint32_t end, uint32_t need,
                               std::vector<uint32_t>& docs, std::vector<uint32_t>& scores) {
    const uint32_t bar = need > 0 ? need - 1 : 0;  // acc > bar  <=>  acc >= need (and > 0)
    uint32_t d = lo;
#if defined(__AVX512F__)
    const __m512i zero = _mm512_setzero_si512();
    const __m512i barv = _mm512_set1_epi32(static_cast<int>(bar));
    for (; d + 16 <= end; d += 16) {
        const __m512i v = _mm512_loadu_si512(acc + d);
        if (_mm512_test_epi32_mask(v, v) == 0) continue;
        __mmask16 m = _mm512_cmpgt_epu32_mask(v, barv);
        while (m) {
            const uint32_t j = static_cast<uint32_t>(__builtin_ctz(m));
            docs.push_back(d + j);
            scores.push_back(acc[d + j]);
            m &= m - 1;
        }
        _mm512_storeu_si512(acc + d, zero);
    }
#endif
    for (; d < end; ++d) {
        if (acc[d] > bar) {
            docs.push_back(d);
            scores.push_back(acc[d]);
        }
        acc[d] = 0;
    }
}

inline uint32_t maxscore_taat_impl(const IndexView& ix, const QueryTerm* terms, size_t nterms, uint32_t* acc,
                                   uint32_t k, ScoredDoc* out, uint64_t* postings) {
    // Order terms by their largest contribution, largest first (ties: term id).
    std::vector<QueryTerm> order(terms, terms + nterms);
    auto contrib = [&](const QueryTerm& t) { return uint64_t(t.weight) * ix.term_max[t.term]; };
    std::stable_sort(order.begin(), order.end(),
                     [&](const QueryTerm& a, const QueryTerm& b) { return contrib(a) > contrib(b); });
    std::vector<uint64_t> rest(nterms + 1, 0), rest_postings(nterms + 1, 0);
    for (size_t j = nterms; j-- > 0;) {
        rest[j] = rest[j + 1] + contrib(order[j]);
        rest_postings[j] = rest_postings[j + 1] + ix.term_df[order[j].term];
    }

    uint32_t lo = UINT32_MAX, hi = 0;
    uint64_t scored = 0;
    size_t j = 0;
    bool pruned = false;
    uint32_t theta = 0;
    std::vector<uint32_t> cdocs, cscores;
    int checks = 0;
    for (; j < nterms; ++j) {
        // Worth a look when the remaining postings cost more than two passes over the touched range.
        // theta can never exceed what the terms so far can give, so R_j < theta needs 2 R_j < R_0.
        if (j > 0 && checks < 3 && lo <= hi && 2 * rest[j] < rest[0] && rest_postings[j] > (hi - lo + 1ull) / 4) {
            ++checks;
            theta = kth_best(acc, lo, hi + 1, k);
            if (theta > 0 && rest[j] < theta) {
                const uint32_t need = static_cast<uint32_t>(theta - rest[j]);
                collect_candidates(acc, lo, hi + 1, need, cdocs, cscores);
                pruned = true;
                break;
            }
        }
        BlockCursor c(ix, order[j].term);
        const uint32_t w = order[j].weight;
        while (c.next_block()) {
            c.decode();
            lo = c.first_doc() < lo ? c.first_doc() : lo;
            hi = c.last_doc() > hi ? c.last_doc() : hi;
            accumulate(acc, c.docs(), c.impacts(), c.size(), w);
            scored += c.size();
        }
    }
    if (!pruned) {
        *postings += scored;
        if (lo > hi) return 0;
        TopkQueue q(k);
        select_and_clear(acc, lo, hi + 1, q);
        const auto& best = q.finalize();
        for (size_t i = 0; i < best.size(); ++i) out[i] = ScoredDoc{best[i].score, best[i].doc};
        return static_cast<uint32_t>(best.size());
    }

    std::vector<uint32_t> tmp;
    for (; j < nterms && !cdocs.empty(); ++j) {
        BlockCursor c(ix, order[j].term);
        const uint32_t w = order[j].weight;
        size_t i = 0;
        const size_t n = cdocs.size();
        while (i < n && c.next_block()) {
            if (c.last_doc() < cdocs[i]) continue;  // no candidate in this block: skip undecoded
            if (c.first_doc() > cdocs[i]) {
                while (i < n && cdocs[i] < c.first_doc()) ++i;
                if (i == n || cdocs[i] > c.last_doc()) continue;
            }
            c.decode();
            scored += c.size();
            const uint32_t* docs = c.docs();
            const uint32_t* imps = c.impacts();
            uint32_t p = 0;
            const uint32_t size = c.size();
            for (; i < n && cdocs[i] <= c.last_doc(); ++i) {
                const uint32_t d = cdocs[i];
                while (p < size && docs[p] < d) ++p;
                if (p < size && docs[p] == d) cscores[i] += w * imps[p];
            }
        }
        // Raise theta to the k-th best candidate score, drop what can no longer reach it.
        if (cdocs.size() > k) {
            tmp.assign(cscores.begin(), cscores.end());
            std::nth_element(tmp.begin(), tmp.begin() + (k - 1), tmp.end(), std::greater<uint32_t>());
            theta = std::max(theta, tmp[k - 1]);
        }
        const uint64_t r = rest[j + 1];
        size_t kept = 0;
        for (size_t x = 0; x < cdocs.size(); ++x) {
            if (uint64_t(cscores[x]) + r >= theta) {
                cdocs[kept] = cdocs[x];
                cscores[kept] = cscores[x];
                ++kept;
            }
        }
        cdocs.resize(kept);
        cscores.resize(kept);
    }
    *postings += scored;
    TopkQueue q(k);
    for (size_t x = 0; x < cdocs.size(); ++x) q.insert(cscores[x], cdocs[x]);
    const auto& best = q.finalize();
    for (size_t i = 0; i < best.size(); ++i) out[i] = ScoredDoc{best[i].score, best[i].doc};
    return static_cast<uint32_t>(best.size());
}

}  // namespace
}  // namespace lsrcore
