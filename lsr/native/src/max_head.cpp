#include "max_head.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace lsrhead {

Head::Head(const float* w, const float* b, uint32_t vocab_, uint32_t dim_)
    : vocab(vocab_), dim(dim_), dim4((dim_ + 3) / 4 * 4), blocks((vocab_ + kLanes - 1) / kLanes) {
    const size_t rows = size_t(blocks) * kLanes;
    weight.assign(rows * dim4, 0.0f);
    bias.assign(rows, -1e30f);
    scale.assign(rows, 0.0f);
    norm.assign(rows, 0.0f);
    qerr.assign(rows, 0.0f);
    qsum128.assign(rows, 0);
    bias_up.assign(rows, -1e30f);
    qerr_up.assign(rows, 0.0f);
    packed.assign(rows * dim4, 0);
    std::vector<int8_t> q(dim4);
    for (uint32_t v = 0; v < vocab; ++v) {
        const float* src = w + size_t(v) * dim;
        std::memcpy(&weight[size_t(v) * dim4], src, dim * sizeof(float));
        bias[v] = b ? b[v] : 0.0f;
        float amax = 0.0f;
        double nn = 0.0;
        for (uint32_t i = 0; i < dim; ++i) {
            amax = std::max(amax, std::fabs(src[i]));
            nn += double(src[i]) * src[i];
        }
        const float s = amax > 0 ? amax / 127.0f : 1.0f;
        double ee = 0.0;
        int32_t sum = 0;
        std::fill(q.begin(), q.end(), 0);
        for (uint32_t i = 0; i < dim; ++i) {
            const int qi = int(std::lrint(src[i] / s));
            q[i] = int8_t(std::clamp(qi, -127, 127));
            const double d = double(src[i]) - double(s) * q[i];
            ee += d * d;
            sum += q[i];
        }
        scale[v] = s;
        norm[v] = float(std::sqrt(nn)) * (1.0f + 1e-6f);
        qerr[v] = float(std::sqrt(ee)) * (1.0f + 1e-6f);
        qsum128[v] = 128 * sum;
        bias_up[v] = bias[v] + kRel * std::fabs(bias[v]) + kAbs;
        qerr_up[v] = qerr[v] + kRel * (norm[v] + qerr[v]);
        const uint32_t blk = v / kLanes, lane = v % kLanes;
        for (uint32_t k = 0; k < dim4 / 4; ++k)
            for (uint32_t j = 0; j < 4; ++j)
                packed[((size_t(blk) * (dim4 / 4) + k) * kLanes + lane) * 4 + j] = q[4 * k + j];
    }
}

void Tokens::load(const float* src, uint32_t n, uint32_t dim, uint32_t dim4) {
    count = n;
    padded = (n + 7) / 8 * 8;
    q.assign(size_t(padded) * dim4, 128);
    x.assign(size_t(padded) * dim4, 0.0f);
    scale.assign(padded, 0.0f);
    err.assign(padded, 0.0f);
    qnorm.assign(padded, 0.0f);
    for (uint32_t t = 0; t < n; ++t) {
        const float* r = src + size_t(t) * dim;
        std::memcpy(&x[size_t(t) * dim4], r, dim * sizeof(float));
        float amax = 0.0f;
        for (uint32_t i = 0; i < dim; ++i) amax = std::max(amax, std::fabs(r[i]));
        const float s = amax > 0 ? amax / 127.0f : 1.0f;
        double ee = 0.0, qq = 0.0;
        for (uint32_t i = 0; i < dim; ++i) {
            const int qi = std::clamp(int(std::lrint(r[i] / s)), -127, 127);
            q[size_t(t) * dim4 + i] = uint8_t(qi + 128);
            const double d = double(r[i]) - double(s) * qi;
            ee += d * d;
            qq += double(s) * qi * double(s) * qi;
        }
        scale[t] = s;
        err[t] = float(std::sqrt(ee)) * (1.0f + 1e-6f);
        qnorm[t] = float(std::sqrt(qq)) * (1.0f + 1e-6f);
    }
}

static float dot(const float* a, const float* b, uint32_t n) {
    float s = 0.0f;
    for (uint32_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

void text_scalar(const Head& h, const Tokens& tk, std::vector<uint32_t>& idx, std::vector<float>& val,
                 uint64_t& exact) {
    for (uint32_t v = 0; v < h.vocab; ++v) {
        const uint32_t blk = v / kLanes, lane = v % kLanes;
        float best = 0.0f;
        for (uint32_t t = 0; t < tk.count; ++t) {
            int32_t acc = 0;
            for (uint32_t k = 0; k < h.dim4 / 4; ++k)
                for (uint32_t j = 0; j < 4; ++j)
                    acc += int32_t(tk.q[size_t(t) * h.dim4 + 4 * k + j]) *
                           h.packed[((size_t(blk) * (h.dim4 / 4) + k) * kLanes + lane) * 4 + j];
            const float ub = float(acc - h.qsum128[v]) * (tk.scale[t] * h.scale[v]) + h.bias_up[v] +
                             tk.err[t] * h.norm[v] + tk.qnorm[t] * h.qerr_up[v];
            if (ub <= best) continue;
            ++exact;
            best = std::max(best, dot(&h.weight[size_t(v) * h.dim4], &tk.x[size_t(t) * h.dim4], h.dim4) + h.bias[v]);
        }
        if (best > 0.0f) {
            idx.push_back(v);
            val.push_back(best);
        }
    }
}

#if !defined(LSR_X86_KERNELS)
void text_vnni(const Head&, const Tokens&, std::vector<uint32_t>&, std::vector<float>&, uint64_t&) {
    throw std::runtime_error("AVX-512 VNNI kernel not built for this architecture");
}
bool simd_available() { return false; }
#else
bool simd_available() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}
#endif

Rows max_logits(const Head& h, const float* x, const int64_t* offsets, uint32_t n_texts, unsigned threads,
                bool simd) {
    if (simd && !simd_available()) throw std::runtime_error("this CPU lacks AVX-512 VNNI");
    for (uint32_t i = 0; i < n_texts; ++i)
        if (offsets[i] < 0 || offsets[i + 1] < offsets[i]) throw std::invalid_argument("offsets must be non-decreasing from 0");
    std::vector<std::vector<uint32_t>> idx(n_texts);
    std::vector<std::vector<float>> val(n_texts);
    std::vector<uint64_t> exact(std::max(1u, threads), 0);
    const unsigned nt = std::max(1u, std::min<unsigned>(threads, n_texts));
    auto work = [&](unsigned w) {
        Tokens tk;
        for (uint32_t i = w; i < n_texts; i += nt) {
            tk.load(x + size_t(offsets[i]) * h.dim, uint32_t(offsets[i + 1] - offsets[i]), h.dim, h.dim4);
            if (tk.count == 0) continue;
            if (simd)
                text_vnni(h, tk, idx[i], val[i], exact[w]);
            else
                text_scalar(h, tk, idx[i], val[i], exact[w]);
        }
    };
    if (nt == 1) {
        work(0);
    } else {
        std::vector<std::thread> pool;
        for (unsigned w = 0; w < nt; ++w) pool.emplace_back(work, w);
        for (auto& th : pool) th.join();
    }
    Rows out;
    out.indptr.assign(n_texts + 1, 0);
    for (uint32_t i = 0; i < n_texts; ++i) out.indptr[i + 1] = out.indptr[i] + idx[i].size();
    out.indices.reserve(out.indptr.back());
    out.values.reserve(out.indptr.back());
    for (uint32_t i = 0; i < n_texts; ++i) {
        out.indices.insert(out.indices.end(), idx[i].begin(), idx[i].end());
        out.values.insert(out.values.end(), val[i].begin(), val[i].end());
    }
    for (auto e : exact) out.exact += e;
    return out;
}

}  // namespace lsrhead
