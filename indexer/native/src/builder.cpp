// Index writer, first half: collects postings per term (builder.hpp).
#include "lsrcore/builder.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "lsrcore/index_writer.hpp"

namespace lsrcore {

Builder::Builder(uint32_t vocab_size, uint32_t term_lo, uint32_t term_hi, const uint32_t* df)
    : vocab_size_(vocab_size), term_lo_(term_lo), term_hi_(term_hi), df_(vocab_size, 0) {
    if (vocab_size == 0) throw std::invalid_argument("vocab_size must be positive");
    if (term_lo > term_hi || term_hi > vocab_size)
        throw std::invalid_argument("term range must satisfy 0 <= lo <= hi <= vocab_size");
    lists_.resize(term_hi - term_lo);
    if (df != nullptr)
        for (uint32_t t = term_lo; t < term_hi; ++t) lists_[t - term_lo].reserve(df[t]);
}

void Builder::add_batch(const uint64_t* indptr, size_t nrows, const uint32_t* indices, const float* values,
                        size_t nnz) {
    if (indptr[0] != 0) throw std::invalid_argument("indptr[0] must be 0");
    for (size_t r = 0; r < nrows; ++r)
        if (indptr[r + 1] < indptr[r]) throw std::invalid_argument("indptr must be non-decreasing");
    if (indptr[nrows] != nnz) throw std::invalid_argument("indptr[-1] must equal the number of non-zeros");
    for (size_t i = 0; i < nnz; ++i) {
        if (indices[i] >= vocab_size_)
            throw std::invalid_argument("term id " + std::to_string(indices[i]) + " >= vocab_size " +
                                        std::to_string(vocab_size_));
        if (!std::isfinite(values[i]) || values[i] < 0.0f)
            throw std::invalid_argument("weights must be finite and non-negative");
    }
    if (uint64_t(num_docs_) + nrows >= 0xFFFFFFFFull) throw std::invalid_argument("too many documents (limit 2^32-1)");

    struct Item {
        uint32_t term;
        double weight;
    };
    std::vector<Item> row;
    for (size_t r = 0; r < nrows; ++r) {
        row.clear();
        for (uint64_t i = indptr[r]; i < indptr[r + 1]; ++i) row.push_back({indices[i], double(values[i])});
        std::stable_sort(row.begin(), row.end(), [](const Item& a, const Item& b) { return a.term < b.term; });
        const uint32_t doc = num_docs_ + static_cast<uint32_t>(r);
        for (size_t i = 0; i < row.size();) {
            double w = 0.0;
            const uint32_t t = row[i].term;
            for (; i < row.size() && row[i].term == t; ++i) w += row[i].weight;
            const float wf = static_cast<float>(w);
            if (!(wf > 0.0f)) continue;
            if (!std::isfinite(wf)) throw std::invalid_argument("summed duplicate weights overflow float32");
            if (t >= term_lo_ && t < term_hi_) lists_[t - term_lo_].push_back({doc, wf});
            ++df_[t];
            max_weight_ = std::max(max_weight_, wf);
            ++num_postings_;
        }
    }
    num_docs_ += static_cast<uint32_t>(nrows);
}

double Builder::write(const std::string& path) const {
    if (term_lo_ != 0 || term_hi_ != vocab_size_)
        throw std::invalid_argument("write() needs a builder that keeps every term; use IndexWriter for passes");
    IndexWriter w(path, df_.data(), vocab_size_, num_docs_, max_weight_);
    w.append(*this);
    return w.finish();
}

}  // namespace lsrcore
