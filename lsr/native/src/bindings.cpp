// lsr._head: the max-pooled vocabulary head. Only numbers cross: float32 / int64 arrays in,
// CSR arrays out; the loop runs with the GIL released.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/tuple.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "max_head.hpp"

namespace nb = nanobind;
using namespace nb::literals;

template <typename T>
using CArray = nb::ndarray<const T, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
template <typename T>
using CVec = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

template <typename T>
static nb::ndarray<nb::numpy, T, nb::ndim<1>> to_numpy(std::vector<T>&& v) {
    auto* heap = new std::vector<T>(std::move(v));
    nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
    return nb::ndarray<nb::numpy, T, nb::ndim<1>>(heap->data(), {heap->size()}, owner);
}

NB_MODULE(_head, m) {
    nb::class_<lsrhead::Head>(m, "Head")
        .def("__init__",
             [](lsrhead::Head* self, CArray<float> w, CVec<float> b, CVec<float> center,
                CArray<double> basis) {
                 if (b.shape(0) != w.shape(0)) throw nb::value_error("bias length must equal the weight's rows");
                 if (w.shape(1) == 0 || w.shape(0) == 0) throw nb::value_error("empty head");
                 if (center.shape(0) != w.shape(1)) throw nb::value_error("center must have the head's dimension");
                 if (basis.shape(1) != w.shape(1)) throw nb::value_error("basis rows must have the head's dimension");
                 new (self) lsrhead::Head(w.data(), b.data(), uint32_t(w.shape(0)), uint32_t(w.shape(1)), center.data(), basis.data(),
                                          uint32_t(basis.shape(0)));
             },
             "weight"_a.noconvert(), "bias"_a.noconvert(), "center"_a.noconvert(), "basis"_a.noconvert())
        .def_ro("vocab", &lsrhead::Head::vocab)
        .def_ro("dim", &lsrhead::Head::dim)
        .def_ro("screen_dim", &lsrhead::Head::sdim);
    m.def(
        "max_logits",
        [](const lsrhead::Head& h, CArray<float> x, CVec<int64_t> offsets, unsigned threads, bool simd) {
            if (x.shape(1) != h.dim) throw nb::value_error("token vectors have the wrong dimension");
            if (offsets.shape(0) < 1) throw nb::value_error("offsets needs at least one entry");
            const uint32_t n = uint32_t(offsets.shape(0) - 1);
            if (offsets.data()[0] != 0 || uint64_t(offsets.data()[n]) != x.shape(0))
                throw nb::value_error("offsets must start at 0 and end at the number of tokens");
            lsrhead::Rows r;
            {
                nb::gil_scoped_release unlocked;
                r = lsrhead::max_logits(h, x.data(), offsets.data(), n, threads, simd);
            }
            const uint64_t exact = r.exact;
            return nb::make_tuple(to_numpy(std::move(r.indptr)), to_numpy(std::move(r.indices)),
                                  to_numpy(std::move(r.values)), exact);
        },
        "head"_a.noconvert(), "x"_a.noconvert(), "offsets"_a.noconvert(), "threads"_a.noconvert(),
        "simd"_a.noconvert());
    m.def("simd_available", &lsrhead::simd_available);

    // For tests only: the worker pool max_logits runs on, with worker ``failing`` throwing; the exception must
    // reach Python as a RuntimeError (not end the process).
    nb::module_ testing = m.def_submodule("testing", "test hooks; not part of the API");
    testing.def(
        "run_workers",
        [](unsigned workers, unsigned failing) {
            std::vector<int> done(workers, 0);
            {
                nb::gil_scoped_release unlocked;
                lsrhead::run_workers(workers, [&](unsigned w) {
                    if (w == failing) throw std::runtime_error("worker " + std::to_string(w) + " failed");
                    done[w] = 1;
                });
            }
            int n = 0;
            for (int d : done) n += d;
            return n;
        },
        "workers"_a.noconvert(), "failing"_a.noconvert());
}
