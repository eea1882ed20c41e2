// Max-pooled vocabulary head: for each text, max over its tokens t of x_t . W_v + b_v, kept
// where positive (SPLADE's max(log(1 + ReLU(logits))) needs nothing else), without ever forming
// the tokens x vocabulary logits.
//
// Exact by construction. A screen bounds every logit from above and only the (token, entry) pairs
// whose bound beats the entry's running max (>= 0) are recomputed in float32 from the original
// vectors. The screen works on r = x - c (c a centre, folded into the bias: x.u + b = r.u + c.u + b)
// in a d-dimensional orthonormal basis B (rows), both chosen by the caller so that B holds most of
// the centred tokens' energy (the tokens' mean and leading principal directions). With rh = B r,
// uh = B u and the orthogonal rests r', u' (r.u = rh.uh + r'.u'):
//   r.u <= s_r s_u (q_r . q_u) + err_r ||u|| + ||r~|| qerr_u + ||r'|| ||u'||
// where q are int8 codes of rh and uh (scales s), r~ = s_r q_r, err_r >= ||rh - r~|| (including the
// float32 projection's own rounding), qerr_u >= ||uh - s_u q_u|| (likewise). With AVX-512 VNNI the int8 part
// runs 64 multiply-adds per instruction, so a basis of d < dim dimensions makes the screen cheaper
// by d / dim at the price of a looser bound (more recomputes). The result never depends on B.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace lsrhead {

constexpr uint32_t kLanes = 16;  // vocabulary rows per packed block (one zmm of int32 sums)

struct Head {
    uint32_t vocab = 0, dim = 0, sdim = 0, sdim4 = 0, blocks = 0;  // sdim: basis rows; sdim4 rounded to 4
    bool identity = false;           // the basis is the identity: no projection
    std::vector<float> weight;       // vocab x dim, the original rows (float32 recompute)
    std::vector<float> bias;         // blocks*16 (padding rows: -1e30, never positive)
    std::vector<float> basis_t;      // dim x sdim4: B transposed, float32, zero padded
    std::vector<float> center;       // dim: c (float32; the bound uses exactly these values)
    float center_norm = 0.0f;        // ||c||
    std::vector<float> scale;        // per row: int8 step of uh
    std::vector<float> norm;         // per row: ||u||
    std::vector<float> tail;         // per row: ||u'|| (rounded up)
    std::vector<float> bias_up;      // b + c.u + rounding slack (see kRel)
    std::vector<float> qerr_up;      // ||uh - s_u q_u|| + rounding slack per unit of ||x~||
    std::vector<int32_t> qsum128;    // per row: 128 * sum(q) (VNNI multiplies unsigned x by signed u)
    std::vector<int8_t> packed;      // [block][sdim4/4][16 rows][4 bytes]
    // center: dim float32; basis: sdim x dim float64, orthonormal rows (checked); sdim may be 0.
    Head(const float* w, const float* b, uint32_t vocab, uint32_t dim, const float* center, const double* basis,
         uint32_t sdim);
};

struct Rows {
    std::vector<uint64_t> indptr;
    std::vector<uint32_t> indices;
    std::vector<float> values;   // max logit, > 0
    uint64_t exact = 0;          // (token, entry) pairs recomputed in float32
};

// x: n_tokens x dim float32, row-major; offsets: n_texts + 1 token offsets (non-decreasing).
Rows max_logits(const Head& head, const float* x, const int64_t* offsets, uint32_t n_texts, unsigned threads,
                bool simd);
bool simd_available();

// Runs work(0) .. work(workers - 1), each on its own thread (inline when workers == 1), and joins them. An
// exception thrown by any worker is caught on its thread and rethrown here (the first by worker index), so the
// caller sees a C++ exception, never std::terminate.
void run_workers(unsigned workers, const std::function<void(unsigned)>& work);

// One token's terms of the screen's bound (together: one cache line feeds four tokens' broadcasts).
struct TokenBound {
    float scale;  // int8 step
    float err;    // ||rh - r~|| + projection rounding + kRel ||x||
    float qnorm;  // ||r~||
    float tail;   // ||r'|| (rounded up)
};

// One text's tokens, centred, projected onto the basis and quantised for the screen.
struct Tokens {
    uint32_t count = 0, padded = 0;   // padded: count rounded up to 16 (the kernel's widest tile)
    const float* x = nullptr;         // the original rows (count x dim)
    // rh/scale rounded, +128, in tiles of 16 tokens: [tile][sdim4/4][16 tokens][4 bytes], so that the
    // kernel's 16 broadcasts of one step come from one 64-byte line at fixed offsets (see at())
    std::vector<uint8_t> q;
    std::vector<TokenBound> bound;    // padded
    std::vector<float> r, rh;         // scratch: one centred row and its projection
    std::vector<int32_t> qi;          // scratch: its int8 codes
    void load(const Head& h, const float* src, uint32_t count, bool simd);
    // The 4 code bytes of token t for dimensions 4k .. 4k+3.
    std::size_t at(uint32_t t, uint32_t k, uint32_t sdim4) const {
        return ((std::size_t(t / 16) * (sdim4 / 4) + k) * 16 + t % 16) * 4;
    }
};

// rh = B r in float32, one dimension of r at a time (the inner loop over rh vectorises; the
// AVX-512 build of the same loop runs 16 lanes).
void project_scalar(const Head& h, const float* r, float* rh);
void project_avx512(const Head& h, const float* r, float* rh);
inline void project_impl(const Head& h, const float* r, float* rh) {
    for (uint32_t j = 0; j < h.sdim4; ++j) rh[j] = 0.0f;
    for (uint32_t i = 0; i < h.dim; ++i) {
        const float ri = r[i];
        const float* bt = &h.basis_t[std::size_t(i) * h.sdim4];
        for (uint32_t j = 0; j < h.sdim4; ++j) rh[j] += bt[j] * ri;
    }
}

// Per-text kernels (portable and AVX-512 VNNI); append (entry, max logit > 0) pairs.
void text_scalar(const Head& h, const Tokens& t, std::vector<uint32_t>& idx, std::vector<float>& val, uint64_t& exact);
void text_vnni(const Head& h, const Tokens& t, std::vector<uint32_t>& idx, std::vector<float>& val, uint64_t& exact);

// Float rounding in the screen's own arithmetic is bounded by a relative 1e-5 of the magnitudes
// involved: the per-token err carries + kRel (||x|| + ||c||) (it multiplies ||u||),
// bias_up = b + c.u + kRel (|b| + ||c|| ||u||) + kAbs, qerr_up = qerr + kRel (||u|| + qerr).
constexpr float kRel = 1e-5f, kAbs = 1e-6f;

}  // namespace lsrhead
