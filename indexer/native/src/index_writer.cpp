// Index writer, second half: the serializer (index_writer.hpp).
#include "lsrcore/index_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <system_error>

#include "lsrcore/codec.hpp"
#include "lsrcore/format.hpp"

namespace lsrcore {

namespace {

constexpr size_t kFlushBytes = size_t(1) << 20;

uint64_t align_up(uint64_t x) { return (x + kSectionAlign - 1) / kSectionAlign * kSectionAlign; }

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

template <typename T>
std::pair<const uint8_t*, size_t> bytes_of(const std::vector<T>& v) {
    return {reinterpret_cast<const uint8_t*>(v.data()), v.size() * sizeof(T)};
}

}  // namespace

IndexWriter::IndexWriter(std::string path, const uint32_t* df, uint32_t vocab_size, uint32_t num_docs,
                         float max_weight)
    : path_(std::move(path)),
      tmp_(path_ + ".tmp"),
      vocab_size_(vocab_size),
      num_docs_(num_docs),
      scale_(max_weight > 0.0f ? double(max_weight) / kMaxImpact : 0.0),
      term_block_start_(uint64_t(vocab_size) + 1, 0),
      term_df_(df, df + vocab_size),
      term_max_(vocab_size, 0) {
    if (vocab_size == 0) throw std::invalid_argument("vocab_size must be positive");
    if (!std::isfinite(max_weight) || max_weight < 0.0f) throw std::invalid_argument("bad max weight");
    for (uint32_t t = 0; t < vocab_size; ++t) {
        if (df[t] > num_docs) throw std::invalid_argument("a term frequency exceeds the number of documents");
        num_postings_ += df[t];
        num_blocks_ += (uint64_t(df[t]) + kBlockSize - 1) / kBlockSize;
    }
    if (num_postings_ > 0 && !(max_weight > 0.0f)) throw std::invalid_argument("postings need a positive max weight");
    block_first_.reserve(num_blocks_);
    block_last_.reserve(num_blocks_);
    block_max_.reserve(num_blocks_);
    block_bits_.reserve(2 * num_blocks_);
    block_offset_.reserve(num_blocks_ + 1);
    block_offset_.push_back(0);

    // Every section but the last (DATA) has a size known now.
    const uint64_t V = vocab_size, B = num_blocks_;
    const uint64_t sizes[kNumSections - 1] = {(V + 1) * 8, V * 4, V, B * 4, B * 4, B, 2 * B, (B + 1) * 8};
    data_offset_ = kHeaderBytes;
    for (uint64_t s : sizes) data_offset_ = align_up(data_offset_ + s);

    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "creating " + tmp_);
    if (::lseek(fd_, static_cast<off_t>(data_offset_), SEEK_SET) < 0) {
        const int err = errno;
        ::close(fd_);
        ::unlink(tmp_.c_str());
        throw std::system_error(err, std::generic_category(), "seeking in " + tmp_);
    }
}

IndexWriter::~IndexWriter() {
    if (!done_) {
        if (fd_ >= 0) ::close(fd_);
        ::unlink(tmp_.c_str());
    }
}

void IndexWriter::flush() {
    write_all(fd_, pending_.data(), pending_.size(), tmp_);
    pending_.clear();
}

void IndexWriter::append(const Builder& part) {
    if (done_) throw std::invalid_argument("the index is already finished");
    if (part.vocab_size() != vocab_size_) throw std::invalid_argument("part has another vocabulary size");
    if (part.term_lo() != next_term_)
        throw std::invalid_argument("parts must come in term order: expected term " + std::to_string(next_term_) +
                                    ", got " + std::to_string(part.term_lo()));
    if (part.num_docs() != num_docs_) throw std::invalid_argument("part holds another number of documents");
    for (uint32_t t = part.term_lo(); t < part.term_hi(); ++t)
        if (part.postings(t).size() != term_df_[t])
            throw std::invalid_argument("term " + std::to_string(t) + " has " +
                                        std::to_string(part.postings(t).size()) + " postings, expected " +
                                        std::to_string(term_df_[t]) + " (did the input change between passes?)");

    alignas(64) uint32_t gaps[kBlockSize], imps[kBlockSize];
    uint8_t packed[16 * 32];
    for (uint32_t t = part.term_lo(); t < part.term_hi(); ++t) {
        const auto& list = part.postings(t);
        term_block_start_[t] = block_first_.size();
        uint32_t tmax = 0;
        for (size_t start = 0; start < list.size(); start += kBlockSize) {
            const uint32_t n = static_cast<uint32_t>(std::min<size_t>(kBlockSize, list.size() - start));
            uint32_t gmax = 0, bmax = 0;
            for (uint32_t i = 0; i < n; ++i) {
                const Posting& p = list[start + i];
                gaps[i] = i == 0 ? 0 : p.doc - list[start + i - 1].doc - 1;
                double q = std::nearbyint(double(p.weight) / scale_);
                q = std::min<double>(std::max<double>(q, 1.0), kMaxImpact);
                imps[i] = static_cast<uint32_t>(q);
                gmax = std::max(gmax, gaps[i]);
                bmax = std::max(bmax, imps[i]);
            }
            for (uint32_t i = n; i < kBlockSize; ++i) gaps[i] = imps[i] = 0;
            const uint32_t db = bits_needed(gmax), ib = bits_needed(bmax);
            block_first_.push_back(list[start].doc);
            block_last_.push_back(list[start + n - 1].doc);
            block_max_.push_back(static_cast<uint8_t>(bmax));
            block_bits_.push_back(static_cast<uint8_t>(db));
            block_bits_.push_back(static_cast<uint8_t>(ib));
            for (const auto& [values, bits] : {std::pair{gaps, db}, std::pair{imps, ib}}) {
                pack_block(values, n, bits, packed);
                const size_t len = packed_bytes(n, bits);
                pending_.insert(pending_.end(), packed, packed + len);
                data_hash_.update(packed, len);
                data_bytes_ += len;
            }
            block_offset_.push_back(data_bytes_);
            tmax = std::max(tmax, bmax);
        }
        term_max_[t] = static_cast<uint8_t>(tmax);
        if (pending_.size() >= kFlushBytes) flush();
    }
    next_term_ = part.term_hi();
}

double IndexWriter::finish() {
    if (done_) throw std::invalid_argument("the index is already finished");
    if (next_term_ != vocab_size_)
        throw std::invalid_argument("terms from " + std::to_string(next_term_) + " on were never written");
    term_block_start_[vocab_size_] = block_first_.size();
    pending_.resize(pending_.size() + (align_up(data_offset_ + data_bytes_) - (data_offset_ + data_bytes_)), 0);
    flush();

    const std::pair<const uint8_t*, size_t> sections[kNumSections - 1] = {
        bytes_of(term_block_start_), bytes_of(term_df_),    bytes_of(term_max_),
        bytes_of(block_first_),      bytes_of(block_last_), bytes_of(block_max_),
        bytes_of(block_bits_),       bytes_of(block_offset_)};

    Header h;
    std::memset(&h, 0, sizeof(h));
    std::memcpy(h.magic, kMagic, sizeof(kMagic));
    h.version = kFormatVersion;
    h.block_size = kBlockSize;
    h.num_docs = num_docs_;
    h.vocab_size = vocab_size_;
    h.num_postings = num_postings_;
    h.num_blocks = block_first_.size();
    h.impact_scale = scale_;
    uint64_t offset = kHeaderBytes;
    for (uint32_t i = 0; i < kNumSections - 1; ++i) {
        h.sections[i].offset = offset;
        h.sections[i].length = sections[i].second;
        h.sections[i].checksum = xxh64(sections[i].first, sections[i].second);
        offset = align_up(offset + sections[i].second);
    }
    if (offset != data_offset_) throw std::logic_error("metadata sections outgrew their reserved space");
    h.sections[DATA] = {data_offset_, data_bytes_, data_hash_.digest()};
    h.file_size = align_up(data_offset_ + data_bytes_);
    uint8_t header_bytes[kHeaderBytes] = {};
    std::memcpy(header_bytes, &h, sizeof(h));
    h.header_checksum = xxh64(header_bytes, offsetof(Header, header_checksum));
    std::memcpy(header_bytes, &h, sizeof(h));

    if (::lseek(fd_, 0, SEEK_SET) < 0) throw std::system_error(errno, std::generic_category(), "seeking in " + tmp_);
    static const uint8_t zeros[kSectionAlign] = {};
    write_all(fd_, header_bytes, kHeaderBytes, tmp_);
    for (const auto& [p, n] : sections) {
        write_all(fd_, p, n, tmp_);
        write_all(fd_, zeros, (kSectionAlign - n % kSectionAlign) % kSectionAlign, tmp_);
    }
    if (::fsync(fd_) != 0) throw std::system_error(errno, std::generic_category(), "fsync " + tmp_);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw std::system_error(errno, std::generic_category(), "closing " + tmp_);
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
        throw std::system_error(errno, std::generic_category(), "renaming " + tmp_ + " to " + path_);
    done_ = true;
    return scale_;
}

}  // namespace lsrcore
