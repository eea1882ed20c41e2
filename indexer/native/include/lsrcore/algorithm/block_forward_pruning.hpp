// Safe block-max pruning that scores doc blocks from a forward index (BMP: Mallia, Suel and Tonellotto,
// "Faster Learned Sparse Retrieval with Block-Max Pruning", SIGIR 2024).
//
// 0. Bounds: ub[b] = sum_j w_j * max_j[b] over the query terms' doc-block maxima (doc_block_max.hpp), as in
//    block_max_pruning.hpp; BlockOrder yields the doc blocks best bound first (ties: smaller block first).
// 1. While a doc block is left whose bound reaches the queue's bar (a lower bound on the k-th best score; an
//    equal score with a smaller doc id still ranks above it, hence >=), the best one is scored exactly from the
//    forward index (doc_block_forward.hpp): each query term is found among the block's sorted entries by a
//    binary search (all terms' searches in lockstep, see lower_bounds), and weight * impact of its entries is
//    added into the accumulators of the block's documents. Those are offered to the
//    queue (allowed documents only) and zeroed.
// No document of a block left over scores more than its bound < the bar <= the final k-th score, so the hits
// equal exhaustive_taat's, scores and ties included. Unlike block_max_pruning, no posting list is read: a block
// costs a merge of about (query terms) x log2(block entries) steps, not the decoding of 128-posting blocks.
// 2. Hand-over (search algorithm "auto"): when the blocks scored plus those still queued above the bar exceed the
//    query's budget (hand_over_budget: what exhaustive search of the same query would cost, in blocks), the blocks
//    are abandoned between two blocks (every accumulator is zero there) and the query is searched exhaustively:
//    the same hits either way, at about the cheaper of the two costs. The queue's bar is known only after the
//    first blocks, so a query pays for its bounds and those first blocks before it is handed over, unless its
//    budget is below what the first check must find queued (the kFirst best blocks, or every block of its
//    commonest term when fewer): then it goes to exhaustive search before any bound is computed.
//
// Included by src/kernels/taat_<isa>.cpp inside namespace lsrcore::kernels::<isa>, like the others.
#pragma once

#include <cstdint>

#include "../doc_block_forward.hpp"
#include "block_max_pruning.hpp"
#include "exhaustive_taat.hpp"

namespace lsrcore {
namespace {

inline constexpr size_t kSearchLanes = 32;  // query terms looked up in lockstep

/// Looking up one query term in one doc block costs about this many postings of exhaustive search (measured on
/// debian, 8-document blocks, one thread).
inline constexpr uint64_t kBlockTermPostings = 50;

/// The most doc blocks worth scoring for a query before exhaustive search is cheaper (its postings over the cost
/// of one block), or 0 when the first check of score_blocks could not pass: it finds at least the kFirst best
/// blocks queued, or every block of the commonest query term when fewer. One pass over the query's terms.
inline uint64_t hand_over_budget(const IndexView& ix, const QueryTerm* terms, size_t nterms, uint32_t shift) {
    uint64_t postings = 0, max_df = 0;
    for (size_t j = 0; j < nterms; ++j) {
        const uint64_t df = ix.term_df[terms[j].term];
        postings += df;
        max_df = df > max_df ? df : max_df;
    }
    const uint64_t budget = postings / (kBlockTermPostings * (nterms > 0 ? nterms : 1));
    const uint64_t at_least = std::min<uint64_t>(kFirst, (max_df + (uint64_t(1) << shift) - 1) >> shift);
    return at_least > budget ? 0 : budget;
}

/// pos[j] = first index e in [begin, end) of doc block b's entries with term[e] >= t[j] (end when none), for
/// j < n <= kSearchLanes. Two levels, each in lockstep over the lanes so that their loads overlap in the memory
/// system (one chained binary search per term was bound by memory latency): a branch-free binary search over the
/// block's directory (every kDirStride-th term: a few cache lines, shared by the lanes) picks the window of
/// kDirStride entries that holds the answer, and four halvings inside it finish (about one cache line a lane).
/// T: the forward index's term id type (16 or 32 bits).
template <class T>
inline void lower_bounds(const T* term, const T* dir, uint64_t begin, uint64_t end, uint64_t nd, const QueryTerm* t,
                         size_t n, uint64_t* pos) {
    if (nd == 0) {
        for (size_t j = 0; j < n; ++j) pos[j] = end;
        return;
    }
    uint64_t p[kSearchLanes];
    for (size_t j = 0; j < n; ++j) p[j] = 0;
    for (uint64_t len = nd; len > 1;) {  // first directory index with dir[i] >= t: in [p, p + len]
        const uint64_t half = len / 2;
        for (size_t j = 0; j < n; ++j) p[j] += half & (uint64_t(0) - uint64_t(dir[p[j] + half] < t[j].term));
        len -= half;
    }
    for (size_t j = 0; j < n; ++j) {
        const uint64_t first_ge = p[j] + (dir[p[j]] < t[j].term ? 1 : 0);  // first directory index >= t[j]
        if (first_ge == 0) {  // term[begin] >= t[j]
            pos[j] = begin;
            p[j] = UINT64_MAX;
        } else {
            p[j] = begin + (first_ge - 1) * kDirStride;  // term[p] < t[j]; the answer is in (p, p + kDirStride]
        }
    }
    for (uint64_t step = kDirStride / 2; step > 0; step /= 2) {  // p: the last entry < t[j] in its window
        for (size_t j = 0; j < n; ++j) {
            if (p[j] == UINT64_MAX) continue;
            const uint64_t c = p[j] + step;
            const uint64_t safe = c < end ? c : end - 1;
            p[j] += step & (uint64_t(0) - uint64_t((c < end) & (term[safe] < t[j].term)));
        }
    }
    for (size_t j = 0; j < n; ++j)
        if (p[j] != UINT64_MAX) pos[j] = p[j] + 1;
}

/// Ask for a doc block's forward entries to be brought into the cache while the block before it is scored.
template <class T>
inline void prefetch_block(const DocBlockForwardView& fw, const T* term, uint32_t b) {
    const uint64_t lo = fw.start[b], hi = fw.start[b + 1];
    const char* p = reinterpret_cast<const char*>(term + lo);
    const char* p_end = reinterpret_cast<const char*>(term + hi);
    for (; p < p_end; p += 64) __builtin_prefetch(p);
    for (uint64_t e = lo; e < hi; e += 32) __builtin_prefetch(fw.hit + e);
}

/// Phase 1 over the term id type T: doc blocks best bound first, each scored from the forward index.
template <class T>
inline uint64_t score_blocks(const IndexView& ix, const DocBlockForwardView& fw, const T* term, const T* dir,
                             const QueryTerm* terms, size_t nterms, uint32_t* acc, uint32_t* ub, BlockOrder& order,
                             TopkQueue& q, const uint64_t* allowed, uint64_t budget, bool* abandoned) {
    uint64_t scored = 0, blocks = 0;
    const uint32_t shift = fw.shift, width = uint32_t(1) << shift;
    const uint16_t* hit = fw.hit;
    if (!order.empty()) prefetch_block(fw, term, order.peek_block());
    while (!order.empty()) {
        if (q.full()) order.set_floor(q.bar_score());
        if (budget != UINT64_MAX) order.set_limit(budget > blocks ? budget - blocks : 0);
        const bool done = order.empty() || (q.full() && order.peek_ub() < q.bar_score());  // empty: all below bar
        if (order.over() || (!done && blocks + order.left() > budget)) {
            *abandoned = true;  // exhaustive search is cheaper: hand the query over (every acc is zero here)
            break;
        }
        if (done) break;
        ++blocks;
        const uint32_t b = order.pop();
        ub[b] = 0;  // BlockOrder's heap, once built, must not see it again
        if (!order.empty()) prefetch_block(fw, term, order.peek_block());  // the next one, while this one is scored
        const uint32_t lo = b << shift;
        uint32_t* a = acc + lo;
        const uint64_t begin = fw.start[b], end = fw.start[b + 1];
        const T* bdir = dir + fw.dir_start[b];
        const uint64_t nd = fw.dir_start[b + 1] - fw.dir_start[b];
        for (size_t j0 = 0; j0 < nterms; j0 += kSearchLanes) {
            const size_t n = nterms - j0 < kSearchLanes ? nterms - j0 : kSearchLanes;
            uint64_t pos[kSearchLanes];
            lower_bounds(term, bdir, begin, end, nd, terms + j0, n, pos);
            for (size_t j = 0; j < n; ++j) {
                const uint32_t t = terms[j0 + j].term, w = terms[j0 + j].weight;
                uint64_t e = pos[j];
                for (; e < end && term[e] == t; ++e) a[hit[e] & 0xFFu] += w * uint32_t(hit[e] >> 8);
                scored += e - pos[j];
            }
        }
        const uint32_t n = lo + width < ix.num_docs ? width : ix.num_docs - lo;
        for (uint32_t i = 0; i < n; ++i) {
            const uint32_t s = a[i];
            if (s != 0) {
                if (s >= q.threshold() && is_allowed(allowed, lo + i)) q.insert(s, lo + i);
                a[i] = 0;
            }
        }
        q.tighten();
    }
    return scored;
}

inline uint32_t block_forward_pruning_impl(const IndexView& ix, const DocBlockMaxView& bm,
                                           const DocBlockForwardView& fw, const QueryTerm* terms, size_t nterms,
                                           uint32_t* acc, const BlockMaxScratch& scratch, uint32_t k, ScoredDoc* out,
                                           uint64_t* postings, const uint64_t* allowed, bool hand_over) {
    const uint64_t budget = hand_over ? hand_over_budget(ix, terms, nterms, fw.shift) : UINT64_MAX;
    if (budget == 0) return exhaustive_taat_impl(ix, terms, nterms, acc, k, out, postings, allowed);
    uint32_t* ub = scratch.ub;
    const BlockSet touched = block_bounds(bm, terms, nterms, ub, scratch.touched);
    BlockOrder order(scratch.heap, ub, touched);
    TopkQueue q(k);
    bool abandoned = false;
    *postings +=
        fw.term16 != nullptr
            ? score_blocks(ix, fw, fw.term16, fw.dir16, terms, nterms, acc, ub, order, q, allowed, budget, &abandoned)
            : score_blocks(ix, fw, fw.term, fw.dir, terms, nterms, acc, ub, order, q, allowed, budget, &abandoned);
    clear_bounds(ub, touched);
    if (abandoned) return exhaustive_taat_impl(ix, terms, nterms, acc, k, out, postings, allowed);
    return write_hits(q, out);
}

}  // namespace
}  // namespace lsrcore
