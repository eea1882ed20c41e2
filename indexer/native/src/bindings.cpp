// The only file that knows about Python: binds the core as `indexer._core`.
// Arrays cross zero-copy with exact dtypes: every argument is noconvert(), so an
// int64 array is refused where uint32 is declared (never narrowed), and a scalar
// must already be a Python int / float / str; every looping call releases the GIL;
// C++ exceptions become Python exceptions.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <system_error>

#include "lsrcore/builder.hpp"
#include "lsrcore/codec.hpp"
#include "lsrcore/index_writer.hpp"
#include "lsrcore/kernels.hpp"
#include "lsrcore/searcher.hpp"
#include "lsrcore/topk_queue.hpp"
#include "lsrcore/xxhash64.hpp"

namespace nb = nanobind;
using namespace nb::literals;

template <typename T>
using Vec = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

template <typename T, size_t N>
using OutArray = nb::ndarray<nb::numpy, T, nb::ndim<N>>;

namespace {

template <typename T>
OutArray<T, 1> new_array(size_t n) {
    T* data = new T[n > 0 ? n : 1]();
    nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
    return OutArray<T, 1>(data, {n}, owner);
}

template <typename T>
OutArray<T, 2> new_matrix(size_t rows, size_t cols) {
    T* data = new T[rows * cols > 0 ? rows * cols : 1]();
    nb::capsule owner(data, [](void* p) noexcept { delete[] static_cast<T*>(p); });
    return OutArray<T, 2>(data, {rows, cols}, owner);
}

void check_csr(const Vec<uint64_t>& indptr, const Vec<uint32_t>& indices, const Vec<float>& values) {
    if (indptr.shape(0) == 0) throw std::invalid_argument("indptr must have at least one entry");
    if (indices.shape(0) != values.shape(0))
        throw std::invalid_argument("indices and values must have the same length");
}

}  // namespace

NB_MODULE(_core, m) {
    m.doc() = "Native inverted index core (private; use the `indexer` package).";

    static nb::exception<lsrcore::FormatError> format_error(m, "FormatError", PyExc_ValueError);
    nb::register_exception_translator([](const std::exception_ptr& p, void*) {
        try {
            std::rethrow_exception(p);
        } catch (const std::system_error& e) {
            PyErr_SetString(PyExc_OSError, e.what());
        }
    });

    m.attr("BLOCK_SIZE") = lsrcore::kBlockSize;
    m.attr("FORMAT_VERSION") = lsrcore::kFormatVersion;

    nb::class_<lsrcore::Builder>(m, "Builder")
        .def(
            "__init__",
            [](lsrcore::Builder* self, uint32_t vocab_size, uint32_t term_lo, std::optional<uint32_t> term_hi,
               std::optional<Vec<uint32_t>> df) {
                if (df && df->shape(0) != vocab_size) throw std::invalid_argument("df needs vocab_size entries");
                new (self) lsrcore::Builder(vocab_size, term_lo, term_hi.value_or(vocab_size),
                                            df ? df->data() : nullptr);
            },
            "vocab_size"_a.noconvert(), "term_lo"_a.noconvert() = 0, "term_hi"_a.noconvert() = nb::none(), "df"_a.noconvert() = nb::none())
        .def(
            "add_batch",
            [](lsrcore::Builder& b, Vec<uint64_t> indptr, Vec<uint32_t> indices, Vec<float> values) {
                check_csr(indptr, indices, values);
                nb::gil_scoped_release release;
                b.add_batch(indptr.data(), indptr.shape(0) - 1, indices.data(), values.data(), indices.shape(0));
            },
            "indptr"_a.noconvert(), "indices"_a.noconvert(), "values"_a.noconvert())
        .def(
            "write",
            [](const lsrcore::Builder& b, const std::string& path) {
                nb::gil_scoped_release release;
                return b.write(path);
            },
            "path"_a.noconvert())
        .def("df",
             [](const lsrcore::Builder& b) {
                 auto out = new_array<uint32_t>(b.vocab_size());
                 std::memcpy(out.data(), b.df().data(), sizeof(uint32_t) * b.vocab_size());
                 return out;
             })
        .def_prop_ro("num_docs", &lsrcore::Builder::num_docs)
        .def_prop_ro("num_postings", &lsrcore::Builder::num_postings)
        .def_prop_ro("max_weight", &lsrcore::Builder::max_weight)
        .def_prop_ro("vocab_size", &lsrcore::Builder::vocab_size);

    nb::class_<lsrcore::IndexWriter>(m, "IndexWriter")
        .def(
            "__init__",
            [](lsrcore::IndexWriter* self, const std::string& path, Vec<uint32_t> df, uint32_t num_docs,
               float max_weight) {
                if (df.shape(0) == 0 || df.shape(0) >= (size_t(1) << 32))
                    throw std::invalid_argument("df needs one entry per vocabulary term");
                nb::gil_scoped_release release;
                new (self) lsrcore::IndexWriter(path, df.data(), static_cast<uint32_t>(df.shape(0)), num_docs,
                                                max_weight);
            },
            "path"_a.noconvert(), "df"_a.noconvert(), "num_docs"_a.noconvert(), "max_weight"_a.noconvert())
        .def(
            "append",
            [](lsrcore::IndexWriter& w, const lsrcore::Builder& part) {
                nb::gil_scoped_release release;
                w.append(part);
            },
            "part"_a.noconvert())
        .def("finish",
             [](lsrcore::IndexWriter& w) {
                 nb::gil_scoped_release release;
                 return w.finish();
             })
        .def_prop_ro("next_term", &lsrcore::IndexWriter::next_term);

    nb::class_<lsrcore::Searcher>(m, "Searcher")
        .def(
            "__init__",
            [](lsrcore::Searcher* self, const std::string& path) {
                nb::gil_scoped_release release;
                new (self) lsrcore::Searcher(path);
            },
            "path"_a.noconvert())
        .def_prop_ro("num_docs", [](const lsrcore::Searcher& s) { return s.view().num_docs; })
        .def_prop_ro("vocab_size", [](const lsrcore::Searcher& s) { return s.view().vocab_size; })
        .def_prop_ro("num_postings", [](const lsrcore::Searcher& s) { return s.view().num_postings; })
        .def_prop_ro("num_blocks", [](const lsrcore::Searcher& s) { return s.view().num_blocks; })
        .def_prop_ro("impact_scale", [](const lsrcore::Searcher& s) { return s.view().impact_scale; })
        .def_prop_ro("file_size", &lsrcore::Searcher::file_size)
        .def("term_df",
             [](const lsrcore::Searcher& s) {
                 auto out = new_array<uint32_t>(s.view().vocab_size);
                 std::memcpy(out.data(), s.view().term_df, sizeof(uint32_t) * s.view().vocab_size);
                 return out;
             })
        .def(
            "postings",
            [](const lsrcore::Searcher& s, uint32_t term) {
                std::vector<uint32_t> docs;
                std::vector<uint8_t> imps;
                {
                    nb::gil_scoped_release release;
                    s.postings(term, docs, imps);
                }
                auto d = new_array<uint32_t>(docs.size());
                auto w = new_array<uint8_t>(imps.size());
                std::memcpy(d.data(), docs.data(), docs.size() * 4);
                std::memcpy(w.data(), imps.data(), imps.size());
                return nb::make_tuple(d, w);
            },
            "term"_a.noconvert())
        .def("pruning_bytes", &lsrcore::Searcher::pruning_bytes, "forward"_a.noconvert(), "shift"_a.noconvert())
        .def(
            "search_batch",
            [](lsrcore::Searcher& s, Vec<uint64_t> indptr, Vec<uint32_t> indices, Vec<float> values, uint32_t k,
               uint32_t threads, std::optional<Vec<uint64_t>> allowed, const std::string& algorithm,
               uint32_t block_shift) {
                check_csr(indptr, indices, values);
                lsrcore::Algorithm algo;
                if (algorithm == "exhaustive")
                    algo = lsrcore::Algorithm::Exhaustive;
                else if (algorithm == "block_max")
                    algo = lsrcore::Algorithm::BlockMax;
                else if (algorithm == "block_forward")
                    algo = lsrcore::Algorithm::BlockForward;
                else if (algorithm == "auto")
                    algo = lsrcore::Algorithm::Auto;
                else
                    throw std::invalid_argument("unknown algorithm '" + algorithm +
                                                "' (exhaustive, block_max, block_forward, auto)");
                if (block_shift > 20) throw std::invalid_argument("block_shift must be in 0..20");
                if (allowed && allowed->shape(0) != (size_t(s.view().num_docs) + 63) / 64)
                    throw std::invalid_argument("allowed needs ceil(num_docs / 64) words");
                const size_t nq = indptr.shape(0) - 1;
                if (indptr.data()[nq] != indices.shape(0))
                    throw std::invalid_argument("indptr[-1] must equal the number of query non-zeros");
                auto docs = new_matrix<uint32_t>(nq, k);
                auto scores = new_matrix<float>(nq, k);
                auto counts = new_array<uint32_t>(nq);
                auto postings = new_array<uint64_t>(nq);
                {
                    nb::gil_scoped_release release;
                    s.search_batch(indptr.data(), nq, indices.data(), values.data(), k, threads, docs.data(),
                                   scores.data(), counts.data(), postings.data(), allowed ? allowed->data() : nullptr,
                                   algo, block_shift);
                }
                return nb::make_tuple(docs, scores, counts, postings);
            },
            "indptr"_a.noconvert(), "indices"_a.noconvert(), "values"_a.noconvert(), "k"_a.noconvert(), "threads"_a.noconvert(),
            "allowed"_a.noconvert() = nb::none(), "algorithm"_a = "exhaustive", "block_shift"_a.noconvert() = 6u);

    m.def("available_kernels", &lsrcore::kernels::available);
    m.def("active_kernel", []() { return std::string(lsrcore::kernels::active().name); });
    m.def("select_kernel", &lsrcore::kernels::select, "name"_a.noconvert());

    // For tests only: the codec, checksum and top-k units, each against its reference in tests/.
    nb::module_ testing = m.def_submodule("testing", "test hooks for the codec, xxh64 and the top-k queue");
    testing.def(
        "xxh64",
        [](nb::bytes data, size_t chunk) {
            if (chunk == 0) return lsrcore::xxh64(data.c_str(), data.size());
            lsrcore::Xxh64Stream s;
            for (size_t i = 0; i < data.size(); i += chunk)
                s.update(data.c_str() + i, std::min(chunk, data.size() - i));
            return s.digest();
        },
        "data"_a.noconvert(), "chunk"_a.noconvert() = 0);

    testing.def(
        "pack_block",
        [](Vec<uint32_t> values, uint32_t bits) {
            const size_t n = values.shape(0);
            if (n == 0 || n > lsrcore::kBlockSize) throw std::invalid_argument("1..128 values per block");
            if (bits > 32) throw std::invalid_argument("bits must be <= 32");
            for (size_t i = 0; i < n; ++i)
                if (lsrcore::bits_needed(values.data()[i]) > bits)
                    throw std::invalid_argument("value does not fit in the given bits");
            uint32_t full[lsrcore::kBlockSize] = {};
            std::memcpy(full, values.data(), n * 4);
            std::vector<uint8_t> out(16 * 32);
            lsrcore::pack_block(full, static_cast<uint32_t>(n), bits, out.data());
            return nb::bytes(reinterpret_cast<const char*>(out.data()),
                             lsrcore::packed_bytes(static_cast<uint32_t>(n), bits));
        },
        "values"_a.noconvert(), "bits"_a.noconvert());
    testing.def(
        "unpack_block",
        [](nb::bytes data, uint32_t n, uint32_t bits) {
            if (n == 0 || n > lsrcore::kBlockSize) throw std::invalid_argument("1..128 values per block");
            if (bits > 32) throw std::invalid_argument("bits must be <= 32");
            if (data.size() != lsrcore::packed_bytes(n, bits)) throw std::invalid_argument("wrong packed size");
            uint32_t out[lsrcore::kBlockSize];
            lsrcore::unpack_block(reinterpret_cast<const uint8_t*>(data.c_str()), n, bits, out);
            auto arr = new_array<uint32_t>(n);
            std::memcpy(arr.data(), out, n * 4);
            return arr;
        },
        "data"_a.noconvert(), "n"_a.noconvert(), "bits"_a.noconvert());
    testing.def(
        "topk_select",
        [](Vec<uint32_t> scores, Vec<uint32_t> docs, uint32_t k) {
            if (scores.shape(0) != docs.shape(0)) throw std::invalid_argument("scores and docs differ in length");
            lsrcore::TopkQueue q(k);
            for (size_t i = 0; i < scores.shape(0); ++i) q.insert(scores.data()[i], docs.data()[i]);
            const auto& best = q.finalize();
            auto s = new_array<uint32_t>(best.size());
            auto d = new_array<uint32_t>(best.size());
            for (size_t i = 0; i < best.size(); ++i) {
                s.data()[i] = best[i].score;
                d.data()[i] = best[i].doc;
            }
            return nb::make_tuple(s, d);
        },
        "scores"_a.noconvert(), "docs"_a.noconvert(), "k"_a.noconvert());
}
