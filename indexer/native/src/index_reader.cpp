// Parsing and validation of index files (the reader side).
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <string>

#include "lsrcore/codec.hpp"
#include "lsrcore/format.hpp"
#include "lsrcore/index_view.hpp"
#include "lsrcore/xxhash64.hpp"

namespace lsrcore {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw FormatError("corrupt or incomplete index: " + msg); }

const char* section_name(uint32_t i) {
    static const char* names[kNumSections] = {"TERM_BLOCK_START", "TERM_DF",   "TERM_MAX",
                                              "BLOCK_FIRST_DOC",  "BLOCK_LAST_DOC", "BLOCK_MAX",
                                              "BLOCK_BITS",       "BLOCK_OFFSET",   "DATA"};
    return names[i];
}

}  // namespace

IndexView parse_index(const uint8_t* bytes, size_t size) {
    if (size < kHeaderBytes) fail("file has " + std::to_string(size) + " bytes, smaller than the header");
    Header h;
    std::memcpy(&h, bytes, sizeof(Header));
    if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) fail("bad magic, not an index file");
    if (h.version != kFormatVersion)
        fail("format version " + std::to_string(h.version) + ", this build reads version " +
             std::to_string(kFormatVersion));
    const uint64_t hsum = xxh64(bytes, offsetof(Header, header_checksum));
    if (hsum != h.header_checksum) fail("header checksum mismatch");
    if (h.block_size != kBlockSize) fail("unsupported block size");
    if (h.file_size != size)
        fail("file is " + std::to_string(size) + " bytes, header says " + std::to_string(h.file_size) +
             " (truncated?)");

    const uint64_t V = h.vocab_size, B = h.num_blocks;
    const uint64_t expected[kNumSections - 1] = {8 * (V + 1), 4 * V, V, 4 * B, 4 * B, B, 2 * B, 8 * (B + 1)};
    for (uint32_t i = 0; i < kNumSections; ++i) {
        const SectionEntry& s = h.sections[i];
        if (s.offset % kSectionAlign != 0 || s.offset < kHeaderBytes || s.offset > size ||
            s.length > size - s.offset)
            fail(std::string("section ") + section_name(i) + " lies outside the file");
        if (i + 1 < kNumSections && s.length != expected[i])
            fail(std::string("section ") + section_name(i) + " has the wrong length");
    }
    {
        for (uint32_t i = 0; i < kNumSections; ++i) {
            const SectionEntry& s = h.sections[i];
            if (xxh64(bytes + s.offset, s.length) != s.checksum)
                fail(std::string("checksum mismatch in section ") + section_name(i));
        }
    }
    {
        // Every byte no checksum covers (the header's reserved space, the padding between and after the
        // sections) is written as zero: check it, so that no byte of the file can change unnoticed.
        uint32_t order[kNumSections];
        for (uint32_t i = 0; i < kNumSections; ++i) order[i] = i;
        std::sort(order, order + kNumSections,
                  [&](uint32_t a, uint32_t b) { return h.sections[a].offset < h.sections[b].offset; });
        uint64_t covered = sizeof(Header);
        auto zeros = [&](uint64_t from, uint64_t to) {
            for (uint64_t i = from; i < to; ++i)
                if (bytes[i] != 0) fail("a padding byte at offset " + std::to_string(i) + " is not zero");
        };
        for (uint32_t i : order) {
            const SectionEntry& s = h.sections[i];
            if (s.offset < covered) fail(std::string("section ") + section_name(i) + " overlaps another");
            zeros(covered, s.offset);
            covered = s.offset + s.length;
        }
        zeros(covered, size);
    }

    IndexView ix;
    ix.num_docs = h.num_docs;
    ix.vocab_size = h.vocab_size;
    ix.num_postings = h.num_postings;
    ix.num_blocks = h.num_blocks;
    ix.impact_scale = h.impact_scale;
    auto at = [&](SectionId id) { return bytes + h.sections[id].offset; };
    ix.term_block_start = reinterpret_cast<const uint64_t*>(at(TERM_BLOCK_START));
    ix.term_df = reinterpret_cast<const uint32_t*>(at(TERM_DF));
    ix.term_max = at(TERM_MAX);
    ix.block_first_doc = reinterpret_cast<const uint32_t*>(at(BLOCK_FIRST_DOC));
    ix.block_last_doc = reinterpret_cast<const uint32_t*>(at(BLOCK_LAST_DOC));
    ix.block_max = at(BLOCK_MAX);
    ix.block_bits = at(BLOCK_BITS);
    ix.block_offset = reinterpret_cast<const uint64_t*>(at(BLOCK_OFFSET));
    ix.data = at(DATA);
    ix.data_size = h.sections[DATA].length;

    // Structural checks on the metadata, so that no later read can leave the
    // mapped file even if checksums were skipped.
    if (ix.term_block_start[0] != 0 || ix.term_block_start[V] != B) fail("term block table does not cover the blocks");
    uint64_t postings = 0;
    for (uint64_t t = 0; t < V; ++t) {
        const uint64_t b0 = ix.term_block_start[t], b1 = ix.term_block_start[t + 1];
        const uint64_t df = ix.term_df[t];
        if (b1 < b0 || b1 > B) fail("term block table is not monotone");
        if (b1 - b0 != (df + kBlockSize - 1) / kBlockSize) fail("term document frequency disagrees with its blocks");
        postings += df;
    }
    if (postings != h.num_postings) fail("posting count disagrees with the header");
    if (ix.block_offset[0] != 0 || ix.block_offset[B] != ix.data_size) fail("block offsets do not cover DATA");
    for (uint64_t t = 0; t < V; ++t) {
        uint64_t remaining = ix.term_df[t];
        for (uint64_t b = ix.term_block_start[t]; b < ix.term_block_start[t + 1]; ++b) {
            const uint32_t n = remaining < kBlockSize ? static_cast<uint32_t>(remaining) : kBlockSize;
            remaining -= n;
            const uint32_t db = ix.block_bits[2 * b], ib = ix.block_bits[2 * b + 1];
            if (db > 32 || ib > 8) fail("block bit width out of range");
            if (ix.block_offset[b + 1] < ix.block_offset[b] ||
                ix.block_offset[b + 1] - ix.block_offset[b] != packed_bytes(n, db) + packed_bytes(n, ib))
                fail("block size disagrees with its bit widths");
            if (ix.block_first_doc[b] > ix.block_last_doc[b] || ix.block_last_doc[b] >= h.num_docs)
                fail("block doc range out of bounds");
            if (b > ix.term_block_start[t] && ix.block_first_doc[b] <= ix.block_last_doc[b - 1])
                fail("blocks of a term are not in doc order");
            if (ix.block_max[b] == 0 || ix.block_max[b] > ix.term_max[t]) fail("block max impact out of range");
        }
    }

    {
        // Decode everything: doc ids strictly increasing and ending on last_doc,
        // impacts within 1..block max.
        alignas(64) uint32_t gaps[kBlockSize], imps[kBlockSize];
        for (uint64_t t = 0; t < V; ++t) {
            uint64_t remaining = ix.term_df[t];
            for (uint64_t b = ix.term_block_start[t]; b < ix.term_block_start[t + 1]; ++b) {
                const uint32_t n = remaining < kBlockSize ? static_cast<uint32_t>(remaining) : kBlockSize;
                remaining -= n;
                const uint32_t db = ix.block_bits[2 * b], ib = ix.block_bits[2 * b + 1];
                const uint8_t* p = ix.data + ix.block_offset[b];
                unpack_block(p, n, db, gaps);
                unpack_block(p + packed_bytes(n, db), n, ib, imps);
                uint64_t d = ix.block_first_doc[b];
                uint32_t bmax = 0;
                if (gaps[0] != 0) fail("block does not start at its first doc");
                for (uint32_t i = 0; i < n; ++i) {
                    if (i > 0) d += uint64_t(gaps[i]) + 1;
                    if (imps[i] == 0) fail("zero impact in a posting");
                    bmax = imps[i] > bmax ? imps[i] : bmax;
                }
                if (d != ix.block_last_doc[b]) fail("decoded doc ids disagree with the block's last doc");
                if (bmax != ix.block_max[b]) fail("decoded impacts disagree with the block max");
            }
        }
    }
    return ix;
}

}  // namespace lsrcore
