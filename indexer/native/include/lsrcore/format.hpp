// On-disk layout of an index file (little-endian, every section 64-byte aligned).
//
//   Header (256 bytes, see below), then the sections listed in SectionId, each
//   described in the header by {offset, length, xxh64 checksum}.
//
//   TERM_BLOCK_START u64[V+1]  first block of term t is TERM_BLOCK_START[t]
//   TERM_DF          u32[V]    postings of term t
//   TERM_MAX         u8[V]     largest impact of term t
//   BLOCK_FIRST_DOC  u32[B]    first doc id of each block
//   BLOCK_LAST_DOC   u32[B]    last doc id of each block
//   BLOCK_MAX        u8[B]     largest impact of each block (block-max metadata)
//   BLOCK_BITS       u8[2B]    doc-gap bits, impact bits of each block
//   BLOCK_OFFSET     u64[B+1]  byte offset of each block in DATA
//   DATA             u8[...]   packed gaps then packed impacts of each block (codec.hpp)
//
// The file is written to a temporary name, fsynced and renamed into place.
#pragma once

#include <cstdint>

namespace lsrcore {

inline constexpr char kMagic[8] = {'L', 'S', 'R', 'I', 'D', 'X', '\0', '\x1a'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint32_t kNumSections = 9;
inline constexpr uint64_t kSectionAlign = 64;

enum SectionId : uint32_t {
    TERM_BLOCK_START = 0,
    TERM_DF,
    TERM_MAX,
    BLOCK_FIRST_DOC,
    BLOCK_LAST_DOC,
    BLOCK_MAX,
    BLOCK_BITS,
    BLOCK_OFFSET,
    DATA,
};

struct SectionEntry {
    uint64_t offset;
    uint64_t length;
    uint64_t checksum;
};

struct Header {
    char magic[8];
    uint32_t version;
    uint32_t block_size;
    uint32_t num_docs;
    uint32_t vocab_size;
    uint64_t num_postings;
    uint64_t num_blocks;
    double impact_scale;  // float weight represented by one impact unit
    uint64_t file_size;
    SectionEntry sections[kNumSections];  // 9 * 24 = 216 bytes
    // header checksum: xxh64 of the bytes above this field
    uint64_t header_checksum;
};

static_assert(sizeof(Header) == 8 + 4 * 4 + 8 * 4 + 24 * kNumSections + 8, "packed header");
inline constexpr uint64_t kHeaderBytes = 320;  // header + reserved space, multiple of 64
static_assert(sizeof(Header) <= kHeaderBytes, "header fits");

}  // namespace lsrcore
