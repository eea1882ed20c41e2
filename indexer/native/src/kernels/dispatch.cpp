// Run-time choice of the search kernel (compiled for the baseline ISA).
#include <atomic>
#include <stdexcept>

#include "lsrcore/kernels.hpp"

namespace lsrcore::kernels {

namespace {

const Kernel kScalar{"scalar", &scalar::exhaustive_taat, &scalar::block_max_pruning, &scalar::block_forward_pruning};
const Kernel kAvx2{"avx2", &avx2::exhaustive_taat, &avx2::block_max_pruning, &avx2::block_forward_pruning};
const Kernel kAvx512{"avx512", &avx512::exhaustive_taat, &avx512::block_max_pruning, &avx512::block_forward_pruning};

bool supported(const Kernel& k) {
    if (&k == &kScalar) return true;
#if defined(LSR_X86_KERNELS)
    __builtin_cpu_init();
    if (&k == &kAvx2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi2");
    if (&k == &kAvx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    return false;
}

const Kernel* const kAll[] = {&kScalar, &kAvx2, &kAvx512};

const Kernel* best() {
    const Kernel* b = &kScalar;
    for (const Kernel* k : kAll)
        if (supported(*k)) b = k;
    return b;
}

std::atomic<const Kernel*> g_active{best()};

}  // namespace

std::vector<std::string> available() {
    std::vector<std::string> out;
    for (const Kernel* k : kAll)
        if (supported(*k)) out.emplace_back(k->name);
    return out;
}

const Kernel& active() { return *g_active.load(std::memory_order_relaxed); }

void select(const std::string& name) {
    for (const Kernel* k : kAll) {
        if (name == k->name) {
            if (!supported(*k)) throw std::invalid_argument("kernel '" + name + "' is not supported by this CPU");
            g_active.store(k, std::memory_order_relaxed);
            return;
        }
    }
    throw std::invalid_argument("unknown kernel '" + name + "' (scalar, avx2, avx512)");
}

}  // namespace lsrcore::kernels
