// Exhaustive TAAT compiled for the scalar instruction set (flags set in CMakeLists.txt).
#include "lsrcore/algorithm/block_forward_pruning.hpp"
#include "lsrcore/algorithm/block_max_pruning.hpp"
#include "lsrcore/algorithm/exhaustive_taat.hpp"
#include "lsrcore/kernels.hpp"

namespace lsrcore::kernels::scalar {

uint32_t exhaustive_taat(const IndexView& ix, const QueryTerm* terms, size_t nterms, uint32_t* acc, uint32_t k,
                         ScoredDoc* out, uint64_t* postings, const uint64_t* allowed) {
    return exhaustive_taat_impl(ix, terms, nterms, acc, k, out, postings, allowed);
}

uint32_t block_max_pruning(const IndexView& ix, const DocBlockMaxView& bm, const QueryTerm* terms, size_t nterms,
                           uint32_t* acc, const BlockMaxScratch& scratch, uint32_t k, ScoredDoc* out,
                           uint64_t* postings, const uint64_t* allowed) {
    return block_max_pruning_impl(ix, bm, terms, nterms, acc, scratch, k, out, postings, allowed);
}

uint32_t block_forward_pruning(const IndexView& ix, const DocBlockMaxView& bm, const DocBlockForwardView& fw,
                               const QueryTerm* terms, size_t nterms, uint32_t* acc, const BlockMaxScratch& scratch,
                               uint32_t k, ScoredDoc* out, uint64_t* postings, const uint64_t* allowed,
                               bool hand_over) {
    return block_forward_pruning_impl(ix, bm, fw, terms, nterms, acc, scratch, k, out, postings, allowed,
                                      hand_over);
}

}  // namespace lsrcore::kernels::scalar
