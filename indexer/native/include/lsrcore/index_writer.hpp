// Index writer, second half: the serializer. Quantises posting lists, packs
// them into blocks and writes postings.bin (format.hpp) with the postings
// data streamed to disk, so only the per-term and per-block metadata is held
// in memory. Terms arrive in increasing ranges (Builder passes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lsrcore/builder.hpp"
#include "lsrcore/xxhash64.hpp"

namespace lsrcore {

class IndexWriter {
   public:
    /// Creates `path + ".tmp"`. `df` (vocab_size entries: postings per term)
    /// fixes every term's number of blocks, hence the position of DATA, which
    /// is the last section; `max_weight` fixes the impact scale.
    IndexWriter(std::string path, const uint32_t* df, uint32_t vocab_size, uint32_t num_docs, float max_weight);
    ~IndexWriter();  // removes the temporary file unless finish() succeeded
    IndexWriter(const IndexWriter&) = delete;
    IndexWriter& operator=(const IndexWriter&) = delete;

    /// The first term not yet written.
    uint32_t next_term() const { return next_term_; }

    /// Serialise the terms part.term_lo() .. part.term_hi() - 1 of `part`.
    /// part.term_lo() must be next_term(); the part must hold the documents
    /// and term frequencies given to the constructor (std::invalid_argument
    /// otherwise, e.g. when the input changed between passes).
    void append(const Builder& part);

    /// Once every term is written: metadata and header, fsync, rename to
    /// `path`. Returns the impact scale.
    double finish();

   private:
    void flush();

    std::string path_, tmp_;
    int fd_ = -1;
    bool done_ = false;
    uint32_t vocab_size_, num_docs_, next_term_ = 0;
    double scale_;
    uint64_t num_postings_ = 0, num_blocks_ = 0, data_offset_ = 0, data_bytes_ = 0;
    std::vector<uint64_t> term_block_start_;
    std::vector<uint32_t> term_df_;
    std::vector<uint8_t> term_max_;
    std::vector<uint32_t> block_first_, block_last_;
    std::vector<uint8_t> block_max_, block_bits_;
    std::vector<uint64_t> block_offset_;
    std::vector<uint8_t> pending_;  // DATA bytes not yet written
    Xxh64Stream data_hash_;
};

}  // namespace lsrcore
