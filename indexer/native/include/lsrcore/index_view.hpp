// Read-only view of an index file's sections, and the types that cross
// between the reader, the search algorithms and the bindings. Plain data
// only: no inline member functions, so kernels compiled with different ISA
// flags can share these types safely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "format.hpp"

namespace lsrcore {

/// Raised for any file that is not a complete, consistent index.
class FormatError : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

struct IndexView {
    uint32_t num_docs = 0;
    uint32_t vocab_size = 0;
    uint64_t num_postings = 0;
    uint64_t num_blocks = 0;
    double impact_scale = 0.0;
    const uint64_t* term_block_start = nullptr;  // [V+1]
    const uint32_t* term_df = nullptr;           // [V]
    const uint8_t* term_max = nullptr;           // [V]
    const uint32_t* block_first_doc = nullptr;   // [B]
    const uint32_t* block_last_doc = nullptr;    // [B]
    const uint8_t* block_max = nullptr;          // [B]
    const uint8_t* block_bits = nullptr;         // [2B]: doc-gap bits, impact bits
    const uint64_t* block_offset = nullptr;      // [B+1]
    const uint8_t* data = nullptr;
    uint64_t data_size = 0;
};

/// One query term after preparation: a term with postings and an integer weight.
struct QueryTerm {
    uint32_t term;
    uint32_t weight;
};

struct ScoredDoc {
    uint32_t score;
    uint32_t doc;
};

/// Parse and validate an index held in memory: header, sizes, every section
/// checksum, the metadata, and every block decoded and checked (doc ids
/// strictly increasing, inside the block's bounds and < num_docs, impacts in
/// 1..block max). After it returns, no search can read or write out of
/// bounds. Throws FormatError.
IndexView parse_index(const uint8_t* bytes, size_t size);

}  // namespace lsrcore
