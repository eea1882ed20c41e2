// Index writer: collects documents from CSR batches, then quantises and
// serialises them (serializer.cpp) into one file written atomically.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lsrcore {

/// Quantisation used by the builder and mirrored by indexer/reference.py:
/// scale = max_weight / 255; impact = clamp(rint(w / scale), 1, 255) in double.
inline constexpr uint32_t kMaxImpact = 255;

class Builder {
   public:
    explicit Builder(uint32_t vocab_size);

    /// Append rows [0, nrows) as documents num_docs(), num_docs()+1, ...
    /// indptr has nrows+1 entries; duplicate terms within a row are summed (in
    /// double, in order of appearance, then rounded to float); zero weights are
    /// dropped. Validates everything before changing any state and throws
    /// std::invalid_argument on bad input.
    void add_batch(const uint64_t* indptr, size_t nrows, const uint32_t* indices, const float* values,
                   size_t nnz);

    uint32_t num_docs() const { return num_docs_; }
    uint64_t num_postings() const { return num_postings_; }
    uint32_t vocab_size() const { return vocab_size_; }

    /// Quantise and write the index to `path` (temporary name, fsync, rename).
    /// Returns the impact scale. The builder can still be written again.
    double write(const std::string& path) const;

   private:
    struct Posting {
        uint32_t doc;
        float weight;
    };
    uint32_t vocab_size_;
    uint32_t num_docs_ = 0;
    uint64_t num_postings_ = 0;
    float max_weight_ = 0.0f;
    std::vector<std::vector<Posting>> lists_;
};

}  // namespace lsrcore
