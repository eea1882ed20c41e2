// Per-term maxima over fixed ranges of documents, for block-max pruning (algorithm/block_max_pruning.hpp).
//
// The documents are cut into "doc blocks" of 2^shift consecutive ids (doc block of d: d >> shift). For each term
// t, entries start[t] .. start[t+1] list the doc blocks holding a posting of t, in increasing order (block[e]),
// with the largest impact of t in that doc block (max[e]). This is BMP's block-max table (Mallia, Suel and
// Tonellotto, "Faster Learned Sparse Retrieval with Block-Max Pruning", SIGIR 2024), kept sparse per term.
//
// It is derived data: built from the posting lists when an index is first searched with pruning (one pass that
// decodes every block), never stored, so the file format does not change. The owner keeps the arrays; the view
// below is plain data that the ISA-specific kernels read.
#pragma once

#include <cstdint>
#include <vector>

#include "index_view.hpp"

namespace lsrcore {

// Terms present in at least 1/kDenseShare of the doc blocks also get a dense row: num_blocks bytes, the term's
// largest impact in every doc block (0 where it has none). A query adds such a row to its bounds with vector
// instructions instead of one scattered add per entry (for common terms, about as many entries as postings).
inline constexpr uint64_t kDenseShare = 16;

struct DocBlockMaxView {
    uint32_t shift = 0;              // documents per doc block: 2^shift
    uint32_t num_blocks = 0;         // ceil(num_docs / 2^shift)
    const uint64_t* start = nullptr; // [V+1]
    const uint32_t* block = nullptr; // [E] doc block ids, increasing within a term
    const uint8_t* max = nullptr;    // [E] the term's largest impact in that doc block (1..255)
    const uint32_t* dense_row = nullptr;  // [V] the term's dense row, or UINT32_MAX when it has none
    const uint8_t* dense = nullptr;       // [rows x num_blocks]
};

/// Scratch memory of block_max_pruning, kept by the caller across queries (allocating it per query cost page
/// faults): each array has room for bm.num_blocks entries (+1, and ceil(num_blocks / 64) words for `bits`); `ub`
/// is all zero on entry and again on return, the others need no initial content.
struct BlockMaxScratch {
    uint32_t* ub;
    uint64_t* heap;
    uint32_t* touched;
    uint32_t* alive_before;
    uint64_t* bits;
};

struct DocBlockMax {
    uint32_t shift = 0;
    uint32_t num_blocks = 0;
    std::vector<uint64_t> start;
    std::vector<uint32_t> block;
    std::vector<uint8_t> max;
    std::vector<uint32_t> dense_row;
    std::vector<uint8_t> dense;

    DocBlockMaxView view() const;
    uint64_t bytes() const;  // memory held by the arrays
};

/// One pass over every posting list of a parsed index. shift in 0..20.
DocBlockMax build_doc_block_max(const IndexView& ix, uint32_t shift);

}  // namespace lsrcore
