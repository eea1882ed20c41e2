// Building the per-term doc-block maxima (doc_block_max.hpp); compiled for the baseline ISA.
#include "lsrcore/doc_block_max.hpp"

#include <stdexcept>

#include "lsrcore/posting_cursor.hpp"

namespace lsrcore {

DocBlockMaxView DocBlockMax::view() const {
    return DocBlockMaxView{shift, num_blocks, start.data(), block.data(), max.data(), dense_row.data(),
                           dense.data()};
}

uint64_t DocBlockMax::bytes() const {
    return start.size() * sizeof(uint64_t) + block.size() * sizeof(uint32_t) + max.size() +
           dense_row.size() * sizeof(uint32_t) + dense.size();
}

DocBlockMax build_doc_block_max(const IndexView& ix, uint32_t shift) {
    if (shift > 20) throw std::invalid_argument("doc block shift must be in 0..20");
    DocBlockMax out;
    out.shift = shift;
    out.num_blocks = static_cast<uint32_t>((uint64_t(ix.num_docs) + (uint64_t(1) << shift) - 1) >> shift);
    out.start.assign(size_t(ix.vocab_size) + 1, 0);
    for (uint32_t t = 0; t < ix.vocab_size; ++t) {
        out.start[t] = out.block.size();
        BlockCursor c(ix, t);
        uint32_t cur = UINT32_MAX, best = 0;  // the doc block being read and the term's largest impact in it
        auto note = [&](uint32_t b, uint32_t impact) {
            if (b != cur) {
                if (cur != UINT32_MAX) {
                    out.block.push_back(cur);
                    out.max.push_back(static_cast<uint8_t>(best));
                }
                cur = b;
                best = 0;
            }
            best = impact > best ? impact : best;
        };
        while (c.next_block()) {
            // A posting block inside one doc block adds at most its block max: no need to decode it.
            if ((c.first_doc() >> shift) == (c.last_doc() >> shift)) {
                note(c.first_doc() >> shift, c.block_max());
                continue;
            }
            c.decode();
            for (uint32_t i = 0; i < c.size(); ++i) note(c.docs()[i] >> shift, c.impacts()[i]);
        }
        if (cur != UINT32_MAX) {
            out.block.push_back(cur);
            out.max.push_back(static_cast<uint8_t>(best));
        }
    }
    out.start[ix.vocab_size] = out.block.size();
    out.dense_row.assign(ix.vocab_size, UINT32_MAX);
    uint32_t rows = 0;
    for (uint32_t t = 0; t < ix.vocab_size; ++t)
        if ((out.start[t + 1] - out.start[t]) * kDenseShare >= out.num_blocks && out.num_blocks > 0)
            out.dense_row[t] = rows++;
    out.dense.assign(size_t(rows) * out.num_blocks, 0);
    for (uint32_t t = 0; t < ix.vocab_size; ++t) {
        if (out.dense_row[t] == UINT32_MAX) continue;
        uint8_t* row = out.dense.data() + size_t(out.dense_row[t]) * out.num_blocks;
        for (uint64_t e = out.start[t]; e < out.start[t + 1]; ++e) row[out.block[e]] = out.max[e];
    }
    return out;
}

}  // namespace lsrcore
