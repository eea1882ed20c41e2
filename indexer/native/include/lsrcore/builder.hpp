// Index writer, first half: collects documents from CSR batches into
// per-term posting lists. index_writer.hpp serialises them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lsrcore {

/// Quantisation used by the writer and mirrored by indexer/reference.py:
/// scale = max_weight / 255; impact = clamp(rint(w / scale), 1, 255) in double.
inline constexpr uint32_t kMaxImpact = 255;

struct Posting {
    uint32_t doc;
    float weight;
};

/// Collects the posting lists of the terms [term_lo, term_hi) only, so that a
/// collection larger than memory is inverted in passes over its documents,
/// one term range per pass. The counts (documents, postings, document
/// frequency of every term, largest weight) always cover all terms.
class Builder {
   public:
    /// `df`, when given (vocab_size entries, from an earlier pass over the
    /// same documents), reserves every kept list at its final size.
    Builder(uint32_t vocab_size, uint32_t term_lo, uint32_t term_hi, const uint32_t* df = nullptr);
    explicit Builder(uint32_t vocab_size) : Builder(vocab_size, 0, vocab_size) {}

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
    uint32_t term_lo() const { return term_lo_; }
    uint32_t term_hi() const { return term_hi_; }
    float max_weight() const { return max_weight_; }
    const std::vector<uint32_t>& df() const { return df_; }
    /// Postings of a kept term (term_lo <= t < term_hi), in doc order.
    const std::vector<Posting>& postings(uint32_t t) const { return lists_[t - term_lo_]; }

    /// Quantise and write the index to `path` (temporary name, fsync, rename).
    /// Needs all terms kept. Returns the impact scale. Can be called again.
    double write(const std::string& path) const;

   private:
    uint32_t vocab_size_, term_lo_, term_hi_;
    uint32_t num_docs_ = 0;
    uint64_t num_postings_ = 0;
    float max_weight_ = 0.0f;
    std::vector<uint32_t> df_;
    std::vector<std::vector<Posting>> lists_;
};

}  // namespace lsrcore
