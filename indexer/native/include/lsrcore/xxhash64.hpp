// XXH64 (Yann Collet's xxHash, 64-bit variant, seed 0), used for the section
// and header checksums. Tested against the `xxhash` Python package.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lsrcore {

namespace xxh_detail {
inline constexpr uint64_t P1 = 11400714785074694791ULL;
inline constexpr uint64_t P2 = 14029467366897019727ULL;
inline constexpr uint64_t P3 = 1609587929392839161ULL;
inline constexpr uint64_t P4 = 9650029242287828579ULL;
inline constexpr uint64_t P5 = 2870177450012600261ULL;

inline uint64_t rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
inline uint64_t read64(const uint8_t* p) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
}
inline uint32_t read32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}
inline uint64_t round(uint64_t acc, uint64_t input) {
    acc += input * P2;
    acc = rotl(acc, 31);
    return acc * P1;
}
inline uint64_t merge(uint64_t acc, uint64_t val) {
    acc ^= round(0, val);
    return acc * P1 + P4;
}
}  // namespace xxh_detail

/// XXH64 over data that arrives in pieces: update() any number of times, then
/// digest(). Equal to the one-shot hash of the concatenation.
class Xxh64Stream {
   public:
    explicit Xxh64Stream(uint64_t seed = 0)
        : seed_(seed),
          v1_(seed + xxh_detail::P1 + xxh_detail::P2),
          v2_(seed + xxh_detail::P2),
          v3_(seed),
          v4_(seed - xxh_detail::P1) {}

    void update(const void* data, size_t len) {
        const uint8_t* p = static_cast<const uint8_t*>(data);
        total_ += len;
        if (buffered_ + len < 32) {
            if (len > 0) std::memcpy(buf_ + buffered_, p, len);
            buffered_ += len;
            return;
        }
        if (buffered_ > 0) {
            const size_t fill = 32 - buffered_;
            std::memcpy(buf_ + buffered_, p, fill);
            stripe(buf_);
            p += fill;
            len -= fill;
            buffered_ = 0;
        }
        for (; len >= 32; p += 32, len -= 32) stripe(p);
        if (len > 0) std::memcpy(buf_, p, len);
        buffered_ = len;
    }

    uint64_t digest() const {
        using namespace xxh_detail;
        uint64_t h;
        if (total_ >= 32) {
            h = rotl(v1_, 1) + rotl(v2_, 7) + rotl(v3_, 12) + rotl(v4_, 18);
            h = merge(h, v1_);
            h = merge(h, v2_);
            h = merge(h, v3_);
            h = merge(h, v4_);
        } else {
            h = seed_ + P5;
        }
        h += total_;
        const uint8_t* p = buf_;
        const uint8_t* const end = buf_ + buffered_;
        while (p + 8 <= end) {
            h ^= round(0, read64(p));
            h = rotl(h, 27) * P1 + P4;
            p += 8;
        }
        if (p + 4 <= end) {
            h ^= static_cast<uint64_t>(read32(p)) * P1;
            h = rotl(h, 23) * P2 + P3;
            p += 4;
        }
        while (p < end) {
            h ^= (*p) * P5;
            h = rotl(h, 11) * P1;
            ++p;
        }
        h ^= h >> 33;
        h *= P2;
        h ^= h >> 29;
        h *= P3;
        h ^= h >> 32;
        return h;
    }

   private:
    void stripe(const uint8_t* p) {
        using namespace xxh_detail;
        v1_ = round(v1_, read64(p));
        v2_ = round(v2_, read64(p + 8));
        v3_ = round(v3_, read64(p + 16));
        v4_ = round(v4_, read64(p + 24));
    }

    uint64_t seed_, v1_, v2_, v3_, v4_;
    uint64_t total_ = 0;
    uint8_t buf_[32] = {};
    size_t buffered_ = 0;
};

inline uint64_t xxh64(const void* data, size_t len, uint64_t seed = 0) {
    Xxh64Stream s(seed);
    s.update(data, len);
    return s.digest();
}

}  // namespace lsrcore
