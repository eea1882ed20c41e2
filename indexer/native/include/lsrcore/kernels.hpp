// Search kernels, one set per instruction set, chosen at run time.
//
// Every kernel computes the same thing bit for bit; they differ only in the
// instructions used to decode blocks, accumulate impacts and select the top k.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "doc_block_forward.hpp"
#include "doc_block_max.hpp"
#include "index_view.hpp"

namespace lsrcore::kernels {

/// Exhaustive term-at-a-time scoring (algorithm/exhaustive_taat.hpp).
/// `acc` has ix.num_docs entries, all zero on entry, and is all zero again on
/// return. Writes up to k hits to `out`, best first (score desc, doc asc),
/// only documents with a positive score (and, when `allowed` is not null, whose
/// bit d of allowed[d / 64] is set); returns the number written and adds the
/// number of postings scored to *postings.
using TaatFn = uint32_t (*)(const IndexView& ix, const QueryTerm* terms, size_t nterms, uint32_t* acc,
                            uint32_t k, ScoredDoc* out, uint64_t* postings, const uint64_t* allowed);

/// Safe block-max pruning over doc blocks (algorithm/block_max_pruning.hpp): the same hits as exhaustive_taat.
/// `acc` as above.
using BlockMaxFn = uint32_t (*)(const IndexView& ix, const DocBlockMaxView& bm, const QueryTerm* terms,
                                size_t nterms, uint32_t* acc, const BlockMaxScratch& scratch, uint32_t k,
                                ScoredDoc* out, uint64_t* postings, const uint64_t* allowed);

/// Safe block-max pruning scoring doc blocks from a forward index (algorithm/block_forward_pruning.hpp): the same
/// hits as exhaustive_taat. `acc` as above; bm and fw have the same doc blocks. With `hand_over` (search algorithm
/// "auto") a query whose blocks would cost more than its postings is searched exhaustively instead.
using BlockForwardFn = uint32_t (*)(const IndexView& ix, const DocBlockMaxView& bm, const DocBlockForwardView& fw,
                                    const QueryTerm* terms, size_t nterms, uint32_t* acc,
                                    const BlockMaxScratch& scratch, uint32_t k, ScoredDoc* out, uint64_t* postings,
                                    const uint64_t* allowed, bool hand_over);

struct Kernel {
    const char* name;
    TaatFn exhaustive_taat;
    BlockMaxFn block_max_pruning;
    BlockForwardFn block_forward_pruning;
};

namespace scalar {
uint32_t exhaustive_taat(const IndexView&, const QueryTerm*, size_t, uint32_t*, uint32_t, ScoredDoc*, uint64_t*,
                         const uint64_t*);
uint32_t block_max_pruning(const IndexView&, const DocBlockMaxView&, const QueryTerm*, size_t, uint32_t*,
                           const BlockMaxScratch&, uint32_t, ScoredDoc*, uint64_t*, const uint64_t*);
uint32_t block_forward_pruning(const IndexView&, const DocBlockMaxView&, const DocBlockForwardView&,
                               const QueryTerm*, size_t, uint32_t*, const BlockMaxScratch&, uint32_t, ScoredDoc*,
                               uint64_t*, const uint64_t*, bool);
}
namespace avx2 {
uint32_t exhaustive_taat(const IndexView&, const QueryTerm*, size_t, uint32_t*, uint32_t, ScoredDoc*, uint64_t*,
                         const uint64_t*);
uint32_t block_max_pruning(const IndexView&, const DocBlockMaxView&, const QueryTerm*, size_t, uint32_t*,
                           const BlockMaxScratch&, uint32_t, ScoredDoc*, uint64_t*, const uint64_t*);
uint32_t block_forward_pruning(const IndexView&, const DocBlockMaxView&, const DocBlockForwardView&,
                               const QueryTerm*, size_t, uint32_t*, const BlockMaxScratch&, uint32_t, ScoredDoc*,
                               uint64_t*, const uint64_t*, bool);
}
namespace avx512 {
uint32_t exhaustive_taat(const IndexView&, const QueryTerm*, size_t, uint32_t*, uint32_t, ScoredDoc*, uint64_t*,
                         const uint64_t*);
uint32_t block_max_pruning(const IndexView&, const DocBlockMaxView&, const QueryTerm*, size_t, uint32_t*,
                           const BlockMaxScratch&, uint32_t, ScoredDoc*, uint64_t*, const uint64_t*);
uint32_t block_forward_pruning(const IndexView&, const DocBlockMaxView&, const DocBlockForwardView&,
                               const QueryTerm*, size_t, uint32_t*, const BlockMaxScratch&, uint32_t, ScoredDoc*,
                               uint64_t*, const uint64_t*, bool);
}

/// Kernels this CPU can run, slowest first.
std::vector<std::string> available();
/// The kernel in use (the fastest available unless select() was called).
const Kernel& active();
/// Use the named kernel; throws std::invalid_argument if unknown or unsupported.
void select(const std::string& name);

}  // namespace lsrcore::kernels
