// A CPU CUDA simulator: lets g++ compile an unmodified .cu kernel source into a shared library
// whose launches run every CUDA thread as its own fiber on the calling CPU thread.
//
// Scheduling: blocks run one at a time; inside a block, warp by warp, lane by lane. A lane runs
// until it reaches a warp primitive (__shfl*_sync, __ballot_sync, __syncwarp, ...) or
// __syncthreads, then the next lane runs. A warp primitive resolves once every lane its mask
// names has arrived at the same call site with the same mask; __syncthreads once every
// non-exited thread of the block has (exited threads count as arrived, as PTX `exit` releases
// barriers). Anything else - a mask naming an exited lane or a lane past the end of the block,
// lanes meeting different sync points, a shuffle source outside the mask - fails the launch with
// the primitive's file:line. Errors never escape as signals: the launch returns an error string.
//
// Choices where CUDA leaves room, and where the simulator differs from hardware:
// - Lanes of a warp must meet a primitive at the same call site (file:line, macro expansion)
//   with the same mask: stricter than sm_70+, which lets different __syncwarp() calls match.
// - Threads that exit count as arrived at __syncthreads (PTX `exit`); threads of one block at
//   different __syncthreads calls are an error (the CUDA guide's rule for conditional code).
// - Float denormals follow NVRTC's default, -ftz=false (NVRTC 13 emits mul.f32, and
//   mul.ftz.f32 only under -ftz=true or --use_fast_math); those two options set MXCSR's FTZ
//   and DAZ for the launch, which on x86 flushes double denormals too (a GPU keeps them).
// - No FMA contraction (g++ -ffp-contract=off); NVRTC's default --fmad=true may fuse a*b+c, so
//   the GPU can differ in the last bit where a kernel has that pattern.
// - Blocks run one at a time, so races between blocks do not change results here; the
//   ThreadSanitizer build treats every simulated thread as concurrent and reports them.
// - Shared memory is not cleared between blocks or launches and is not bounds-checked.
#pragma once

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <csignal>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#include <sys/mman.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
#else
#include <ucontext.h>
#endif

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#include <sanitizer/asan_interface.h>
#define CUDA_SIM_SANITIZER 1
#endif
#if defined(__SANITIZE_THREAD__)
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}
#define CUDA_SIM_SANITIZER 1
#define CUDA_SIM_NO_TSAN __attribute__((no_sanitize_thread))
#else
#define CUDA_SIM_NO_TSAN
#endif

#define CUDA_SIM_API extern "C" __attribute__((visibility("default")))
#define CUDA_SIM_HIDDEN __attribute__((visibility("hidden")))

// ------------------------------------------------------------------------------------------
// CUDA language surface
// ------------------------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __constant__ static
// Static __shared__ variables are thread_local statics: one copy shared by every thread of the
// running block (blocks run one after another). `extern __shared__ T name[];` gets its storage
// from the loader's footer.
#define __shared__ thread_local
#define CUDA_SIM_MAX_SHARED 49152

struct uint3 {
    unsigned int x, y, z;
};
struct dim3 {
    unsigned int x, y, z;
    constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
        : x(x_), y(y_), z(z_) {}
};

namespace cuda_sim {

enum : int { READY, WAIT_WARP, WAIT_BLOCK, DONE };
enum : int {
    OP_SHFL_IDX, OP_SHFL_UP, OP_SHFL_DOWN, OP_SHFL_XOR, OP_BALLOT, OP_ANY, OP_ALL,
    OP_SYNCWARP, OP_SYNCTHREADS,
};
static const char* const op_names[] = {
    "__shfl_sync", "__shfl_up_sync", "__shfl_down_sync", "__shfl_xor_sync", "__ballot_sync",
    "__any_sync", "__all_sync", "__syncwarp", "__syncthreads",
};

struct Lane {
    void* sp;      // saved stack pointer while switched out; null until the lane first runs
    char* stack;   // its stack (taken from the free list when it first runs)
    uint3 tid;
    int state, op, site, line;
    const char* file;
    unsigned mask;
    int arg, width;
    uint64_t value, result;
#if defined(__SANITIZE_ADDRESS__)
    void* fake_stack;
#endif
#if defined(__SANITIZE_THREAD__)
    void* tsan_fiber[2];  // consecutive blocks use different fibers: no false order between them
#endif
#if !defined(__x86_64__)
    ucontext_t ctx;
#endif
};

struct KernelEntry {
    const char* name;
    void* fn;
    void (*invoke)(void* fn, void* const* argv);
    int nparams;
    const char* kinds;            // per parameter: 'p' pointer, 'i'/'u' integer, 'f' float, 'b' bool
    const unsigned char* sizes;   // per parameter: sizeof
};

struct State {
    Lane* cur;
    uint3 block_idx;
    dim3 block_dim, grid_dim;
    const KernelEntry* kernel;
    void* argv[64];
    Lane* lanes;
    int nthreads, capacity;
    char* stacks;
    size_t stack_size, stacks_bytes;
    char** free_stacks;  // LIFO: a lane that finishes hands its (cache-hot) stack to the next
    int nfree;
    void* sched_sp;
    char* err;
    size_t errlen;
    int failed;
    bool stacks_dirty;
    sigjmp_buf fault_jmp;
    volatile void* fault_addr;
    volatile int fault_sig;
#if defined(__SANITIZE_ADDRESS__)
    const void* sched_stack_bottom;
    size_t sched_stack_size;
#endif
#if defined(__SANITIZE_THREAD__)
    void* sched_fiber;
    char launch_sync, done_sync;
    char* block_sync;  // [0..31] per warp, [32] __syncthreads: fresh for each block
    int block_parity;
#endif
#if !defined(__x86_64__)
    ucontext_t sched_ctx;
#endif
};

CUDA_SIM_HIDDEN State g;

}  // namespace cuda_sim

#define threadIdx (::cuda_sim::g.cur->tid)
#define blockIdx (::cuda_sim::g.block_idx)
#define blockDim (::cuda_sim::g.block_dim)
#define gridDim (::cuda_sim::g.grid_dim)
static constexpr int warpSize = 32;

// ------------------------------------------------------------------------------------------
// Fibers: a 14-instruction x86-64 context switch (no signal-mask syscall, unlike swapcontext)
// ------------------------------------------------------------------------------------------

extern "C" CUDA_SIM_HIDDEN __attribute__((noreturn)) void cuda_sim_fiber_main(void);

#if defined(__x86_64__)
extern "C" CUDA_SIM_HIDDEN void cuda_sim_switch(void** save_sp, void* to_sp);
extern "C" CUDA_SIM_HIDDEN void cuda_sim_trampoline(void);
asm(R"(
    .text
    .p2align 4
    .globl cuda_sim_switch
    .hidden cuda_sim_switch
    .type cuda_sim_switch, @function
cuda_sim_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuda_sim_switch, .-cuda_sim_switch
    .p2align 4
    .globl cuda_sim_trampoline
    .hidden cuda_sim_trampoline
    .type cuda_sim_trampoline, @function
cuda_sim_trampoline:
    call cuda_sim_fiber_main@PLT
    ud2
    .size cuda_sim_trampoline, .-cuda_sim_trampoline
)");
#endif

namespace cuda_sim {

// Fresh fiber: its first switch-in "returns" into the trampoline.
CUDA_SIM_NO_TSAN static inline void fiber_init(Lane* l) {
    l->stack = g.free_stacks[--g.nfree];
#if defined(__x86_64__)
    uintptr_t* sp = (uintptr_t*)(l->stack + g.stack_size);  // 16-byte aligned top
    sp[-1] = (uintptr_t)&cuda_sim_trampoline;
    sp -= 7;  // r15 r14 r13 r12 rbx rbp, then the return address
    for (int k = 0; k < 6; ++k) sp[k] = 0;
    l->sp = sp;
#else
    getcontext(&l->ctx);
    l->ctx.uc_stack.ss_sp = l->stack + 4096;
    l->ctx.uc_stack.ss_size = g.stack_size - 4096;
    l->ctx.uc_link = nullptr;
    makecontext(&l->ctx, (void (*)())cuda_sim_fiber_main, 0);
#endif
}

// Scheduler -> lane.
CUDA_SIM_NO_TSAN static void resume(Lane* l) {
    if (!l->sp) fiber_init(l);
    g.cur = l;
#if defined(__SANITIZE_ADDRESS__)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, l->stack + 4096, g.stack_size - 4096);
#endif
#if defined(__SANITIZE_THREAD__)
    __tsan_switch_to_fiber(l->tsan_fiber[g.block_parity],
                           1 /* no synchronization: lanes run concurrently */);
#endif
#if defined(__x86_64__)
    cuda_sim_switch(&g.sched_sp, l->sp);
#else
    swapcontext(&g.sched_ctx, &l->ctx);
#endif
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
    if (l->state == DONE) g.free_stacks[g.nfree++] = l->stack;
}

// Lane -> scheduler. `done`: the lane never runs again.
CUDA_SIM_NO_TSAN static void yield_to_scheduler(bool done) {
    Lane* l = g.cur;
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_start_switch_fiber(done ? nullptr : &l->fake_stack, g.sched_stack_bottom,
                                   g.sched_stack_size);
#endif
#if defined(__SANITIZE_THREAD__)
    __tsan_switch_to_fiber(g.sched_fiber, 1);
#endif
#if defined(__x86_64__)
    cuda_sim_switch(&l->sp, g.sched_sp);
#else
    swapcontext(&l->ctx, &g.sched_ctx);
#endif
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(l->fake_stack, &g.sched_stack_bottom, &g.sched_stack_size);
#endif
    (void)done;
}

static inline void tsan_acquire(void* p) {
#if defined(__SANITIZE_THREAD__)
    __tsan_acquire(p);
#endif
    (void)p;
}
static inline void tsan_release(void* p) {
#if defined(__SANITIZE_THREAD__)
    __tsan_release(p);
#endif
    (void)p;
}

// ------------------------------------------------------------------------------------------
// Errors
// ------------------------------------------------------------------------------------------

__attribute__((format(printf, 1, 2))) CUDA_SIM_NO_TSAN static void fail(const char* fmt, ...) {
    if (g.failed) return;  // keep the first error
    g.failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g.err, g.errlen, fmt, ap);
    va_end(ap);
}

static inline const char* where_block() {
    static thread_local char buf[96];
    snprintf(buf, sizeof buf, "block (%u,%u,%u)", g.block_idx.x, g.block_idx.y, g.block_idx.z);
    return buf;
}

// A lane's own error (e.g. a bad argument to a primitive): record it and never run again.
CUDA_SIM_NO_TSAN __attribute__((noinline)) static void lane_fail(const char* file, int line,
                                                                  const char* what) {
    Lane* l = g.cur;
    fail("%s:%d: %s (%s, thread (%u,%u,%u))", file, line, what, where_block(), l->tid.x,
         l->tid.y, l->tid.z);
    l->state = DONE;
    yield_to_scheduler(true);
    __builtin_trap();  // never resumed
}

// ------------------------------------------------------------------------------------------
// Warp primitives and barriers (the lane side: park and let the scheduler resolve)
// ------------------------------------------------------------------------------------------

CUDA_SIM_NO_TSAN __attribute__((noinline)) static uint64_t park(int op, int site,
                                                                 const char* file, int line,
                                                                 unsigned mask, uint64_t value,
                                                                 int arg, int width) {
    Lane* l = g.cur;
    l->op = op;
    l->site = site;
    l->file = file;
    l->line = line;
    l->mask = mask;
    l->value = value;
    l->arg = arg;
    l->width = width;
    l->state = op == OP_SYNCTHREADS ? WAIT_BLOCK : WAIT_WARP;
#if defined(__SANITIZE_THREAD__)
    void* sync = &g.block_sync[op == OP_SYNCTHREADS ? 32 : (l - g.lanes) / 32];
    __tsan_release(sync);
#endif
    yield_to_scheduler(false);
#if defined(__SANITIZE_THREAD__)
    __tsan_acquire(sync);
#endif
    return l->result;
}

template <class T>
static inline uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle type");
    uint64_t b = 0;
    memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
static inline T from_bits(uint64_t b) {
    T v;
    memcpy(&v, &b, sizeof(T));
    return v;
}

template <class T>
static inline T shfl(const char* f, int l, int site, int op, unsigned mask, T v, int arg,
                     int width = 32) {
    return from_bits<T>(park(op, site, f, l, mask, to_bits(v), arg, width));
}

// __syncwarp(...) -> SyncWarp{site}(...): the mask argument is optional.
struct SyncWarp {
    const char* file;
    int line, site;
    void operator()(unsigned mask = 0xffffffffu) const {
        park(OP_SYNCWARP, site, file, line, mask, 0, 0, 32);
    }
};

}  // namespace cuda_sim

#define CUDA_SIM_SITE __FILE__, __LINE__, __COUNTER__
#define __shfl_sync(mask, ...) \
    ::cuda_sim::shfl(CUDA_SIM_SITE, ::cuda_sim::OP_SHFL_IDX, mask, __VA_ARGS__)
#define __shfl_up_sync(mask, ...) \
    ::cuda_sim::shfl(CUDA_SIM_SITE, ::cuda_sim::OP_SHFL_UP, mask, __VA_ARGS__)
#define __shfl_down_sync(mask, ...) \
    ::cuda_sim::shfl(CUDA_SIM_SITE, ::cuda_sim::OP_SHFL_DOWN, mask, __VA_ARGS__)
#define __shfl_xor_sync(mask, ...) \
    ::cuda_sim::shfl(CUDA_SIM_SITE, ::cuda_sim::OP_SHFL_XOR, mask, __VA_ARGS__)
#define __ballot_sync(mask, pred) \
    ((unsigned)::cuda_sim::park(::cuda_sim::OP_BALLOT, __COUNTER__, __FILE__, __LINE__, mask, \
                                (pred) ? 1 : 0, 0, 32))
#define __any_sync(mask, pred) \
    ((int)::cuda_sim::park(::cuda_sim::OP_ANY, __COUNTER__, __FILE__, __LINE__, mask, \
                           (pred) ? 1 : 0, 0, 32))
#define __all_sync(mask, pred) \
    ((int)::cuda_sim::park(::cuda_sim::OP_ALL, __COUNTER__, __FILE__, __LINE__, mask, \
                           (pred) ? 1 : 0, 0, 32))
#define __syncwarp(...) (::cuda_sim::SyncWarp{__FILE__, __LINE__, __COUNTER__}(__VA_ARGS__))
#define __syncthreads() \
    ((void)::cuda_sim::park(::cuda_sim::OP_SYNCTHREADS, __COUNTER__, __FILE__, __LINE__, 0, 0, \
                            0, 0))
#define __trap() ::cuda_sim::lane_fail(__FILE__, __LINE__, "__trap() called")

// Lanes that have not exited (the lanes of a warp are all "converged" at any primitive here).
CUDA_SIM_NO_TSAN static inline unsigned __activemask() {
    using namespace cuda_sim;
    const int i = (int)(g.cur - g.lanes), base = i & ~31;
    unsigned m = 0;
    for (int k = 0; k < 32 && base + k < g.nthreads; ++k)
        if (g.lanes[base + k].state != DONE) m |= 1u << k;
    return m;
}

// ------------------------------------------------------------------------------------------
// Atomics: real atomic instructions (so ThreadSanitizer accepts them as synchronised)
// ------------------------------------------------------------------------------------------

namespace cuda_sim {
template <class T, class F>
static inline T atomic_update(T* p, F f) {
    using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
    static_assert(sizeof(T) == sizeof(U), "atomic type");
    U* q = reinterpret_cast<U*>(p);
    U old = __atomic_load_n(q, __ATOMIC_RELAXED);
    for (;;) {
        const U next = (U)to_bits(f(from_bits<T>(old)));
        if (__atomic_compare_exchange_n(q, &old, next, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return from_bits<T>(old);
    }
}
template <class T>
using if_int = std::enable_if_t<std::is_integral<T>::value, int>;
}  // namespace cuda_sim

template <class T, cuda_sim::if_int<T> = 0>
static inline T atomicAdd(T* p, T v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }
template <class T, cuda_sim::if_int<T> = 0>
static inline T atomicSub(T* p, T v) { return __atomic_fetch_sub(p, v, __ATOMIC_RELAXED); }
template <class T, cuda_sim::if_int<T> = 0>
static inline T atomicExch(T* p, T v) { return __atomic_exchange_n(p, v, __ATOMIC_RELAXED); }
template <class T, cuda_sim::if_int<T> = 0>
static inline T atomicAnd(T* p, T v) { return __atomic_fetch_and(p, v, __ATOMIC_RELAXED); }
template <class T, cuda_sim::if_int<T> = 0>
static inline T atomicOr(T* p, T v) { return __atomic_fetch_or(p, v, __ATOMIC_RELAXED); }
template <class T, cuda_sim::if_int<T> = 0>
static inline T atomicCAS(T* p, T expected, T desired) {
    __atomic_compare_exchange_n(p, &expected, desired, false, __ATOMIC_RELAXED,
                                __ATOMIC_RELAXED);
    return expected;  // the old value, whether or not it swapped
}
template <class T, cuda_sim::if_int<T> = 0>
static inline T atomicMax(T* p, T v) {
    return cuda_sim::atomic_update(p, [v](T o) { return o > v ? o : v; });
}
template <class T, cuda_sim::if_int<T> = 0>
static inline T atomicMin(T* p, T v) {
    return cuda_sim::atomic_update(p, [v](T o) { return o < v ? o : v; });
}
static inline float atomicAdd(float* p, float v) {
    return cuda_sim::atomic_update(p, [v](float o) { return o + v; });
}
static inline double atomicAdd(double* p, double v) {
    return cuda_sim::atomic_update(p, [v](double o) { return o + v; });
}
static inline float atomicExch(float* p, float v) {
    return cuda_sim::atomic_update(p, [v](float) { return v; });
}

// ------------------------------------------------------------------------------------------
// Device math and intrinsics (host libm: correctly rounded, CUDA's within its ulp bounds)
// ------------------------------------------------------------------------------------------

static inline float __int_as_float(int i) { return cuda_sim::from_bits<float>((uint32_t)i); }
static inline int __float_as_int(float f) { return (int)(uint32_t)cuda_sim::to_bits(f); }
static inline float __uint_as_float(unsigned i) { return cuda_sim::from_bits<float>(i); }
static inline unsigned __float_as_uint(float f) { return (uint32_t)cuda_sim::to_bits(f); }
static inline double __longlong_as_double(long long i) {
    return cuda_sim::from_bits<double>((uint64_t)i);
}
static inline long long __double_as_longlong(double d) { return (long long)cuda_sim::to_bits(d); }
// __expf / __logf: glibc declares both (as expf / logf).
static inline float __fdividef(float a, float b) { return a / b; }
static inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
static inline double rsqrt(double x) { return 1.0 / sqrt(x); }
static inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
static inline int __popc(unsigned x) { return __builtin_popcount(x); }
static inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
static inline int __ffs(int x) { return __builtin_ffs(x); }
static inline int __clz(int x) { return x ? __builtin_clz((unsigned)x) : 32; }
template <class T>
static inline T __ldg(const T* p) { return *p; }
using std::max;
using std::min;

// ------------------------------------------------------------------------------------------
// Kernel table: the loader's footer registers each extern "C" __global__ function
// ------------------------------------------------------------------------------------------

namespace cuda_sim {
template <class T>
constexpr char kind_of() {
    return std::is_pointer<T>::value                 ? 'p'
           : std::is_same<T, bool>::value            ? 'b'
           : std::is_floating_point<T>::value        ? 'f'
           : std::is_signed<T>::value                ? 'i'
                                                     : 'u';
}
template <class... A>
struct Signature {
    static constexpr char kinds[] = {kind_of<A>()..., 0};
    static constexpr unsigned char sizes[] = {(unsigned char)sizeof(A)..., 0};
};
template <class... A, size_t... I>
static void invoke_impl(void* fn, void* const* argv, std::index_sequence<I...>) {
    reinterpret_cast<void (*)(A...)>(fn)(*static_cast<std::remove_cv_t<A>*>(argv[I])...);
    (void)argv;
}
template <class... A>
static void invoke(void* fn, void* const* argv) {
    invoke_impl<A...>(fn, argv, std::index_sequence_for<A...>{});
}
template <class... A>
constexpr KernelEntry make_entry(const char* name, void (*fn)(A...)) {
    return KernelEntry{name, (void*)fn, &invoke<A...>, (int)sizeof...(A),
                       Signature<A...>::kinds, Signature<A...>::sizes};
}
}  // namespace cuda_sim

// ------------------------------------------------------------------------------------------
// The scheduler
// ------------------------------------------------------------------------------------------

extern "C" CUDA_SIM_HIDDEN __attribute__((noreturn)) CUDA_SIM_NO_TSAN void cuda_sim_fiber_main(
    void) {
    using namespace cuda_sim;
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_finish_switch_fiber(nullptr, &g.sched_stack_bottom, &g.sched_stack_size);
#endif
#if defined(__SANITIZE_THREAD__)
    __tsan_acquire(&g.launch_sync);
#endif
    g.kernel->invoke(g.kernel->fn, g.argv);
#if defined(__SANITIZE_THREAD__)
    __tsan_release(&g.done_sync);
#endif
    g.cur->state = DONE;
    yield_to_scheduler(true);
    __builtin_trap();
}

namespace cuda_sim {

static const int SEGMENT_BITS = 5;

// PTX shfl.sync: the source lane for `lane`, or -1 for "keep the own value"; the c operand of
// CUDA's intrinsics is ((32 - width) << 8) | (up ? 0 : 31).
static inline int shfl_source(int op, int lane, int b, int width) {
    const int segmask = (32 - width) & 31;
    const int cval = op == OP_SHFL_UP ? 0 : 31;
    const int bval = b & 31;
    const int max_lane = (lane & segmask) | (cval & ~segmask);
    const int min_lane = lane & segmask;
    int j;
    bool ok;
    switch (op) {
    case OP_SHFL_UP: j = lane - bval; ok = j >= max_lane; break;
    case OP_SHFL_DOWN: j = lane + bval; ok = j <= max_lane; break;
    case OP_SHFL_XOR: j = lane ^ bval; ok = j <= max_lane; break;
    default: j = min_lane | (bval & ~segmask); ok = j <= max_lane; break;
    }
    return ok ? j : lane;
}

static char group_error[1024];

// Can the warp primitive lane `k` (of the warp starting at `base`, `count` lanes) waits at
// resolve now? Fills group_error when not.
CUDA_SIM_NO_TSAN static bool group_ready(int base, int count, int k) {
    const Lane& L = g.lanes[base + k];
    const char* op = op_names[L.op];
    const int warp = base / 32;
#define CUDA_SIM_GERR(...)                                                                   \
    do {                                                                                     \
        int n_ = snprintf(group_error, sizeof group_error, "%s:%d: %s: ", L.file, L.line, op); \
        n_ += snprintf(group_error + n_, sizeof group_error - n_, __VA_ARGS__);              \
        snprintf(group_error + n_, sizeof group_error - n_, " (%s, warp %d)", where_block(), \
                 warp);                                                                      \
        return false;                                                                        \
    } while (0)
    if (!((L.mask >> k) & 1u))
        CUDA_SIM_GERR("mask 0x%08x does not include the calling lane %d", L.mask, k);
    if (L.op <= OP_SHFL_XOR && (L.width < 1 || L.width > 32 || (L.width & (L.width - 1))))
        CUDA_SIM_GERR("width %d is not a power of 2 in [1, 32] (lane %d)", L.width, k);
    for (int j = 0; j < 32; ++j) {
        if (!((L.mask >> j) & 1u)) continue;
        if (j >= count)
            CUDA_SIM_GERR("mask 0x%08x names lane %d, which lies past the end of the block "
                          "(blockDim (%u,%u,%u): this warp has %d lanes)",
                          L.mask, j, g.block_dim.x, g.block_dim.y, g.block_dim.z, count);
        const Lane& J = g.lanes[base + j];
        if (J.state == DONE)
            CUDA_SIM_GERR("mask 0x%08x names lane %d, which has exited", L.mask, j);
        if (J.state == WAIT_BLOCK)
            CUDA_SIM_GERR("divergence: lane %d waits here while lane %d waits at "
                          "__syncthreads at %s:%d", k, j, J.file, J.line);
        if (J.site != L.site)
            CUDA_SIM_GERR("divergence: lane %d waits here while lane %d waits at %s at %s:%d",
                          k, j, op_names[J.op], J.file, J.line);
        if (J.mask != L.mask)
            CUDA_SIM_GERR("lanes %d and %d pass different masks 0x%08x and 0x%08x", k, j,
                          L.mask, J.mask);
        if (L.op <= OP_SHFL_XOR) {
            if (J.width < 1 || J.width > 32 || (J.width & (J.width - 1)))
                CUDA_SIM_GERR("width %d is not a power of 2 in [1, 32] (lane %d)", J.width, j);
            const int src = shfl_source(L.op, j, J.arg, J.width);
            if (!((L.mask >> src) & 1u))
                CUDA_SIM_GERR("lane %d reads lane %d, which is not in the mask 0x%08x", j, src,
                              L.mask);
        }
    }
#undef CUDA_SIM_GERR
    return true;
}

CUDA_SIM_NO_TSAN static void group_apply(int base, int k) {
    Lane* lanes = g.lanes + base;
    const unsigned mask = lanes[k].mask;
    const int op = lanes[k].op;
    unsigned ballot = 0;
    for (int j = 0; j < 32; ++j)
        if (((mask >> j) & 1u) && lanes[j].value) ballot |= 1u << j;
    for (int j = 0; j < 32; ++j) {
        if (!((mask >> j) & 1u)) continue;
        Lane& J = lanes[j];
        switch (op) {
        case OP_BALLOT: J.result = ballot; break;
        case OP_ANY: J.result = ballot != 0; break;
        case OP_ALL: J.result = ballot == mask; break;
        case OP_SYNCWARP: J.result = 0; break;
        default: J.result = lanes[shfl_source(op, j, J.arg, J.width)].value; break;
        }
    }
    for (int j = 0; j < 32; ++j)
        if ((mask >> j) & 1u) lanes[j].state = READY;
}

// Run a warp until none of its lanes can move: 0 when every lane is done or at __syncthreads,
// -1 on an error.
CUDA_SIM_NO_TSAN static int run_warp(int base, int count) {
    for (;;) {
        for (int k = 0; k < count; ++k) {
            Lane* l = &g.lanes[base + k];
            if (l->state == READY) resume(l);
            if (g.failed) return -1;
        }
        static char first_error[sizeof group_error];
        bool waiting = false;
        for (int k = 0; k < count; ++k) {
            if (g.lanes[base + k].state != WAIT_WARP) continue;
            if (group_ready(base, count, k)) {
                group_apply(base, k);
                waiting = false;
                break;
            }
            // Another group may still be able to move; the first lane's problem is reported.
            if (!waiting) memcpy(first_error, group_error, sizeof group_error);
            waiting = true;
        }
        if (waiting) {
            fail("%s", first_error);
            return -1;
        }
        bool any_ready = false;
        for (int k = 0; k < count; ++k) any_ready |= g.lanes[base + k].state == READY;
        if (!any_ready) return 0;
    }
}

CUDA_SIM_NO_TSAN static bool run_block() {
    const int n = g.nthreads;
    uint3 t{0, 0, 0};
    for (int i = 0; i < n; ++i) {
        Lane* l = &g.lanes[i];
        l->tid = t;
        l->state = READY;
        l->sp = nullptr;
        if (++t.x == g.block_dim.x) {
            t.x = 0;
            if (++t.y == g.block_dim.y) t.y = 0, ++t.z;
        }
    }
    for (;;) {
        for (int base = 0; base < n; base += 32)
            if (run_warp(base, std::min(32, n - base)) < 0) return false;
        int first = -1;
        for (int i = 0; i < n; ++i) {
            const Lane& l = g.lanes[i];
            if (l.state != WAIT_BLOCK) continue;
            if (first < 0) {
                first = i;
            } else if (l.site != g.lanes[first].site) {
                const Lane& f = g.lanes[first];
                fail("%s:%d: __syncthreads: divergence: thread (%u,%u,%u) waits here while "
                     "thread (%u,%u,%u) waits at __syncthreads at %s:%d (%s)",
                     l.file, l.line, l.tid.x, l.tid.y, l.tid.z, f.tid.x, f.tid.y, f.tid.z,
                     f.file, f.line, where_block());
                return false;
            }
        }
        if (first < 0) return true;  // every thread has exited
        for (int i = 0; i < n; ++i)
            if (g.lanes[i].state == WAIT_BLOCK) g.lanes[i].state = READY;
    }
}

// Stacks for `n` lanes: one mapping, a guard page at the bottom of each stack.
CUDA_SIM_NO_TSAN static bool ensure_capacity(int n) {
    if (n <= g.capacity) return true;
    const size_t bytes = (size_t)n * g.stack_size;
    char* p = (char*)mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    Lane* lanes = (Lane*)calloc((size_t)n, sizeof(Lane));
    char** free_stacks = (char**)calloc((size_t)n, sizeof(char*));
    if (!lanes || !free_stacks) {
        munmap(p, bytes);
        free(lanes);
        free(free_stacks);
        return false;
    }
    for (int i = 0; i < n; ++i) mprotect(p + (size_t)i * g.stack_size, 4096, PROT_NONE);
    if (g.stacks) munmap(g.stacks, g.stacks_bytes);
#if defined(__SANITIZE_THREAD__)
    for (int i = 0; i < g.capacity; ++i)
        for (void* fiber : g.lanes[i].tsan_fiber) __tsan_destroy_fiber(fiber);
#endif
    free(g.lanes);
    free(g.free_stacks);
    g.free_stacks = free_stacks;
    g.stacks = p;
    g.stacks_bytes = bytes;
    g.lanes = lanes;
    g.capacity = n;
#if defined(__SANITIZE_THREAD__)
    for (int i = 0; i < n; ++i)
        for (void*& fiber : lanes[i].tsan_fiber) fiber = __tsan_create_fiber(0);
#endif
    return true;
}

#if !defined(CUDA_SIM_SANITIZER)
static void on_fault(int sig, siginfo_t* info, void*) {
    g.fault_sig = sig;
    g.fault_addr = info->si_addr;
    siglongjmp(g.fault_jmp, 1);
}
#endif

}  // namespace cuda_sim

// Runs kernel `k` over grid x block; args: one 8-byte slot per parameter (little-endian value
// at the slot's start). Returns 0, or 1 with the reason in err.
CUDA_SIM_API CUDA_SIM_NO_TSAN int cuda_sim_launch(const cuda_sim::KernelEntry* k, uint64_t* args,
                                 const unsigned* grid, const unsigned* block, int ftz, char* err,
                                 size_t errlen) {
    using namespace cuda_sim;
    g.err = err;
    g.errlen = errlen;
    g.failed = 0;
    err[0] = 0;
    g.kernel = k;
    for (int i = 0; i < k->nparams; ++i) g.argv[i] = &args[i];
    g.grid_dim = dim3(grid[0], grid[1], grid[2]);
    g.block_dim = dim3(block[0], block[1], block[2]);
    g.nthreads = (int)(block[0] * block[1] * block[2]);
    if (!g.stack_size) {
#if defined(CUDA_SIM_SANITIZER)
        g.stack_size = 512 * 1024;
#else
        g.stack_size = 64 * 1024;
#endif
    }
    if (!ensure_capacity(g.nthreads)) {
        fail("cannot map fiber stacks for %d threads", g.nthreads);
        return 1;
    }
    g.nfree = 0;  // every stack is free again (a failed launch abandons its fibers)
    for (int i = g.capacity - 1; i >= 0; --i)
        g.free_stacks[g.nfree++] = g.stacks + (size_t)i * g.stack_size;
#if defined(__SANITIZE_ADDRESS__)
    // Fibers abandoned by a failed launch leave poisoned frames behind.
    if (g.stacks_dirty) __asan_unpoison_memory_region(g.stacks, g.stacks_bytes);
#endif
#if defined(__SANITIZE_THREAD__)
    if (!g.sched_fiber) g.sched_fiber = __tsan_get_current_fiber();
    __tsan_release(&g.launch_sync);
#endif
#if defined(__x86_64__)
    const unsigned mxcsr = _mm_getcsr();
    _mm_setcsr(ftz ? (mxcsr | 0x8040u) : (mxcsr & ~0x8040u));  // FTZ | DAZ
#endif
#if !defined(CUDA_SIM_SANITIZER)
    static thread_local bool altstack_ready = false;
    if (!altstack_ready) {  // a stack overflow must still reach the handler
        stack_t cur_ss;
        sigaltstack(nullptr, &cur_ss);
        if (cur_ss.ss_flags & SS_DISABLE) {
            stack_t ss{};
            ss.ss_size = 65536;
            ss.ss_sp = malloc(ss.ss_size);
            sigaltstack(&ss, nullptr);
        }
        altstack_ready = true;
    }
    struct sigaction sa{}, old_segv, old_bus, old_fpe;
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    sigaction(SIGFPE, &sa, &old_fpe);
    if (sigsetjmp(g.fault_jmp, 0)) {
        const Lane* l = g.cur;
        const char* a = (const char*)g.fault_addr;
        const bool overflow = a >= g.stacks && a < g.stacks + g.stacks_bytes;
        fail("%s: %s at address %p (%s, thread (%u,%u,%u))", k->name,
             g.fault_sig == SIGFPE ? "arithmetic exception (SIGFPE, e.g. integer division by "
                                     "zero)"
             : overflow ? "stack overflow (each simulated thread has a 64 KiB stack)"
                        : "invalid memory access",
             (void*)g.fault_addr, where_block(), l ? l->tid.x : 0, l ? l->tid.y : 0,
             l ? l->tid.z : 0);
    } else
#endif
    {
        for (unsigned z = 0; z < grid[2] && !g.failed; ++z)
            for (unsigned y = 0; y < grid[1] && !g.failed; ++y)
                for (unsigned x = 0; x < grid[0] && !g.failed; ++x) {
                    g.block_idx = uint3{x, y, z};
#if defined(__SANITIZE_THREAD__)
                    // Freed sync objects die with their memory: no order carried to the next
                    // block through them.
                    g.block_sync = (char*)malloc(33);
                    g.block_parity ^= 1;
#endif
                    run_block();
#if defined(__SANITIZE_THREAD__)
                    free(g.block_sync);
#endif
                }
    }
#if !defined(CUDA_SIM_SANITIZER)
    sigaction(SIGSEGV, &old_segv, nullptr);
    sigaction(SIGBUS, &old_bus, nullptr);
    sigaction(SIGFPE, &old_fpe, nullptr);
#endif
#if defined(__x86_64__)
    _mm_setcsr(mxcsr);
#endif
#if defined(__SANITIZE_THREAD__)
    __tsan_acquire(&g.done_sync);
#endif
    g.cur = nullptr;
    g.stacks_dirty = g.failed != 0;
    return g.failed;
}

CUDA_SIM_API int cuda_sim_abi_version(void) { return 1; }
