// Bounded top-k queue over (score, doc) pairs.
//
// Order: a is better than b when a.score > b.score, or the scores are equal
// and a.doc < b.doc (ties go to the smaller doc id). The queue keeps the k
// best entries seen, in any insertion order; `threshold()` is the score an
// entry offered in increasing doc order must beat (0 until the first
// compaction, so zero scores never enter). `finalize()` sorts best-first.
// Internal linkage, see codec.hpp.
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
    explicit TopkQueue(uint32_t k) : k_(k) { buf_.reserve(2 * size_t(k)); }

    uint32_t k() const { return k_; }

    /// Entries not better than the current k-th best are rejected; for entries
    /// offered in increasing doc order that means every score <= threshold().
    uint32_t threshold() const {
        if (k_ == 0) return UINT32_MAX;
        return has_bar_ ? bar_.score : 0;
    }

    /// Offer an entry; returns false if it was rejected outright.
    bool insert(uint32_t score, uint32_t doc) {
        if (k_ == 0 || score == 0) return false;
        const Entry e{score, doc};
        if (has_bar_ && !better(e, bar_)) return false;
        buf_.push_back(e);
        if (buf_.size() >= 2 * size_t(k_)) compact();
        return true;
    }

    /// Whether the queue has held k entries: from then on bar_score() is a lower bound on the k-th best score.
    bool full() const { return has_bar_; }
    uint32_t bar_score() const { return bar_.score; }

    /// Raise the bar to the k-th best entry held now, when enough entries arrived since the last compaction
    /// (k at first, then k / 4 more: amortised O(1) per insert). For algorithms that stop on the bar.
    void tighten() {
        if (k_ == 0) return;
        const size_t need = has_bar_ ? size_t(k_) + std::max<size_t>(1, k_ / 4) : size_t(k_);
        if (buf_.size() >= need) compact();
    }

    /// The k best, sorted best-first; the queue is left unusable.
    std::vector<Entry>& finalize() {
        if (buf_.size() > k_) compact();
        std::sort(buf_.begin(), buf_.end(), better);
        return buf_;
    }

   private:
    // Keep the k best of the buffer (linear time); the k-th best becomes the bar.
    void compact() {
        std::nth_element(buf_.begin(), buf_.begin() + (k_ - 1), buf_.end(), better);
        buf_.resize(k_);
        bar_ = buf_[k_ - 1];
        has_bar_ = true;
    }

    uint32_t k_;
    bool has_bar_ = false;
    Entry bar_{0, 0};
    // Up to 2k candidates, unordered; compacted to the k best when full, so an
    // insert costs amortised O(1) instead of a heap's O(log k).
    std::vector<Entry> buf_;
};

}  // namespace
}  // namespace lsrcore
