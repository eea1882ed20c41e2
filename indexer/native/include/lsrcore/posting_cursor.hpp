// Block cursor over one term's posting list.
//
// Contract (every search algorithm relies on exactly this):
//   * A cursor is created for a term t of a parsed IndexView and starts
//     before the first block.
//   * `next_block()` advances to the next block and returns false once the
//     list is exhausted. Only after it returned true may `docs()`/`impacts()`
//     be read.
//   * After `decode()`, docs()[0..size()) are strictly increasing doc ids in
//     [first_doc(), last_doc()] (all < num_docs) and impacts()[i] in 1..255
//     is the quantised weight of docs()[i].
//   * `first_doc()`, `last_doc()`, `block_max()` describe the current block
//     without decoding it (for block-max pruning); decoding is optional.
//   * The buffers are owned by the cursor and overwritten by the next decode.
// Internal linkage: included by each kernel translation unit, see codec.hpp.
#pragma once

#include <algorithm>
#include <cstdint>

#include "codec.hpp"
#include "index_view.hpp"

namespace lsrcore {
namespace {

class BlockCursor {
   public:
    BlockCursor(const IndexView& ix, uint32_t term)
        : ix_(ix),
          block_(ix.term_block_start[term]),
          end_(ix.term_block_start[term + 1]),
          remaining_(ix.term_df[term]) {
        --block_;  // before the first block
    }

    bool next_block() {
        if (started_) remaining_ -= size_;
        started_ = true;
        ++block_;
        if (block_ >= end_) {
            size_ = 0;
            return false;
        }
        size_ = std::min<uint64_t>(remaining_, kBlockSize);
        return true;
    }

    uint32_t size() const { return size_; }
    uint32_t first_doc() const { return ix_.block_first_doc[block_]; }
    uint32_t last_doc() const { return ix_.block_last_doc[block_]; }
    uint32_t block_max() const { return ix_.block_max[block_]; }

    void decode() {
        const uint32_t db = ix_.block_bits[2 * block_];
        const uint32_t ib = ix_.block_bits[2 * block_ + 1];
        const uint8_t* p = ix_.data + ix_.block_offset[block_];
        unpack_block(p, size_, db, docs_);
        unpack_block(p + packed_bytes(size_, db), size_, ib, impacts_);
        uint32_t d = first_doc();
        docs_[0] = d;
        for (uint32_t i = 1; i < size_; ++i) {
            d += docs_[i] + 1;
            docs_[i] = d;
        }
    }

    const uint32_t* docs() const { return docs_; }
    const uint32_t* impacts() const { return impacts_; }

   private:
    const IndexView& ix_;
    uint64_t block_;
    uint64_t end_;
    uint64_t remaining_;
    uint32_t size_ = 0;
    bool started_ = false;
    alignas(64) uint32_t docs_[kBlockSize];
    alignas(64) uint32_t impacts_[kBlockSize];
};

}  // namespace
}  // namespace lsrcore
