// Safe block-max pruning over doc blocks (after BMP: Mallia, Suel and Tonellotto, SIGIR 2024), in two phases
// that keep the term-at-a-time kernels.
//
// 0. Bounds: ub[b] = sum_j w_j * max_j[b] over the query terms' doc-block maxima (doc_block_max.hpp). No
//    document of doc block b scores more than ub[b].
// 1. Probe: doc blocks are scored exactly, best bound first (ties: smaller block first), until the top-k queue
//    has held k hits (or the probes have decoded an eighth of the query's postings: a large k on loose bounds
//    then costs little more than exhaustive search, with theta 0 below): for each term, the posting blocks overlapping the doc block are found by binary search
//    (BlockCursor::find_block), decoded and their postings inside the doc block accumulated; the block's
//    documents are offered to the queue. If the next bound is already below the queue's bar (a lower bound on
//    the k-th best score), no document left can reach the top k: done.
// 2. Otherwise theta = the bar, and a doc block is alive when it was not probed and ub[b] >= theta. Every
//    posting list is walked once, term at a time as in exhaustive_taat, decoding only the posting blocks that
//    overlap an alive doc block (prefix counts over the doc blocks answer that in O(1)). Alive documents get
//    their whole score (each of their postings lies in a decoded block); their accumulators are offered to the
//    queue. A document of a dead block scores at most ub[b] < theta <= the final k-th score, and probed ones were
//    offered already, so accumulators outside alive blocks are only zeroed.
// The hits equal exhaustive_taat's, scores and ties included (the queue orders entries offered in any order;
// phase 2 offers scores equal to the bar too, since an equal score with a smaller doc id still ranks above it).
//
// Included by src/kernels/taat_<isa>.cpp inside namespace lsrcore::kernels::<isa>; every template used here is
// instantiated on types of this anonymous namespace (or written out), so no kernel's ISA leaks into another.
#pragma once

#include <cstdint>
#include <vector>

#include "../doc_block_max.hpp"
#include "exhaustive_taat.hpp"

namespace lsrcore {
namespace {

struct BlockBound {
    uint32_t ub;
    uint32_t block;
};

/// Heap order: the larger bound on top, the smaller block first among equal bounds.
inline bool heap_less(const BlockBound& a, const BlockBound& b) {
    return a.ub < b.ub || (a.ub == b.ub && a.block > b.block);
}

inline void sift_down(BlockBound* h, size_t n, size_t i) {
    const BlockBound x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && heap_less(h[c], h[c + 1])) ++c;
        if (!heap_less(x, h[c])) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

/// First index i in [lo, hi) of the sorted docs with docs[i] >= d.
inline uint32_t first_at_least(const uint32_t* docs, uint32_t lo, uint32_t hi, uint32_t d) {
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        if (docs[mid] < d)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

inline uint32_t block_max_pruning_impl(const IndexView& ix, const DocBlockMaxView& bm, const QueryTerm* terms,
                                       size_t nterms, uint32_t* acc, uint32_t* ub, uint32_t k, ScoredDoc* out,
                                       uint64_t* postings, const uint64_t* allowed) {
    // 0. bounds, and a heap of the doc blocks with a positive one
    std::vector<BlockBound> heap;
    for (size_t j = 0; j < nterms; ++j) {
        const uint32_t t = terms[j].term, w = terms[j].weight;
        for (uint64_t e = bm.start[t]; e < bm.start[t + 1]; ++e) {
            const uint32_t b = bm.block[e];
            if (ub[b] == 0) heap.push_back(BlockBound{0, b});
            ub[b] += w * bm.max[e];
        }
    }
    for (BlockBound& x : heap) x.ub = ub[x.block];
    const std::vector<BlockBound> touched(heap);  // to zero ub on the way out
    size_t n = heap.size();
    for (size_t i = n / 2; i-- > 0;) sift_down(heap.data(), n, i);

    // 1. probe the best doc blocks until the queue has held k hits
    std::vector<BlockCursor> cursors;
    cursors.reserve(nterms);
    for (size_t j = 0; j < nterms; ++j) cursors.emplace_back(ix, terms[j].term);
    TopkQueue q(k);
    uint64_t scored = 0;
    const uint32_t shift = bm.shift, width = uint32_t(1) << shift;
    uint64_t total = 0;  // the query's postings: what exhaustive search decodes
    for (size_t j = 0; j < nterms; ++j) total += ix.term_df[terms[j].term];
    bool done = false;
    while (!q.full() && scored <= total / 8) {
        if (n == 0) {
            done = true;
            break;
        }
        const BlockBound top = heap[0];
        heap[0] = heap[--n];
        if (n > 0) sift_down(heap.data(), n, 0);
        ub[top.block] = 0;  // probed: not alive in phase 2
        const uint32_t lo = top.block << shift;
        const uint32_t end = lo + width < ix.num_docs ? lo + width : ix.num_docs;  // doc block [lo, end)
        for (size_t j = 0; j < nterms; ++j) {
            BlockCursor& c = cursors[j];
            const uint32_t w = terms[j].weight;
            for (bool ok = c.seek(c.find_block(lo)); ok && c.first_doc() < end; ok = c.next_block()) {
                c.decode();
                const uint32_t a = c.first_doc() >= lo ? 0 : first_at_least(c.docs(), 0, c.size(), lo);
                const uint32_t z = c.last_doc() < end ? c.size() : first_at_least(c.docs(), a, c.size(), end);
                accumulate(acc, c.docs() + a, c.impacts() + a, z - a, w);
                scored += c.size();
            }
        }
        for (uint32_t d = lo; d < end; ++d) {
            const uint32_t s = acc[d];
            if (s != 0) {
                if (is_allowed(allowed, d)) q.insert(s, d);
                acc[d] = 0;
            }
        }
        q.tighten();
    }
    if (!done && q.full() && (n == 0 || heap[0].ub < q.bar_score())) done = true;

    if (!done) {
        // 2. one pass over every posting list, decoding only the blocks that meet an alive doc block
        const uint32_t theta = q.full() ? q.bar_score() : 0;
        std::vector<uint32_t> alive_before(size_t(bm.num_blocks) + 1, 0);  // alive doc blocks before b
        for (uint32_t b = 0; b < bm.num_blocks; ++b)
            alive_before[b + 1] = alive_before[b] + (ub[b] != 0 && ub[b] >= theta ? 1u : 0u);
        uint32_t lo = UINT32_MAX, hi = 0;
        for (size_t j = 0; j < nterms; ++j) {
            BlockCursor c(ix, terms[j].term);
            const uint32_t w = terms[j].weight;
            while (c.next_block()) {
                const uint32_t b0 = c.first_doc() >> shift, b1 = c.last_doc() >> shift;
                if (alive_before[b1 + 1] == alive_before[b0]) continue;
                c.decode();
                lo = c.first_doc() < lo ? c.first_doc() : lo;
                hi = c.last_doc() > hi ? c.last_doc() : hi;
                accumulate(acc, c.docs(), c.impacts(), c.size(), w);
                scored += c.size();
            }
        }
        for (uint32_t b = lo > hi ? 1 : lo >> shift; lo <= hi && b <= (hi >> shift); ++b) {
            const uint32_t d0 = b << shift;
            const uint32_t d1 = d0 + width < ix.num_docs ? d0 + width : ix.num_docs;
            if (alive_before[b + 1] != alive_before[b]) {
                for (uint32_t d = d0; d < d1; ++d) {
                    const uint32_t s = acc[d];
                    if (s != 0) {
                        if (s >= q.threshold() && is_allowed(allowed, d)) q.insert(s, d);
                        acc[d] = 0;
                    }
                }
            } else {
                for (uint32_t d = d0; d < d1; ++d) acc[d] = 0;
            }
        }
    }
    for (const BlockBound& x : touched) ub[x.block] = 0;
    *postings += scored;
    const auto& best = q.finalize();
    for (size_t i = 0; i < best.size(); ++i) out[i] = ScoredDoc{best[i].score, best[i].doc};
    return static_cast<uint32_t>(best.size());
}

}  // namespace
}  // namespace lsrcore
