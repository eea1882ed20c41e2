// Block codec for posting lists.
//
// A posting list is cut into blocks of kBlockSize postings. Each block stores
//   * doc-id gaps: g[0] = 0, g[i] = doc[i] - doc[i-1] - 1 (the block's first
//     doc id lives in the block metadata), packed with `doc_bits` bits each;
//   * impacts (1..255), packed with `impact_bits` bits each.
//
// Full blocks use a *vertical* 4-lane layout (as SIMD-BP128): value i sits
// in lane i % 4, row i / 4, and lane j's bit stream is interleaved word by
// word with the other lanes (word w of lane j is at w * 4 + j). Unpacking a
// row performs the same shift/mask on 4 consecutive u32 words, which
// compilers vectorise for SSE/AVX2/AVX-512 alike, so the on-disk layout does
// not depend on the CPU that reads it. Each lane holds 32 values of b bits in
// exactly b words, so a full block of b-bit values takes 16 * b bytes.
//
// The last, partial block of a list uses a plain little-endian bit stream
// (value i at bit i * b) of ceil(n * b / 8) bytes, decoded with scalar code.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

// Everything here has internal linkage (anonymous namespace): kernel
// translation units compiled with different -m flags each get their own copy,
// so the linker can never hand an AVX-512 instantiation to the scalar path.
namespace lsrcore {
namespace {

inline constexpr uint32_t kBlockSize = 128;
inline constexpr uint32_t kLanes = 4;
inline constexpr uint32_t kRows = kBlockSize / kLanes;

/// Number of bits needed to store v (0 for v == 0).
inline uint32_t bits_needed(uint32_t v) {
    return v == 0 ? 0u : 32u - static_cast<uint32_t>(__builtin_clz(v));
}

/// Bytes used by n values of b bits (full blocks: n == kBlockSize).
inline size_t packed_bytes(uint32_t n, uint32_t b) {
    if (n == kBlockSize) return size_t(16) * b;
    return (size_t(n) * b + 7) / 8;
}

/// Pack kBlockSize values of b bits (vertical layout) into out (16*b bytes).
inline void pack_vertical(const uint32_t* in, uint32_t b, uint8_t* out) {
    if (b == 0) return;
    const uint32_t words_per_lane = b * kRows / 32;  // = b
    uint32_t words[kLanes * 32 + kLanes] = {};
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
        for (uint32_t row = 0; row < kRows; ++row) {
            const uint64_t v = in[row * kLanes + lane];
            const uint32_t bit = row * b;
            const uint32_t w = bit / 32, s = bit % 32;
            words[w * kLanes + lane] |= static_cast<uint32_t>(v << s);
            if (s + b > 32) words[(w + 1) * kLanes + lane] |= static_cast<uint32_t>(v >> (32 - s));
        }
    }
    std::memcpy(out, words, size_t(words_per_lane) * kLanes * 4);
}

/// Unpack kBlockSize values of B bits from the vertical layout.
/// Written so that the lane loop auto-vectorises; instantiated per B so all
/// shifts are compile-time constants.
template <uint32_t B>
inline void unpack_vertical_fixed(const uint8_t* in, uint32_t* out) {
    if constexpr (B == 0) {
        for (uint32_t i = 0; i < kBlockSize; ++i) out[i] = 0;
    } else {
        uint32_t words[B * 4];
        std::memcpy(words, in, sizeof(words));
        constexpr uint32_t mask = B == 32 ? 0xFFFFFFFFu : ((1u << B) - 1u);
#pragma GCC unroll 32
        for (uint32_t row = 0; row < kRows; ++row) {
            const uint32_t bit = row * B;
            const uint32_t w = bit / 32, s = bit % 32;
            uint32_t* o = out + row * kLanes;
            const uint32_t* lo = words + w * kLanes;
            if (s + B > 32) {
                const uint32_t* hi = words + (w + 1) * kLanes;
                for (uint32_t lane = 0; lane < kLanes; ++lane)
                    o[lane] = ((lo[lane] >> s) | (hi[lane] << (32 - s))) & mask;
            } else {
                for (uint32_t lane = 0; lane < kLanes; ++lane)
                    o[lane] = (lo[lane] >> s) & mask;
            }
        }
    }
}

using UnpackFn = void (*)(const uint8_t*, uint32_t*);

template <uint32_t... Bs>
struct UnpackTable {
    static constexpr UnpackFn table[] = {&unpack_vertical_fixed<Bs>...};
};

template <size_t... Is>
constexpr auto make_unpack_table(std::index_sequence<Is...>) {
    return UnpackTable<static_cast<uint32_t>(Is)...>{};
}

/// Unpack a full block of b bits (b <= 32).
inline void unpack_vertical(const uint8_t* in, uint32_t b, uint32_t* out) {
    using Table = decltype(make_unpack_table(std::make_index_sequence<33>{}));
    Table::table[b](in, out);
}

/// Pack n values of b bits as a little-endian bit stream.
inline void pack_stream(const uint32_t* in, uint32_t n, uint32_t b, uint8_t* out) {
    const size_t nbytes = packed_bytes(n, b);
    std::memset(out, 0, nbytes);
    if (b == 0) return;
    for (uint32_t i = 0; i < n; ++i) {
        const uint64_t bit = uint64_t(i) * b;
        uint64_t v = in[i];
        size_t byte = bit / 8;
        uint32_t s = bit % 8;
        v <<= s;
        for (uint32_t used = 0; used < b + s; used += 8) {
            out[byte++] |= static_cast<uint8_t>(v & 0xFF);
            v >>= 8;
        }
    }
}

/// Unpack n values of b bits from a little-endian bit stream.
inline void unpack_stream(const uint8_t* in, uint32_t n, uint32_t b, uint32_t* out) {
    if (b == 0) {
        for (uint32_t i = 0; i < n; ++i) out[i] = 0;
        return;
    }
    const uint64_t mask = b == 32 ? 0xFFFFFFFFull : ((1ull << b) - 1ull);
    const size_t nbytes = packed_bytes(n, b);
    for (uint32_t i = 0; i < n; ++i) {
        const uint64_t bit = uint64_t(i) * b;
        const size_t byte = bit / 8;
        const uint32_t s = bit % 8;
        uint64_t window = 0;
        const size_t take = (s + b + 7) / 8;  // <= 5 bytes
        for (size_t j = 0; j < take && byte + j < nbytes; ++j)
            window |= uint64_t(in[byte + j]) << (8 * j);
        out[i] = static_cast<uint32_t>((window >> s) & mask);
    }
}

/// Unpack n (<= kBlockSize) values of b bits in the layout used for n.
inline void unpack_block(const uint8_t* in, uint32_t n, uint32_t b, uint32_t* out) {
    if (n == kBlockSize)
        unpack_vertical(in, b, out);
    else
        unpack_stream(in, n, b, out);
}

inline void pack_block(const uint32_t* in, uint32_t n, uint32_t b, uint8_t* out) {
    if (n == kBlockSize)
        pack_vertical(in, b, out);
    else
        pack_stream(in, n, b, out);
}

}  // namespace
}  // namespace lsrcore
