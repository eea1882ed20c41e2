// A forward index over doc blocks, for block-max pruning that scores a block without touching posting lists
// (algorithm/block_forward_pruning.hpp).
//
// The documents are cut into doc blocks of 2^shift consecutive ids, as in doc_block_max.hpp. Entries
// start[b] .. start[b+1] hold every posting of doc block b, sorted by term (and by document within a term):
// term[e], and hit[e]: the document's offset inside the block (d - (b << shift)) in the low byte and its impact in
// the high byte, one array so that a term found costs one more cache line, not two. This is
// BMP's block forward index (Mallia, Suel and Tonellotto, SIGIR 2024): scoring one block is a merge of the
// query's sorted terms with the block's, where the inverted index would decode whole posting blocks of
// 128 documents to use the few that fall inside it.
//
// Derived data like doc_block_max.hpp: built from the posting lists on first use (two passes that decode every
// posting), never stored, so the file format does not change. Four bytes a posting (six past 65,536 terms), plus a
// directory per block (every kDirStride-th term) that keeps a term lookup to about one cache line of the block.
#pragma once

#include <cstdint>
#include <vector>

#include "index_view.hpp"

namespace lsrcore {

inline constexpr uint32_t kMaxForwardShift = 8;  // offsets inside a block are one byte
inline constexpr uint32_t kDirStride = 16;       // the directory samples every 16th entry of a block

struct DocBlockForwardView {
    uint32_t shift = 0;
    uint32_t num_blocks = 0;
    const uint64_t* start = nullptr;  // [B+1]
    // Term ids in 16 bits when the vocabulary has at most 65,536 entries (BERT's 30,522, SmolLM2's 49,152), halving
    // the cache lines a lookup touches; else in 32. Exactly one of term / term16 is set, and of dir / dir16.
    const uint32_t* term = nullptr;   // [P] increasing within a block (equal terms: increasing offsets)
    const uint16_t* term16 = nullptr;
    const uint16_t* hit = nullptr;    // [P] offset of the document inside the block (< 2^shift) | impact << 8
    const uint64_t* dir_start = nullptr;  // [B+1] block b's directory: dir[dir_start[b] .. dir_start[b+1])
    const uint32_t* dir = nullptr;        // term[start[b] + kDirStride * i] for each i: a few cache lines a block
    const uint16_t* dir16 = nullptr;
};

struct DocBlockForward {
    uint32_t shift = 0;
    uint32_t num_blocks = 0;
    std::vector<uint64_t> start;
    bool wide = false;                    // term ids in 32 bits (a vocabulary over 65,536 terms)
    std::vector<uint32_t> term, dir;      // vocabularies over 65,536 terms
    std::vector<uint16_t> term16, dir16;  // the others
    std::vector<uint16_t> hit;
    std::vector<uint64_t> dir_start;

    DocBlockForwardView view() const;
    uint64_t bytes() const;  // memory held by the arrays
};

/// Two passes over every posting list of a parsed index. shift in 0..kMaxForwardShift.
DocBlockForward build_doc_block_forward(const IndexView& ix, uint32_t shift);

}  // namespace lsrcore
