// Bounded top-k queue over (score, doc) pairs.
//
// Order: a is better than b when a.score > b.score, or the scores are equal
// and a.doc < b.doc (ties go to the smaller doc id). The queue keeps the k
// best entries seen; `threshold()` is the score an entry must beat to have a
// chance of entering (0 until the queue is full, so zero scores never enter).
// `finalize()` sorts best-first. Internal linkage, see codec.hpp.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace lsrcore {
namespace {

struct Entry {
    uint32_t score;
    uint32_t doc;
};

inline bool better(const Entry& a, const Entry& b) {
    return a.score > b.score || (a.score == b.score && a.doc < b.doc);
}

class TopkQueue {
   public:
    explicit TopkQueue(uint32_t k) : k_(k) { heap_.reserve(k); }

    void clear() { heap_.clear(); }
    uint32_t k() const { return k_; }
    size_t size() const { return heap_.size(); }
    bool full() const { return heap_.size() == k_; }

    /// Scores <= threshold() cannot enter through `insert_increasing`.
    uint32_t threshold() const {
        if (k_ == 0) return UINT32_MAX;
        return full() ? heap_.front().score : 0;
    }

    /// Offer an entry; returns true if it was kept.
    bool insert(uint32_t score, uint32_t doc) {
        if (k_ == 0 || score == 0) return false;
        const Entry e{score, doc};
        if (!full()) {
            heap_.push_back(e);
            std::push_heap(heap_.begin(), heap_.end(), better);
            return true;
        }
        if (!better(e, heap_.front())) return false;
        std::pop_heap(heap_.begin(), heap_.end(), better);
        heap_.back() = e;
        std::push_heap(heap_.begin(), heap_.end(), better);
        return true;
    }

    /// Sorted best-first; the queue is left empty.
    std::vector<Entry>& finalize() {
        std::sort_heap(heap_.begin(), heap_.end(), better);
        return heap_;
    }

   private:
    uint32_t k_;
    // A heap under `better` keeps the *worst* entry at the front.
    std::vector<Entry> heap_;
};

}  // namespace
}  // namespace lsrcore
