// Memory mapping, query preparation and multi-threaded batch search.
#include "lsrcore/searcher.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <exception>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "lsrcore/kernels.hpp"
#include "lsrcore/posting_cursor.hpp"

namespace lsrcore {

PreparedQuery prepare_query(const IndexView& ix, const uint32_t* indices, const float* values, size_t n) {
    struct Item {
        uint32_t term;
        double weight;
    };
    std::vector<Item> items;
    items.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        if (indices[i] >= ix.vocab_size)
            throw std::invalid_argument("query term id " + std::to_string(indices[i]) + " >= vocab_size " +
                                        std::to_string(ix.vocab_size));
        if (!std::isfinite(values[i]) || values[i] < 0.0f)
            throw std::invalid_argument("query weights must be finite and non-negative");
        items.push_back({indices[i], double(values[i])});
    }
    std::stable_sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.term < b.term; });
    struct Merged {
        uint32_t term;
        float weight;
    };
    std::vector<Merged> merged;
    float wmax = 0.0f;
    for (size_t i = 0; i < items.size();) {
        const uint32_t t = items[i].term;
        double w = 0.0;
        for (; i < items.size() && items[i].term == t; ++i) w += items[i].weight;
        const float wf = static_cast<float>(w);
        if (!(wf > 0.0f)) continue;
        if (!std::isfinite(wf)) throw std::invalid_argument("summed duplicate query weights overflow float32");
        merged.push_back({t, wf});
        wmax = std::max(wmax, wf);
    }
    if (merged.empty()) throw std::invalid_argument("query has no term with a positive weight");
    const uint64_t cap = 0xFFFFFFFFull / (255ull * merged.size());
    const double Q = double(std::min<uint64_t>(65535, cap));
    PreparedQuery pq;
    pq.score_scale = ix.impact_scale * double(wmax) / Q;
    for (const Merged& m : merged) {
        const double q = std::nearbyint(double(m.weight) * Q / double(wmax));
        if (q < 1.0 || ix.term_df[m.term] == 0) continue;
        pq.terms.push_back({m.term, static_cast<uint32_t>(q)});
    }
    return pq;
}

Searcher::Searcher(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "opening " + path);
    struct stat st;
    if (::fstat(fd_, &st) != 0) {
        const int err = errno;
        ::close(fd_);
        throw std::system_error(err, std::generic_category(), "stat " + path);
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ == 0) {
        ::close(fd_);
        throw FormatError("corrupt or incomplete index: " + path + " is empty");
    }
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
    if (map_ == MAP_FAILED) {
        const int err = errno;
        ::close(fd_);
        throw std::system_error(err, std::generic_category(), "mmap " + path);
    }
    try {
        ix_ = parse_index(static_cast<const uint8_t*>(map_), size_);
    } catch (...) {
        ::munmap(map_, size_);
        ::close(fd_);
        throw;
    }
}

Searcher::~Searcher() {
    if (map_ != nullptr && map_ != MAP_FAILED) ::munmap(map_, size_);
    if (fd_ >= 0) ::close(fd_);
}

BlockMaxScratch Searcher::Workspace::scratch(uint32_t num_blocks) {
    if (ub.size() < num_blocks) {  // grown entries are zero, as ub must be; the others need no content
        ub.resize(num_blocks, 0);
        touched.resize(num_blocks);
        heap.resize(num_blocks);
        alive_before.resize(size_t(num_blocks) + 1);
        bits.resize((size_t(num_blocks) + 63) / 64);
    }
    return BlockMaxScratch{ub.data(), heap.data(), touched.data(), alive_before.data(), bits.data()};
}

std::unique_ptr<Searcher::Workspace> Searcher::acquire_workspace() {
    {
        std::lock_guard<std::mutex> lock(pool_mutex_);
        if (!pool_.empty()) {
            auto ws = std::move(pool_.back());
            pool_.pop_back();
            return ws;
        }
    }
    auto ws = std::make_unique<Workspace>();
    ws->acc.reset(new uint32_t[std::max<uint32_t>(ix_.num_docs, 1)]());
    return ws;
}

void Searcher::release_workspace(std::unique_ptr<Workspace> ws) {
    std::lock_guard<std::mutex> lock(pool_mutex_);
    pool_.push_back(std::move(ws));
}

void Searcher::search_batch(const uint64_t* indptr, size_t nq, const uint32_t* indices, const float* values,
                            uint32_t k, uint32_t threads, uint32_t* out_docs, float* out_scores,
                            uint32_t* out_counts, uint64_t* out_postings, const uint64_t* allowed,
                            Algorithm algorithm, uint32_t block_shift) {
    if (k == 0) throw std::invalid_argument("k must be positive");
    if (algorithm != Algorithm::Exhaustive && algorithm != Algorithm::BlockMax &&
        algorithm != Algorithm::BlockForward && algorithm != Algorithm::Auto)
        throw std::invalid_argument("unknown search algorithm");
    const bool forward = algorithm == Algorithm::BlockForward || algorithm == Algorithm::Auto;
    if (forward && block_shift > kMaxForwardShift)
        throw std::invalid_argument("block_forward takes doc blocks of at most 256 documents");
    if (threads == 0) throw std::invalid_argument("threads must be positive");
    if (indptr[0] != 0) throw std::invalid_argument("query indptr[0] must be 0");
    for (size_t q = 0; q < nq; ++q)
        if (indptr[q + 1] < indptr[q]) throw std::invalid_argument("query indptr must be non-decreasing");

    std::vector<PreparedQuery> prepared(nq);
    for (size_t q = 0; q < nq; ++q) {
        try {
            prepared[q] = prepare_query(ix_, indices + indptr[q], values + indptr[q], indptr[q + 1] - indptr[q]);
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("query " + std::to_string(q) + ": " + e.what());
        }
    }

    const kernels::Kernel& kernel = kernels::active();
    const bool pruned = algorithm != Algorithm::Exhaustive;
    DocBlockMaxView bm;
    DocBlockForwardView fw;
    if (pruned) bm = doc_block_max(block_shift).view();
    if (forward) fw = doc_block_forward(block_shift).view();
    std::atomic<size_t> next{0};
    std::exception_ptr error;
    std::mutex error_mutex;
    auto worker = [&]() {
        try {
            auto ws = acquire_workspace();
            uint32_t* acc = ws->acc.get();
            const BlockMaxScratch scratch = pruned ? ws->scratch(bm.num_blocks) : BlockMaxScratch{};
            std::vector<ScoredDoc> hits(k);
            for (size_t q; (q = next.fetch_add(1)) < nq;) {
                const PreparedQuery& pq = prepared[q];
                uint64_t scored = 0;
                const QueryTerm* terms = pq.terms.data();
                const size_t nterms = pq.terms.size();
                uint32_t n = 0;
                if (algorithm == Algorithm::BlockMax)
                    n = kernel.block_max_pruning(ix_, bm, terms, nterms, acc, scratch, k, hits.data(), &scored,
                                                 allowed);
                else if (forward)
                    n = kernel.block_forward_pruning(ix_, bm, fw, terms, nterms, acc, scratch, k, hits.data(),
                                                     &scored, allowed, algorithm == Algorithm::Auto);
                else
                    n = kernel.exhaustive_taat(ix_, terms, nterms, acc, k, hits.data(), &scored, allowed);
                uint32_t* docs = out_docs + q * k;
                float* scores = out_scores + q * k;
                for (uint32_t i = 0; i < n; ++i) {
                    docs[i] = hits[i].doc;
                    scores[i] = static_cast<float>(double(hits[i].score) * pq.score_scale);
                }
                std::fill(docs + n, docs + k, UINT32_MAX);
                std::fill(scores + n, scores + k, 0.0f);
                out_counts[q] = n;
                out_postings[q] = scored;
            }
            release_workspace(std::move(ws));
        } catch (...) {
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    };
    const size_t nthreads = std::min<size_t>(threads, nq);
    if (nthreads <= 1) {
        worker();
    } else {
        std::vector<std::thread> pool;
        pool.reserve(nthreads);
        for (size_t t = 0; t < nthreads; ++t) pool.emplace_back(worker);
        for (auto& th : pool) th.join();
    }
    if (error) std::rethrow_exception(error);
}

const DocBlockMax& Searcher::doc_block_max(uint32_t shift) {
    std::lock_guard<std::mutex> lock(block_max_mutex_);
    auto& slot = block_max_[shift];
    if (!slot) slot = std::make_unique<DocBlockMax>(build_doc_block_max(ix_, shift));
    return *slot;
}

const DocBlockForward& Searcher::doc_block_forward(uint32_t shift) {
    std::lock_guard<std::mutex> lock(block_max_mutex_);
    auto& slot = block_forward_[shift];
    if (!slot) slot = std::make_unique<DocBlockForward>(build_doc_block_forward(ix_, shift));
    return *slot;
}

uint64_t Searcher::pruning_bytes(bool forward, uint32_t shift) {
    std::lock_guard<std::mutex> lock(block_max_mutex_);
    uint64_t n = 0;
    auto bm = block_max_.find(shift);
    if (bm != block_max_.end() && bm->second) n += bm->second->bytes();
    auto fw = block_forward_.find(shift);
    if (forward && fw != block_forward_.end() && fw->second) n += fw->second->bytes();
    return n;
}

void Searcher::postings(uint32_t term, std::vector<uint32_t>& docs, std::vector<uint8_t>& impacts) const {
    if (term >= ix_.vocab_size) throw std::invalid_argument("term id out of range");
    docs.clear();
    impacts.clear();
    BlockCursor c(ix_, term);
    while (c.next_block()) {
        c.decode();
        for (uint32_t i = 0; i < c.size(); ++i) {
            docs.push_back(c.docs()[i]);
            impacts.push_back(static_cast<uint8_t>(c.impacts()[i]));
        }
    }
}

}  // namespace lsrcore
