// Max-pooled vocabulary head: for each text, max over its tokens t of x_t . W_v + b_v, kept
// where positive (SPLADE's max(log(1 + ReLU(logits))) needs nothing else), without ever forming
// the tokens x vocabulary logits.
//
// Exact by construction: an int8 screen bounds every logit,
//   |x.u - x~.u~| <= ||x - x~|| ||u|| + ||x~|| ||u - u~||   (x~, u~ the dequantised int8 vectors),
// and only the (token, entry) pairs whose upper bound beats the entry's running max (>= 0) are
// recomputed in float32. With AVX-512 VNNI the screen runs 64 int8 multiply-adds per instruction.
#pragma once

#include <cstdint>
#include <vector>

namespace lsrhead {

constexpr uint32_t kLanes = 16;  // vocabulary rows per packed block (one zmm of int32 sums)

struct Head {
    uint32_t vocab = 0, dim = 0, dim4 = 0, blocks = 0;  // dim4: dim rounded up to 4
    std::vector<float> weight;       // blocks*16 x dim4, zero padded
    std::vector<float> bias;         // blocks*16 (padding rows: -1e30, never positive)
    std::vector<float> scale;        // per row: int8 step
    std::vector<float> norm;         // per row: ||w||
    std::vector<float> qerr;         // per row: ||w - scale * q||
    std::vector<float> bias_up;      // bias + rounding slack (see slack())
    std::vector<float> qerr_up;      // qerr + rounding slack per unit of ||x~||
    std::vector<int32_t> qsum128;    // per row: 128 * sum(q) (VNNI multiplies unsigned x by signed w)
    std::vector<int8_t> packed;      // [block][dim4/4][16 rows][4 bytes]
    Head(const float* w, const float* b, uint32_t vocab, uint32_t dim);
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

// One text's tokens quantised for the screen.
struct Tokens {
    uint32_t count = 0, padded = 0;   // padded: count rounded up to 8
    std::vector<uint8_t> q;           // padded x dim4, x/scale rounded, +128
    std::vector<float> x;             // padded x dim4 float32 copy, zero padded
    std::vector<float> scale, err, qnorm;
    void load(const float* src, uint32_t count, uint32_t dim, uint32_t dim4);
};

// Per-text kernels (portable and AVX-512 VNNI); append (entry, max logit > 0) pairs.
void text_scalar(const Head& h, const Tokens& t, std::vector<uint32_t>& idx, std::vector<float>& val, uint64_t& exact);
void text_vnni(const Head& h, const Tokens& t, std::vector<uint32_t>& idx, std::vector<float>& val, uint64_t& exact);

// Float rounding in the screen's own arithmetic is bounded by a relative 1e-5 of the magnitudes
// involved: |x~.u~| <= ||x~|| (||u|| + ||u - u~||) and |b|. That slack is folded into the per-row
// constants: bias_up = b + 1e-5 |b| + 1e-6, qerr_up = qerr + 1e-5 (||u|| + qerr).
constexpr float kRel = 1e-5f, kAbs = 1e-6f;

}  // namespace lsrhead
