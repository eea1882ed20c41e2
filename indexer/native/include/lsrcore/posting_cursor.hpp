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
//   * Random access (for pruning): `num_blocks()` is the list's block count,
//     `find_block(d)` the index of the first block whose last doc is >= d
//     (num_blocks() if none), and `seek(i)` positions on block i (false past
//     the last); `next_block()` goes on from there.
// Internal linkage: included by each kernel translation unit, see codec.hpp.
#pragma once

#include <algorithm>
#include <cstdint>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "codec.hpp"
#include "index_view.hpp"

namespace lsrcore {
namespace {

/// In place: v[i] <- base + sum_{m<=i} (v[m] + 1) for i < n (n <= kBlockSize; entries
/// past n may be overwritten). With v[0] == 0 and base = first - 1 this turns
/// the gaps of a block into its doc ids (u32 arithmetic wraps as intended).
inline void gaps_to_docs(uint32_t* v, uint32_t n, uint32_t base) {
#if defined(__AVX512F__)
    const __m512i ones = _mm512_set1_epi32(1), zero = _mm512_setzero_si512();
    __m512i carry = _mm512_set1_epi32(static_cast<int>(base));
    for (uint32_t i = 0; i < n; i += 16) {
        __m512i x = _mm512_add_epi32(_mm512_load_si512(v + i), ones);
        x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 15));
        x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 14));
        x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 12));
        x = _mm512_add_epi32(x, _mm512_alignr_epi32(x, zero, 8));
        x = _mm512_add_epi32(x, carry);
        _mm512_store_si512(v + i, x);
        carry = _mm512_permutexvar_epi32(_mm512_set1_epi32(15), x);
    }
#elif defined(__AVX2__)
    const __m256i ones = _mm256_set1_epi32(1), zero = _mm256_setzero_si256();
    const __m256i last_of_low = _mm256_set1_epi32(3), last = _mm256_set1_epi32(7);
    __m256i carry = _mm256_set1_epi32(static_cast<int>(base));
    for (uint32_t i = 0; i < n; i += 8) {
        __m256i x = _mm256_add_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(v + i)), ones);
        x = _mm256_add_epi32(x, _mm256_slli_si256(x, 4));
        x = _mm256_add_epi32(x, _mm256_slli_si256(x, 8));
        x = _mm256_add_epi32(x, _mm256_blend_epi32(zero, _mm256_permutevar8x32_epi32(x, last_of_low), 0xF0));
        x = _mm256_add_epi32(x, carry);
        _mm256_store_si256(reinterpret_cast<__m256i*>(v + i), x);
        carry = _mm256_permutevar8x32_epi32(x, last);
    }
#else
    uint32_t d = base;
    for (uint32_t i = 0; i < n; ++i) {
        d += v[i] + 1;
        v[i] = d;
    }
#endif
}

class BlockCursor {
   public:
    BlockCursor(const IndexView& ix, uint32_t term)
        : ix_(ix),
          first_(ix.term_block_start[term]),
          block_(ix.term_block_start[term]),
          end_(ix.term_block_start[term + 1]),
          remaining_(ix.term_df[term]),
          df_(ix.term_df[term]) {
        --block_;  // before the first block
    }

    uint64_t num_blocks() const { return end_ - first_; }

    /// First block index i with last_doc >= d, by binary search over the block metadata (a hand-written loop:
    /// no std:: template instantiated under a kernel's ISA flags).
    uint64_t find_block(uint32_t d) const {
        uint64_t lo = first_, hi = end_;
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo) / 2;
            if (ix_.block_last_doc[mid] < d)
                lo = mid + 1;
            else
                hi = mid;
        }
        return lo - first_;
    }

    bool seek(uint64_t i) {
        started_ = true;
        block_ = first_ + i;
        if (block_ >= end_) {
            size_ = 0;
            return false;
        }
        remaining_ = df_ - i * kBlockSize;
        size_ = std::min<uint64_t>(remaining_, kBlockSize);
        return true;
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
        gaps_to_docs(docs_, size_, first_doc() - 1);
    }

    const uint32_t* docs() const { return docs_; }
    const uint32_t* impacts() const { return impacts_; }

   private:
    const IndexView& ix_;
    uint64_t first_;
    uint64_t block_;
    uint64_t end_;
    uint64_t remaining_;
    uint64_t df_;
    uint32_t size_ = 0;
    bool started_ = false;
    alignas(64) uint32_t docs_[kBlockSize];
    alignas(64) uint32_t impacts_[kBlockSize];
};

}  // namespace
}  // namespace lsrcore
