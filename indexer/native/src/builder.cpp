// Index writer (collects postings) and serializer (quantises, packs, writes).
#include "lsrcore/builder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "lsrcore/codec.hpp"
#include "lsrcore/format.hpp"
#include "lsrcore/xxhash64.hpp"

namespace lsrcore {

Builder::Builder(uint32_t vocab_size) : vocab_size_(vocab_size), lists_(vocab_size) {
    if (vocab_size == 0) throw std::invalid_argument("vocab_size must be positive");
}

void Builder::add_batch(const uint64_t* indptr, size_t nrows, const uint32_t* indices, const float* values,
                        size_t nnz) {
    if (indptr[0] != 0) throw std::invalid_argument("indptr[0] must be 0");
    for (size_t r = 0; r < nrows; ++r)
        if (indptr[r + 1] < indptr[r]) throw std::invalid_argument("indptr must be non-decreasing");
    if (indptr[nrows] != nnz) throw std::invalid_argument("indptr[-1] must equal the number of non-zeros");
    for (size_t i = 0; i < nnz; ++i) {
        if (indices[i] >= vocab_size_)
            throw std::invalid_argument("term id " + std::to_string(indices[i]) + " >= vocab_size " +
                                        std::to_string(vocab_size_));
        if (!std::isfinite(values[i]) || values[i] < 0.0f)
            throw std::invalid_argument("weights must be finite and non-negative");
    }
    if (uint64_t(num_docs_) + nrows >= 0xFFFFFFFFull) throw std::invalid_argument("too many documents (limit 2^32-1)");

    struct Item {
        uint32_t term;
        double weight;
    };
    std::vector<Item> row;
    for (size_t r = 0; r < nrows; ++r) {
        row.clear();
        for (uint64_t i = indptr[r]; i < indptr[r + 1]; ++i) row.push_back({indices[i], double(values[i])});
        std::stable_sort(row.begin(), row.end(), [](const Item& a, const Item& b) { return a.term < b.term; });
        const uint32_t doc = num_docs_ + static_cast<uint32_t>(r);
        for (size_t i = 0; i < row.size();) {
            double w = 0.0;
            const uint32_t t = row[i].term;
            for (; i < row.size() && row[i].term == t; ++i) w += row[i].weight;
            const float wf = static_cast<float>(w);
            if (!(wf > 0.0f)) continue;
            if (!std::isfinite(wf)) throw std::invalid_argument("summed duplicate weights overflow float32");
            lists_[t].push_back({doc, wf});
            max_weight_ = std::max(max_weight_, wf);
            ++num_postings_;
        }
    }
    num_docs_ += static_cast<uint32_t>(nrows);
}

namespace {

template <typename T>
void append(std::vector<uint8_t>& out, const std::vector<T>& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(v.data());
    out.insert(out.end(), p, p + v.size() * sizeof(T));
}

void write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
    while (n > 0) {
        const ssize_t w = ::write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "writing " + path);
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
}

}  // namespace

double Builder::write(const std::string& path) const {
    const double scale = max_weight_ > 0.0f ? double(max_weight_) / kMaxImpact : 0.0;
    const uint64_t V = vocab_size_;

    std::vector<uint64_t> term_block_start(V + 1, 0);
    std::vector<uint32_t> term_df(V, 0);
    std::vector<uint8_t> term_max(V, 0);
    std::vector<uint32_t> block_first, block_last;
    std::vector<uint8_t> block_max, block_bits;
    std::vector<uint64_t> block_offset{0};
    std::vector<uint8_t> data;

    alignas(64) uint32_t gaps[kBlockSize], imps[kBlockSize];
    uint8_t packed[16 * 32];
    for (uint64_t t = 0; t < V; ++t) {
        const auto& list = lists_[t];
        term_block_start[t] = block_first.size();
        term_df[t] = static_cast<uint32_t>(list.size());
        uint32_t tmax = 0;
        for (size_t start = 0; start < list.size(); start += kBlockSize) {
            const uint32_t n = static_cast<uint32_t>(std::min<size_t>(kBlockSize, list.size() - start));
            uint32_t gmax = 0, bmax = 0;
            for (uint32_t i = 0; i < n; ++i) {
                const Posting& p = list[start + i];
                gaps[i] = i == 0 ? 0 : p.doc - list[start + i - 1].doc - 1;
                double q = std::nearbyint(double(p.weight) / scale);
                q = std::min<double>(std::max<double>(q, 1.0), kMaxImpact);
                imps[i] = static_cast<uint32_t>(q);
                gmax = std::max(gmax, gaps[i]);
                bmax = std::max(bmax, imps[i]);
            }
            for (uint32_t i = n; i < kBlockSize; ++i) gaps[i] = imps[i] = 0;
            const uint32_t db = bits_needed(gmax), ib = bits_needed(bmax);
            block_first.push_back(list[start].doc);
            block_last.push_back(list[start + n - 1].doc);
            block_max.push_back(static_cast<uint8_t>(bmax));
            block_bits.push_back(static_cast<uint8_t>(db));
            block_bits.push_back(static_cast<uint8_t>(ib));
            pack_block(gaps, n, db, packed);
            data.insert(data.end(), packed, packed + packed_bytes(n, db));
            pack_block(imps, n, ib, packed);
            data.insert(data.end(), packed, packed + packed_bytes(n, ib));
            block_offset.push_back(data.size());
            tmax = std::max(tmax, bmax);
        }
        term_max[t] = static_cast<uint8_t>(tmax);
    }
    term_block_start[V] = block_first.size();

    // Lay the sections out behind the header.
    std::vector<uint8_t> sections[kNumSections];
    append(sections[TERM_BLOCK_START], term_block_start);
    append(sections[TERM_DF], term_df);
    sections[TERM_MAX] = std::move(term_max);
    append(sections[BLOCK_FIRST_DOC], block_first);
    append(sections[BLOCK_LAST_DOC], block_last);
    sections[BLOCK_MAX] = std::move(block_max);
    sections[BLOCK_BITS] = std::move(block_bits);
    append(sections[BLOCK_OFFSET], block_offset);
    sections[DATA] = std::move(data);

    Header h;
    std::memset(&h, 0, sizeof(h));
    std::memcpy(h.magic, kMagic, sizeof(kMagic));
    h.version = kFormatVersion;
    h.block_size = kBlockSize;
    h.num_docs = num_docs_;
    h.vocab_size = vocab_size_;
    h.num_postings = num_postings_;
    h.num_blocks = block_first.size();
    h.impact_scale = scale;
    uint64_t offset = kHeaderBytes;
    for (uint32_t i = 0; i < kNumSections; ++i) {
        h.sections[i].offset = offset;
        h.sections[i].length = sections[i].size();
        h.sections[i].checksum = xxh64(sections[i].data(), sections[i].size());
        offset += sections[i].size();
        offset = (offset + kSectionAlign - 1) / kSectionAlign * kSectionAlign;
    }
    h.file_size = offset;
    uint8_t header_bytes[kHeaderBytes] = {};
    std::memcpy(header_bytes, &h, sizeof(h));
    h.header_checksum = xxh64(header_bytes, offsetof(Header, header_checksum));
    std::memcpy(header_bytes, &h, sizeof(h));

    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "creating " + tmp);
    try {
        static const uint8_t zeros[kSectionAlign] = {};
        write_all(fd, header_bytes, kHeaderBytes, tmp);
        uint64_t pos = kHeaderBytes;
        for (uint32_t i = 0; i < kNumSections; ++i) {
            write_all(fd, sections[i].data(), sections[i].size(), tmp);
            pos += sections[i].size();
            const uint64_t pad = (kSectionAlign - pos % kSectionAlign) % kSectionAlign;
            write_all(fd, zeros, pad, tmp);
            pos += pad;
        }
        if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category(), "fsync " + tmp);
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        throw std::system_error(err, std::generic_category(), "renaming " + tmp + " to " + path);
    }
    return scale;
}

}  // namespace lsrcore
