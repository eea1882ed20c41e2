// Reader: a memory-mapped index file and exact top-k search over it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "doc_block_forward.hpp"
#include "doc_block_max.hpp"
#include "index_view.hpp"

namespace lsrcore {

/// Query weights become integers so that scores are exact: with n distinct
/// positive terms, Q = min(65535, floor((2^32 - 1) / (255 n))) and
/// weight_int = rint(w * Q / max_w) (double arithmetic), which keeps every
/// score below 2^32. Mirrored by indexer/reference.py.
struct PreparedQuery {
    std::vector<QueryTerm> terms;  // terms with postings and weight_int > 0
    double score_scale = 0.0;      // float score = int score * score_scale
};

/// Merge duplicate terms (summed in double, then float), drop zero weights,
/// quantise. Throws std::invalid_argument for term ids >= vocab_size,
/// non-finite or negative weights, and queries with no positive weight.
PreparedQuery prepare_query(const IndexView& ix, const uint32_t* indices, const float* values, size_t n);

/// How a search visits the postings. Both give the same hits (scores and ties included).
enum class Algorithm : uint32_t {
    Exhaustive = 0,  // algorithm/exhaustive_taat.hpp: every posting of every query term
    BlockMax = 1,    // algorithm/block_max_pruning.hpp: doc blocks in upper-bound order, stopping early
    BlockForward = 2,  // algorithm/block_forward_pruning.hpp: the same order, blocks scored from a forward index
    Auto = 3,  // block_forward handing a query over to exhaustive once its blocks would cost more (per query)
};

class Searcher {
   public:
    /// Map and validate the file; throws FormatError or std::system_error.
    explicit Searcher(const std::string& path);
    ~Searcher();
    Searcher(const Searcher&) = delete;
    Searcher& operator=(const Searcher&) = delete;

    const IndexView& view() const { return ix_; }
    uint64_t file_size() const { return size_; }

    /// Exact top-k for each CSR row of queries, on `threads` threads (exactly
    /// min(threads, nq) are started). Outputs are nq x k (docs padded with
    /// UINT32_MAX, scores with 0) plus per-query hit and posting counts. All
    /// queries are validated before any is searched. `allowed` (null: every
    /// document) is a bitmap of ceil(num_docs / 64) words, bit d of word d / 64
    /// set for the documents a hit may be: one filter for every query.
    /// `algorithm` chooses how (the hits are the same); BlockMax and BlockForward use doc blocks of
    /// 2^block_shift documents (BlockForward: block_shift <= kMaxForwardShift).
    /// out_postings counts the postings each query decoded.
    void search_batch(const uint64_t* indptr, size_t nq, const uint32_t* indices, const float* values, uint32_t k,
                      uint32_t threads, uint32_t* out_docs, float* out_scores, uint32_t* out_counts,
                      uint64_t* out_postings, const uint64_t* allowed = nullptr,
                      Algorithm algorithm = Algorithm::Exhaustive, uint32_t block_shift = 6);

    /// The per-term doc-block maxima for 2^shift documents a block: built on first use (one pass over every
    /// posting list), then kept for the life of the searcher. Thread-safe.
    const DocBlockMax& doc_block_max(uint32_t shift);

    /// The doc-block forward index for 2^shift documents a block (shift <= kMaxForwardShift): built on first use
    /// (two passes over every posting list), then kept for the life of the searcher. Thread-safe.
    const DocBlockForward& doc_block_forward(uint32_t shift);

    /// Bytes held by the doc-block maxima at `shift`, plus the forward index's when `forward`; 0 for what was
    /// not built yet.
    uint64_t pruning_bytes(bool forward, uint32_t shift);

    /// Decoded posting list of one term (for tests and explanations).
    void postings(uint32_t term, std::vector<uint32_t>& docs, std::vector<uint8_t>& impacts) const;

   private:
    /// What one search thread scores into, reused across queries and calls (fresh memory per query cost page
    /// faults): the per-document accumulator (all zero between queries) and block_max_pruning's scratch.
    struct Workspace {
        std::unique_ptr<uint32_t[]> acc;
        std::vector<uint32_t> ub, touched, alive_before;  // ub all zero between queries
        std::vector<uint64_t> heap, bits;
        BlockMaxScratch scratch(uint32_t num_blocks);  // sized for num_blocks doc blocks
    };
    std::unique_ptr<Workspace> acquire_workspace();
    void release_workspace(std::unique_ptr<Workspace> ws);

    int fd_ = -1;
    void* map_ = nullptr;
    uint64_t size_ = 0;
    IndexView ix_;
    std::mutex pool_mutex_;
    std::vector<std::unique_ptr<Workspace>> pool_;
    std::mutex block_max_mutex_;
    std::map<uint32_t, std::unique_ptr<DocBlockMax>> block_max_;  // by shift
    std::map<uint32_t, std::unique_ptr<DocBlockForward>> block_forward_;  // by shift, under block_max_mutex_
};

}  // namespace lsrcore
