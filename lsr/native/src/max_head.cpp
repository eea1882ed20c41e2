#include "max_head.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <thread>

namespace lsrhead {

// The projection and int8 code of one vector r (a centred token, or a vocabulary row), with the
// error terms the bound needs; nn = ||r||^2 in double, of the r the caller means (the float32 r
// passed in may carry one rounding of it, which the projection slack covers).
struct Code {
    float scale;
    double err;    // >= ||B r - scale q||
    double qnorm;  // ||scale q||
    double tail;   // >= ||r - B^T B r||
};

static Code encode(const Head& h, const float* r, double nn, float* rh, int32_t* q, bool simd) {
    if (h.identity)
        std::copy(r, r + h.dim, rh);
    else
        (simd ? project_avx512 : project_scalar)(h, r, rh);
    float amax = 0.0f;
    for (uint32_t j = 0; j < h.sdim; ++j) amax = std::max(amax, std::fabs(rh[j]));
    const float s = amax > 0 ? amax / 127.0f : 1.0f;
    double ee = 0.0, qq = 0.0, hh = 0.0;
    for (uint32_t j = 0; j < h.sdim; ++j) {
        const int qi = std::clamp(int(std::lrint(rh[j] / s)), -127, 127);
        q[j] = qi;
        const double d = double(rh[j]) - double(s) * qi;
        ee += d * d;
        qq += double(s) * qi * double(s) * qi;
        hh += double(rh[j]) * rh[j];
    }
    // float32 projection error, per coordinate <= (dim + 2) u ||B_j|| ||r|| (u = 2^-24), over sdim
    // coordinates sqrt(sdim) times that; taken twice over (0 for the identity: rh is r)
    const double delta = h.identity ? 0.0 : 1.2e-7 * (h.dim + 2) * std::sqrt(double(h.sdim)) * std::sqrt(nn);
    const double lo = std::max(0.0, std::sqrt(hh) - delta);  // ||B r|| >= ||rh|| - delta
    // ||r'||^2 = ||r||^2 - ||B r||^2, plus 1e-9 ||r||^2 for double rounding and the basis' 1e-10
    return {s, (std::sqrt(ee) + delta) * (1 + 1e-6), std::sqrt(qq) * (1 + 1e-6),
            std::sqrt(std::max(0.0, nn - lo * lo) + 1e-9 * nn) * (1 + 1e-6)};
}

Head::Head(const float* w, const float* b, uint32_t vocab_, uint32_t dim_, const float* c, const double* B,
           uint32_t sdim_)
    : vocab(vocab_), dim(dim_), sdim(sdim_), sdim4((sdim_ + 3) / 4 * 4), blocks((vocab_ + kLanes - 1) / kLanes) {
    if (sdim > dim) throw std::invalid_argument("the basis has more rows than the head has dimensions");
    identity = sdim == dim;
    for (uint32_t i = 0; i < sdim; ++i)
        for (uint32_t j = 0; j <= i; ++j) {
            double d = 0.0;
            for (uint32_t k = 0; k < dim; ++k) d += B[size_t(i) * dim + k] * B[size_t(j) * dim + k];
            if (!(std::fabs(d - (i == j ? 1.0 : 0.0)) <= 1e-10))
                throw std::invalid_argument("the basis rows must be orthonormal (within 1e-10)");
            identity = identity && B[size_t(i) * dim + j] == (i == j ? 1.0 : 0.0) &&
                       B[size_t(j) * dim + i] == (i == j ? 1.0 : 0.0);
        }
    const size_t rows = size_t(blocks) * kLanes;
    weight.assign(w, w + size_t(vocab) * dim);
    center.assign(c, c + dim);
    double cn = 0.0;
    for (uint32_t i = 0; i < dim; ++i) cn += double(c[i]) * c[i];
    center_norm = float(std::sqrt(cn));
    basis_t.assign(size_t(dim) * sdim4, 0.0f);
    for (uint32_t j = 0; j < sdim; ++j)
        for (uint32_t i = 0; i < dim; ++i) basis_t[size_t(i) * sdim4 + j] = float(B[size_t(j) * dim + i]);
    bias.assign(rows, -1e30f);
    scale.assign(rows, 0.0f);
    norm.assign(rows, 0.0f);
    tail.assign(rows, 0.0f);
    qsum128.assign(rows, 0);
    bias_up.assign(rows, -1e30f);
    qerr_up.assign(rows, 0.0f);
    packed.assign(rows * sdim4, 0);
    const bool simd = simd_available();
    std::vector<float> uh(std::max(sdim4, dim), 0.0f);
    std::vector<int32_t> q(sdim4, 0);
    for (uint32_t v = 0; v < vocab; ++v) {
        const float* u = w + size_t(v) * dim;
        bias[v] = b ? b[v] : 0.0f;
        double nn = 0.0, cu = 0.0;
        for (uint32_t i = 0; i < dim; ++i) {
            nn += double(u[i]) * u[i];
            cu += double(c[i]) * u[i];
        }
        const Code code = encode(*this, u, nn, uh.data(), q.data(), simd);
        int32_t sum = 0;
        for (uint32_t j = 0; j < sdim; ++j) sum += q[j];
        scale[v] = code.scale;
        norm[v] = float(std::sqrt(nn)) * (1.0f + 1e-6f);
        tail[v] = float(code.tail);
        qsum128[v] = 128 * sum;
        bias_up[v] = float(double(bias[v]) + cu) + kRel * (std::fabs(bias[v]) + center_norm * norm[v]) + kAbs;
        qerr_up[v] = float(code.err) + kRel * (norm[v] + float(code.err));
        const uint32_t blk = v / kLanes, lane = v % kLanes;
        for (uint32_t k = 0; k < sdim4 / 4; ++k)
            for (uint32_t j = 0; j < 4; ++j)
                packed[((size_t(blk) * (sdim4 / 4) + k) * kLanes + lane) * 4 + j] =
                    int8_t(4 * k + j < sdim ? q[4 * k + j] : 0);
    }
}

void project_scalar(const Head& h, const float* r, float* rh) {
    project_impl(h, r, rh);
}

void Tokens::load(const Head& h, const float* src, uint32_t n, bool simd) {
    count = n;
    padded = (n + 15) / 16 * 16;
    x = src;
    q.assign(size_t(padded) * h.sdim4, 128);
    bound.assign(padded, TokenBound{0.0f, 0.0f, 0.0f, 0.0f});
    r.assign(h.dim, 0.0f);
    rh.assign(std::max(h.sdim4, h.dim), 0.0f);
    qi.assign(h.sdim4, 0);
    for (uint32_t t = 0; t < n; ++t) {
        const float* xt = src + size_t(t) * h.dim;
        double nn = 0.0, xx = 0.0;
        for (uint32_t i = 0; i < h.dim; ++i) {
            const double d = double(xt[i]) - double(h.center[i]);
            nn += d * d;
            xx += double(xt[i]) * xt[i];
            r[i] = xt[i] - h.center[i];
        }
        const Code code = encode(h, r.data(), nn, rh.data(), qi.data(), simd);
        for (uint32_t j = 0; j < h.sdim; ++j) q[at(t, j / 4, h.sdim4) + j % 4] = uint8_t(qi[j] + 128);
        // + kRel (||x|| + ||c||): the float slack of the screen's arithmetic, per unit of ||u||
        bound[t] = {code.scale, float(code.err + double(kRel) * (std::sqrt(xx) + h.center_norm)) * (1.0f + 1e-6f),
                    float(code.qnorm), float(code.tail)};
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
            for (uint32_t k = 0; k < h.sdim4 / 4; ++k)
                for (uint32_t j = 0; j < 4; ++j)
                    acc += int32_t(tk.q[tk.at(t, k, h.sdim4) + j]) *
                           h.packed[((size_t(blk) * (h.sdim4 / 4) + k) * kLanes + lane) * 4 + j];
            const TokenBound& tb = tk.bound[t];
            const float ub = float(acc - h.qsum128[v]) * (tb.scale * h.scale[v]) + h.bias_up[v] + tb.err * h.norm[v] +
                             tb.qnorm * h.qerr_up[v] + tb.tail * h.tail[v];
            if (ub <= best) continue;
            ++exact;
            best = std::max(best, dot(&h.weight[size_t(v) * h.dim], tk.x + size_t(t) * h.dim, h.dim) + h.bias[v]);
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
void project_avx512(const Head& h, const float* r, float* rh) { project_scalar(h, r, rh); }
bool simd_available() { return false; }
#else
bool simd_available() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}
#endif

void run_workers(unsigned workers, const std::function<void(unsigned)>& work) {
    if (workers <= 1) {
        work(0);
        return;
    }
    std::vector<std::exception_ptr> errors(workers);
    std::vector<std::thread> pool;
    pool.reserve(workers);
    for (unsigned w = 0; w < workers; ++w)
        pool.emplace_back([&, w] {
            try {
                work(w);
            } catch (...) {
                errors[w] = std::current_exception();
            }
        });
    for (auto& th : pool) th.join();
    for (auto& e : errors)
        if (e) std::rethrow_exception(e);
}

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
            tk.load(h, x + size_t(offsets[i]) * h.dim, uint32_t(offsets[i + 1] - offsets[i]), simd);
            if (tk.count == 0) continue;
            if (simd)
                text_vnni(h, tk, idx[i], val[i], exact[w]);
            else
                text_scalar(h, tk, idx[i], val[i], exact[w]);
        }
    };
    run_workers(nt, work);
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
