// Safe block-max pruning over doc blocks (after BMP: Mallia, Suel and Tonellotto, SIGIR 2024), in two phases
// that keep the term-at-a-time kernels.
//
// 0. Bounds: ub[b] = sum_j w_j * max_j[b] over the query terms' doc-block maxima (doc_block_max.hpp). No
//    document of doc block b scores more than ub[b]. One scan keeps the best 64 bounds, sorted (BlockOrder).
// 1. Probe: doc blocks are scored exactly, best bound first (ties: smaller block first), until the top-k queue has held
//    k hits and kMinProbes blocks were scored (a higher bar prunes more below; in an ad hoc debian run, before
//    BlockOrder, 16 to 64 probes halved the time against stopping at k hits), or the probes have decoded an eighth of
//    the query's postings (a large k on loose bounds then costs little more than exhaustive search, with theta 0
//    below): for each term, the posting blocks overlapping the doc block are found by binary search
//    (BlockCursor::find_block), decoded and their postings inside the doc block accumulated; the block's documents are
//    offered to the queue. If the next bound is already below the queue's bar (a lower bound on the k-th best score),
//    no document left can reach the top k: done.
// 2. Otherwise theta = the bar, and a doc block is alive when it was not probed and ub[b] >= theta. Every
//    posting list is walked once, term at a time as in exhaustive_taat, decoding only the posting blocks that
//    overlap an alive doc block (prefix counts over the doc blocks answer that in O(1)) and adding only the
//    postings that fall in an alive doc block (a bitmap test; the scattered adds are most of exhaustive search's
//    cost). Alive documents get their whole score (each of their postings lies in a decoded block); their
//    accumulators are offered to the queue and zeroed, and no other accumulator was touched. A document of a
//    dead block scores at most ub[b] < theta <= the final k-th score, and probed ones were offered already.
// The hits equal exhaustive_taat's, scores and ties included (the queue orders entries offered in any order;
// phase 2 offers scores equal to the bar too, since an equal score with a smaller doc id still ranks above it).
//
// Included by src/kernels/taat_<isa>.cpp inside namespace lsrcore::kernels::<isa>; every template used here is
// instantiated on types of this anonymous namespace (or written out), so no kernel's ISA leaks into another.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../doc_block_max.hpp"
#include "exhaustive_taat.hpp"

namespace lsrcore {
namespace {

/// Heap keys: the bound in the high half, the complement of the doc block in the low half, so that the largest
/// key is the best bound and, among equal bounds, the smaller block.
inline uint64_t block_key(uint32_t ub, uint32_t block) { return (uint64_t(ub) << 32) | (0xFFFFFFFFu - block); }
inline uint32_t key_ub(uint64_t key) { return static_cast<uint32_t>(key >> 32); }
inline uint32_t key_block(uint64_t key) { return 0xFFFFFFFFu - static_cast<uint32_t>(key); }

inline void sift_down(uint64_t* h, size_t n, size_t i) {
    const uint64_t x = h[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && h[c] < h[c + 1]) ++c;
        if (!(x < h[c])) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = x;
}

inline constexpr uint32_t kMinProbes = 32;  // doc blocks scored before the bar is taken as theta
inline constexpr size_t kFirst = 64;         // best-bound doc blocks picked by one scan (>= kMinProbes)

/// The doc blocks with a positive bound: the listed ones, or (list null) every block 0 .. n-1.
struct BlockSet {
    const uint32_t* list = nullptr;
    size_t n = 0;
    uint32_t at(size_t i) const { return list ? list[i] : static_cast<uint32_t>(i); }
};

/// The doc blocks in best-bound order, cheaply: one scan keeps the kFirst best keys (a small min-heap), sorted;
/// only a search that goes past them gathers the rest (those above a floor, see set_floor; a full heap of every
/// block cost as much as the bounds). `keys` has room for every block of the set.
class BlockOrder {
   public:
    BlockOrder(uint64_t* keys, const uint32_t* ub, BlockSet set) : keys_(keys), ub_(ub), set_(set) {
        for (size_t i = 0; i < set.n; ++i) {
            if (!set.list && n_ == kFirst && (i & 15) == 0 && i + 16 <= set.n) {
                // every block in order: skip 16 at once when none can enter (a vectorised max)
                uint32_t m = 0;
                for (size_t j = i; j < i + 16; ++j) m = ub[j] > m ? ub[j] : m;
                if (m < key_ub(keys_[0])) {
                    i += 15;
                    continue;
                }
            }
            const uint32_t b = set.at(i);
            if (ub[b] == 0) continue;
            const uint64_t key = block_key(ub[b], b);
            if (n_ < kFirst) {  // min-heap of the best kFirst keys
                size_t c = n_++;
                while (c > 0 && keys_[(c - 1) / 2] > key) {
                    keys_[c] = keys_[(c - 1) / 2];
                    c = (c - 1) / 2;
                }
                keys_[c] = key;
            } else if (key > keys_[0]) {
                size_t c = 0;
                for (;;) {
                    size_t m = 2 * c + 1;
                    if (m >= n_) break;
                    if (m + 1 < n_ && keys_[m + 1] < keys_[m]) ++m;
                    if (!(keys_[m] < key)) break;
                    keys_[c] = keys_[m];
                    c = m;
                }
                keys_[c] = key;
            }
        }
        for (size_t i = 1; i < n_; ++i) {  // best first (insertion sort of at most kFirst keys)
            const uint64_t x = keys_[i];
            size_t j = i;
            for (; j > 0 && keys_[j - 1] < x; --j) keys_[j] = keys_[j - 1];
            keys_[j] = x;
        }
        all_ = n_ < kFirst;  // fewer positive bounds than kFirst: every one is in the sorted keys
    }

    bool empty() {
        refill();
        return heap_ ? n_ == 0 : next_ == n_;
    }

    /// Blocks with a bound below `floor` will never be asked for (the caller stops before them): a refill then
    /// takes only the others, sorted when they are few, instead of a heap of every block. Floors only rise.
    void set_floor(uint32_t floor) { floor_ = floor; }

    /// A refill that finds more than `limit` blocks above the floor stops there, unsorted, and says so (over()):
    /// the caller gives up on blocks then, without paying to order them.
    void set_limit(size_t limit) { limit_ = limit; }
    bool over() const { return over_; }

    /// The best bound left (call only when not empty).
    uint32_t peek_ub() {
        refill();
        return key_ub(heap_ ? keys_[0] : keys_[next_]);
    }

    /// How many blocks are queued (after empty() or peek_ub(), which refill: once the first sorted keys are used
    /// up, every block left whose bound reaches the floor).
    size_t left() const { return heap_ ? n_ : n_ - next_; }

    /// The doc block with the best bound left, not removed (call only when not empty).
    uint32_t peek_block() {
        refill();
        return key_block(heap_ ? keys_[0] : keys_[next_]);
    }

    /// The doc block with the best bound left, removed (call only when not empty). `ub` of every block returned
    /// so far must be zero by the time the sorted keys run out.
    uint32_t pop() {
        refill();
        if (!heap_) return key_block(keys_[next_++]);
        const uint32_t b = key_block(keys_[0]);
        keys_[0] = keys_[--n_];
        if (n_ > 0) sift_down(keys_, n_, 0);
        return b;
    }

   private:
    void refill() {  // the sorted keys are used up: every block not yet returned (ub not zeroed) above the floor
        if (heap_ || next_ < n_ || all_) return;
        n_ = 0;
        const uint32_t floor = floor_ > 0 ? floor_ : 1;
        next_ = 0;
        all_ = true;
        for (size_t i = 0; i < set_.n; ++i) {
            const uint32_t b = set_.at(i);
            if (ub_[b] >= floor) keys_[n_++] = block_key(ub_[b], b);
            if (n_ > limit_) {  // more than the caller will score: not worth sorting
                over_ = true;
                return;
            }
        }
        if (n_ <= kSortMax) {  // sorted, best first
            std::sort(keys_, keys_ + n_, KeyGreater{});
            return;
        }
        for (size_t i = n_ / 2; i-- > 0;) sift_down(keys_, n_, i);
        heap_ = true;
    }

    static constexpr size_t kSortMax = 8192;
    struct KeyGreater {  // a type of this anonymous namespace: std::sort is instantiated once per kernel ISA
        bool operator()(uint64_t a, uint64_t b) const { return a > b; }
    };

    uint64_t* keys_;
    const uint32_t* ub_;
    BlockSet set_;
    size_t n_ = 0, next_ = 0, limit_ = SIZE_MAX;
    uint32_t floor_ = 0;
    bool all_ = false, heap_ = false, over_ = false;
};

/// ub[b] += w * row[b] for every doc block: a dense row of doc_block_max.hpp (vectorised by the compiler for the
/// kernel's ISA).
inline void add_dense_row(uint32_t* __restrict ub, const uint8_t* __restrict row, uint32_t n, uint32_t w) {
    for (uint32_t b = 0; b < n; ++b) ub[b] += w * uint32_t(row[b]);
}

/// ub[b] = sum_j w_j * max_j[b] over the query terms' doc-block maxima (ub all zero on entry). Terms with a dense
/// row add it whole, the others their entries one by one. Returns the blocks with a positive bound: listed in
/// `touched` when no term has a dense row, else every block (the list would be most of them anyway).
inline BlockSet block_bounds(const DocBlockMaxView& bm, const QueryTerm* terms, size_t nterms, uint32_t* ub,
                             uint32_t* touched) {
    bool any_dense = false;
    for (size_t j = 0; j < nterms; ++j) any_dense |= bm.dense_row[terms[j].term] != UINT32_MAX;
    if (!any_dense) {
        size_t ntouched = 0;
        for (size_t j = 0; j < nterms; ++j) {
            const uint32_t t = terms[j].term, w = terms[j].weight;
            for (uint64_t e = bm.start[t]; e < bm.start[t + 1]; ++e) {
                const uint32_t b = bm.block[e];
                if (ub[b] == 0) touched[ntouched++] = b;
                ub[b] += w * bm.max[e];
            }
        }
        return BlockSet{touched, ntouched};
    }
    for (size_t j = 0; j < nterms; ++j) {
        const uint32_t t = terms[j].term, w = terms[j].weight;
        if (bm.dense_row[t] != UINT32_MAX) {
            add_dense_row(ub, bm.dense + size_t(bm.dense_row[t]) * bm.num_blocks, bm.num_blocks, w);
            continue;
        }
        for (uint64_t e = bm.start[t]; e < bm.start[t + 1]; ++e) ub[bm.block[e]] += w * bm.max[e];
    }
    return BlockSet{nullptr, bm.num_blocks};
}

/// Zero the bounds of a set again (ub must be all zero between queries).
inline void clear_bounds(uint32_t* ub, BlockSet set) {
    if (set.list == nullptr) {
        std::memset(ub, 0, set.n * sizeof(uint32_t));
        return;
    }
    for (size_t i = 0; i < set.n; ++i) ub[set.list[i]] = 0;
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
                                       size_t nterms, uint32_t* acc, const BlockMaxScratch& scratch,
                                       uint32_t k, ScoredDoc* out, uint64_t* postings, const uint64_t* allowed) {
    // 0. bounds, and a heap of the doc blocks with a positive one
    uint32_t* ub = scratch.ub;
    const BlockSet touched = block_bounds(bm, terms, nterms, ub, scratch.touched);  // to zero ub on the way out
    BlockOrder order(scratch.heap, ub, touched);

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
    uint32_t probes = 0;
    while ((!q.full() || probes < kMinProbes) && scored <= total / 8) {
        ++probes;
        if (order.empty()) {
            done = true;
            break;
        }
        const uint32_t top = order.pop();
        ub[top] = 0;  // probed: not alive in phase 2
        const uint32_t lo = top << shift;
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
    if (!done && q.full() && (order.empty() || order.peek_ub() < q.bar_score())) done = true;

    if (!done) {
        // 2. one pass over every posting list, decoding only the posting blocks that meet an alive doc block and
        //    accumulating only the postings inside alive doc blocks (the scattered adds are most of the cost)
        const uint32_t theta = q.full() ? q.bar_score() : 0;
        uint32_t* alive_before = scratch.alive_before;  // alive doc blocks before b
        uint64_t* bits = scratch.bits;                   // bit b: doc block b is alive
        const size_t nwords = (size_t(bm.num_blocks) + 63) / 64;
        for (size_t i = 0; i < nwords; ++i) bits[i] = 0;
        alive_before[0] = 0;
        for (uint32_t b = 0; b < bm.num_blocks; ++b) {
            const bool alive = ub[b] != 0 && ub[b] >= theta;
            alive_before[b + 1] = alive_before[b] + (alive ? 1u : 0u);
            if (alive) bits[b >> 6] |= uint64_t(1) << (b & 63);
        }
        for (size_t j = 0; j < nterms; ++j) {
            BlockCursor c(ix, terms[j].term);
            const uint32_t w = terms[j].weight;
            while (c.next_block()) {
                const uint32_t b0 = c.first_doc() >> shift, b1 = c.last_doc() >> shift;
                const uint32_t meets = alive_before[b1 + 1] - alive_before[b0];
                if (meets == 0) continue;
                c.decode();
                scored += c.size();
                const uint32_t* docs = c.docs();
                const uint32_t* imps = c.impacts();
                if (meets == b1 - b0 + 1) {  // every doc block it spans is alive
                    accumulate(acc, docs, imps, c.size(), w);
                    continue;
                }
                for (uint32_t i = 0; i < c.size(); ++i) {
                    const uint32_t b = docs[i] >> shift;
                    if ((bits[b >> 6] >> (b & 63)) & 1u) acc[docs[i]] += w * imps[i];
                }
            }
        }
        // offer the alive doc blocks' documents (every one of their postings was added); only they were touched
        for (size_t wi = 0; wi < nwords; ++wi) {
            for (uint64_t m = bits[wi]; m != 0; m &= m - 1) {
                const uint32_t b = static_cast<uint32_t>(wi * 64) + static_cast<uint32_t>(__builtin_ctzll(m));
                const uint32_t d0 = b << shift;
                const uint32_t d1 = d0 + width < ix.num_docs ? d0 + width : ix.num_docs;
                for (uint32_t d = d0; d < d1; ++d) {
                    const uint32_t s = acc[d];
                    if (s != 0) {
                        if (s >= q.threshold() && is_allowed(allowed, d)) q.insert(s, d);
                        acc[d] = 0;
                    }
                }
            }
        }
    }
    clear_bounds(ub, touched);
    *postings += scored;
    return write_hits(q, out);
}

}  // namespace
}  // namespace lsrcore
