// Building the doc-block forward index (doc_block_forward.hpp); compiled for the baseline ISA.
#include "lsrcore/doc_block_forward.hpp"

#include <stdexcept>

#include "lsrcore/posting_cursor.hpp"

namespace lsrcore {

DocBlockForwardView DocBlockForward::view() const {
    return DocBlockForwardView{shift, num_blocks, start.data(), term.data(), hit.data(), dir_start.data(), dir.data()};
}

uint64_t DocBlockForward::bytes() const {
    return (start.size() + dir_start.size()) * sizeof(uint64_t) + (term.size() + dir.size()) * sizeof(uint32_t) +
           hit.size() * sizeof(uint16_t);
}

DocBlockForward build_doc_block_forward(const IndexView& ix, uint32_t shift) {
    if (shift > kMaxForwardShift) throw std::invalid_argument("forward index doc block shift must be in 0..8");
    DocBlockForward out;
    out.shift = shift;
    out.num_blocks = static_cast<uint32_t>((uint64_t(ix.num_docs) + (uint64_t(1) << shift) - 1) >> shift);
    out.start.assign(size_t(out.num_blocks) + 1, 0);
    for (uint32_t t = 0; t < ix.vocab_size; ++t) {  // 1. postings per doc block
        BlockCursor c(ix, t);
        while (c.next_block()) {
            c.decode();
            for (uint32_t i = 0; i < c.size(); ++i) ++out.start[(c.docs()[i] >> shift) + 1];
        }
    }
    for (uint32_t b = 0; b < out.num_blocks; ++b) out.start[b + 1] += out.start[b];
    const uint64_t total = out.start[out.num_blocks];
    if (total != ix.num_postings) throw FormatError("forward index: posting count differs from the header's");
    out.term.resize(total);
    out.hit.resize(total);
    std::vector<uint64_t> pos(out.start.begin(), out.start.end() - 1);
    const uint32_t mask = (uint32_t(1) << shift) - 1;
    for (uint32_t t = 0; t < ix.vocab_size; ++t) {  // 2. terms in increasing order: each block's entries come sorted
        BlockCursor c(ix, t);
        while (c.next_block()) {
            c.decode();
            for (uint32_t i = 0; i < c.size(); ++i) {
                const uint32_t d = c.docs()[i];
                const uint64_t e = pos[d >> shift]++;
                out.term[e] = t;
                out.hit[e] = static_cast<uint16_t>((d & mask) | (c.impacts()[i] << 8));
            }
        }
    }
    out.dir_start.assign(size_t(out.num_blocks) + 1, 0);
    for (uint32_t b = 0; b < out.num_blocks; ++b) {
        out.dir_start[b] = out.dir.size();
        for (uint64_t e = out.start[b]; e < out.start[b + 1]; e += kDirStride) out.dir.push_back(out.term[e]);
    }
    out.dir_start[out.num_blocks] = out.dir.size();
    return out;
}

}  // namespace lsrcore
