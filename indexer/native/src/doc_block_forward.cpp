// Building the doc-block forward index (doc_block_forward.hpp); compiled for the baseline ISA.
#include "lsrcore/doc_block_forward.hpp"

#include <stdexcept>

#include "lsrcore/posting_cursor.hpp"

namespace lsrcore {

DocBlockForwardView DocBlockForward::view() const {
    DocBlockForwardView v;
    v.shift = shift;
    v.num_blocks = num_blocks;
    v.start = start.data();
    v.term = wide ? term.data() : nullptr;
    v.term16 = wide ? nullptr : term16.data();
    v.hit = hit.data();
    v.dir_start = dir_start.data();
    v.dir = wide ? dir.data() : nullptr;
    v.dir16 = wide ? nullptr : dir16.data();
    return v;
}

uint64_t DocBlockForward::bytes() const {
    return (start.size() + dir_start.size()) * sizeof(uint64_t) + (term.size() + dir.size()) * sizeof(uint32_t) +
           (term16.size() + dir16.size() + hit.size()) * sizeof(uint16_t);
}

namespace {

template <class T>
void fill_terms(const IndexView& ix, DocBlockForward& out, std::vector<T>& term, std::vector<T>& dir) {
    term.resize(out.start[out.num_blocks]);
    std::vector<uint64_t> pos(out.start.begin(), out.start.end() - 1);
    const uint32_t shift = out.shift, mask = (uint32_t(1) << shift) - 1;
    for (uint32_t t = 0; t < ix.vocab_size; ++t) {  // terms in increasing order: each block's entries come sorted
        BlockCursor c(ix, t);
        while (c.next_block()) {
            c.decode();
            for (uint32_t i = 0; i < c.size(); ++i) {
                const uint32_t d = c.docs()[i];
                const uint64_t e = pos[d >> shift]++;
                term[e] = static_cast<T>(t);
                out.hit[e] = static_cast<uint16_t>((d & mask) | (c.impacts()[i] << 8));
            }
        }
    }
    out.dir_start.assign(size_t(out.num_blocks) + 1, 0);
    for (uint32_t b = 0; b < out.num_blocks; ++b) {
        out.dir_start[b] = dir.size();
        for (uint64_t e = out.start[b]; e < out.start[b + 1]; e += kDirStride) dir.push_back(term[e]);
    }
    out.dir_start[out.num_blocks] = dir.size();
}

}  // namespace

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
    out.hit.resize(total);
    out.wide = ix.vocab_size > 65536;
    if (!out.wide)
        fill_terms(ix, out, out.term16, out.dir16);
    else
        fill_terms(ix, out, out.term, out.dir);
    return out;
}

}  // namespace lsrcore
