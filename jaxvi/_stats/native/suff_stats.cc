// Shifted sufficient statistics in one pass over the values, on every core.
//
// For each dataset: n, shift = its first value (0 when empty), Σ(x − shift) and Σ(x − shift)²,
// by pairwise summation over leaves of 128 values (SIMD lanes each: AVX2 where the CPU has it),
// in the data's own precision: the rounding error is O(log n · ε), like a tree sum's. Two
// layouts:
//
//   ragged: values (..., M) and offsets (..., D + 1); dataset d is values[offsets[d]:offsets[d+1]]
//   padded: x (..., W) and lengths (...); row r holds x[r, :clip(lengths[r], 0, W)]
//
// Entry points: XLA FFI handlers (RaggedStats, PaddedStats: callable under jit, on XLA's
// intra-op thread pool) and a host function for NumPy arrays (window_stats, fit's CPU path:
// datasets as windows of flat values, own threads, the GIL released). A dataset whose offsets do not fit (negative, decreasing, past M)
// gets n = offsets[d+1] − offsets[d] and NaN sums: NaN in its own row only; nothing is read
// outside the values.

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

#include "nanobind/nanobind.h"
#include "nanobind/ndarray.h"
#include "xla/ffi/api/c_api.h"
#include "xla/ffi/api/ffi.h"

namespace nb = nanobind;
namespace ffi = xla::ffi;

namespace {

constexpr int64_t kLeaf = 128;               // values summed by lanes before pairwise steps
constexpr int64_t kValuesPerTask = 1 << 16;  // smaller work is not worth a thread
constexpr int64_t kDatasetCost = 16;  // a dataset's fixed cost, in values (work splits by both)

// float32 data are summed in float32 and float64 data in float64: with at least 4 lanes over
// leaves of 128 values and pairwise steps above, the rounding error is at most
// (32 + log2(n/128))·ε of the sum of magnitudes, as tight as the XLA path's tree of 32-value
// pieces (32 + log2 n/32).
template <typename T>
struct Sums {
  T s1;
  T s2;
};

// The leaf, on SIMD vectors of B bytes (GCC/Clang vector extensions: 16 = SSE2 on x86-64 or
// NEON on arm64, 32 = AVX2, chosen at run time): two vectors per step so that the two add
// chains overlap. Short datasets dominate, so the last partial step reads whole vectors and
// masks the lanes past the dataset (`room`: values readable from x).
// Everything below a range is inlined into it, so that it is compiled for the range's target.
#define JAXVI_INLINE inline __attribute__((always_inline))

template <int B, typename T>
struct Simd {
  using Int = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  static constexpr int kWidth = B / sizeof(T);
  typedef T V __attribute__((vector_size(B)));
  typedef Int M __attribute__((vector_size(B)));

  JAXVI_INLINE static V Load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof(V));
    return v;
  }
  JAXVI_INLINE static M Iota() {
    M m;
    for (int k = 0; k < kWidth; ++k) m[k] = k;
    return m;
  }
  JAXVI_INLINE static T Total(V v) {
    T t = 0;
    for (int k = 0; k < kWidth; ++k) t += v[k];
    return t;
  }
};

template <int B, typename T>
JAXVI_INLINE Sums<T> Leaf(const T* x, int64_t n, T shift, int64_t room) {
  using S = Simd<B, T>;
  using V = typename S::V;
  using M = typename S::M;
  constexpr int W = S::kWidth;
  V a0 = {}, a1 = {}, b0 = {}, b1 = {};
  const V s = V{} + shift;
  int64_t i = 0;
  for (; i + 2 * W <= n; i += 2 * W) {
    const V y0 = S::Load(x + i) - s, y1 = S::Load(x + i + W) - s;
    a0 += y0;
    a1 += y1;
    b0 += y0 * y0;
    b1 += y1 * y1;
  }
  // The last, partial step always runs (masked to nothing when there is no rest): one branch
  // fewer per dataset. Where the values end within this step, the rest is copied out first:
  // the same arithmetic either way, so a dataset's sums do not depend on where it lies.
  const int64_t rest = n - i;
  const T* p = x + i;
  T tail[2 * W];
  if (__builtin_expect(i + 2 * W > room, 0)) {
    std::memset(tail, 0, sizeof(tail));
    std::memcpy(tail, p, rest * sizeof(T));
    p = tail;
  }
  const M iota = S::Iota();
  const M keep0 = iota < static_cast<typename S::Int>(rest);
  const M keep1 = iota < static_cast<typename S::Int>(rest - W);
  const V y0 = (V)((M)(S::Load(p) - s) & keep0);
  const V y1 = (V)((M)(S::Load(p + W) - s) & keep1);
  a0 += y0;
  a1 += y1;
  b0 += y0 * y0;
  b1 += y1 * y1;
  return {S::Total(a0 + a1), S::Total(b0 + b1)};
}

// Σ(x − shift), Σ(x − shift)² over x[0:n]: leaves of kLeaf values, added pairwise by a binary
// counter (no recursion, so it inlines into the vectorised caller).
template <int B, typename T>
JAXVI_INLINE Sums<T> PairwiseSums(const T* x, int64_t n, T shift, int64_t room) {
  if (n <= kLeaf) return Leaf<B>(x, n, shift, room);
  Sums<T> stack[64];
  int depth = 0;
  int64_t leaves = 0;
  for (int64_t i = 0; i < n; i += kLeaf, ++leaves) {
    Sums<T> s = Leaf<B>(x + i, std::min(kLeaf, n - i), shift, room - i);
    for (int64_t c = leaves; c & 1; c >>= 1) {
      const Sums<T>& left = stack[--depth];
      s = {left.s1 + s.s1, left.s2 + s.s2};
    }
    stack[depth++] = s;
  }
  Sums<T> total = stack[--depth];
  while (depth > 0) {
    const Sums<T>& left = stack[--depth];
    total = {left.s1 + total.s1, left.s2 + total.s2};
  }
  return total;
}

// The statistics of one dataset x[0:len] (len >= 0); `room` values are readable from x.
template <int B, typename T>
JAXVI_INLINE void OneDataset(const T* x, int64_t len, int64_t room, T* n, T* shift, T* s1, T* s2) {
  *n = static_cast<T>(len);
  if (len == 0) {
    *shift = *s1 = *s2 = T(0);
    return;
  }
  const T first = x[0];
  const Sums<T> s = PairwiseSums<B>(x, len, first, room);
  *shift = first;
  *s1 = s.s1;
  *s2 = s.s2;
}

// Outputs of `count` datasets, one array per statistic.
template <typename T>
struct Out {
  T* n;
  T* shift;
  T* s1;
  T* s2;
};

// Datasets [lo, hi) of ragged values (m of them) with offsets `off`.
template <int B, typename T, typename I>
JAXVI_INLINE void RaggedRange(const T* values, int64_t m, const I* off, int64_t lo, int64_t hi,
                        Out<T> out) {
  constexpr T nan = std::numeric_limits<T>::quiet_NaN();
  for (int64_t d = lo; d < hi; ++d) {
    const int64_t a = static_cast<int64_t>(off[d]);
    const int64_t b = static_cast<int64_t>(off[d + 1]);
    if (a < 0 || b < a || b > m) {
      out.n[d] = static_cast<T>(b - a);
      out.shift[d] = out.s1[d] = out.s2[d] = nan;
      continue;
    }
    OneDataset<B>(values + a, b - a, m - a, out.n + d, out.shift + d, out.s1 + d, out.s2 + d);
  }
}

// Rows [lo, hi) of a (rows, width) block with lengths `len`.
template <int B, typename T, typename I>
JAXVI_INLINE void PaddedRange(const T* x, int64_t width, const I* len, int64_t lo, int64_t hi,
                        Out<T> out) {
  for (int64_t r = lo; r < hi; ++r) {
    const int64_t l = std::clamp<int64_t>(static_cast<int64_t>(len[r]), 0, width);
    OneDataset<B>(x + r * width, l, width, out.n + r, out.shift + r, out.s1 + r, out.s2 + r);
  }
}

// Datasets as windows of flat values: dataset d is values[starts[d]:starts[d] + lengths[d]];
// a window that does not fit gives NaN sums (and n = lengths[d]).
template <int B, typename T>
JAXVI_INLINE void WindowRange(const T* values, int64_t m, const int64_t* starts,
                        const int64_t* lengths, int64_t lo, int64_t hi, Out<T> out) {
  constexpr T nan = std::numeric_limits<T>::quiet_NaN();
  for (int64_t d = lo; d < hi; ++d) {
    const int64_t a = starts[d], l = lengths[d];
    if (a < 0 || l < 0 || l > m - a) {
      out.n[d] = static_cast<T>(l);
      out.shift[d] = out.s1[d] = out.s2[d] = nan;
      continue;
    }
    OneDataset<B>(values + a, l, m - a, out.n + d, out.shift + d, out.s1 + d, out.s2 + d);
  }
}

// Each range, compiled twice on x86-64: for AVX2 (32-byte vectors) and the SSE2 baseline, the
// one for this CPU picked at run time. The result does not depend on it: lanes and leaves are
// summed in the same order only up to rounding, so float32 sums may differ in the last bits
// between machines, not between runs.
#if defined(__x86_64__) && defined(__GNUC__)
bool HasAvx2() {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  return avx2;
}
#define JAXVI_AVX2 __attribute__((target("avx2")))
#else
bool HasAvx2() { return false; }
#define JAXVI_AVX2
#endif

template <typename T, typename I>
JAXVI_AVX2 void RaggedRange32(const T* v, int64_t m, const I* o, int64_t lo, int64_t hi,
                              Out<T> out) {
  RaggedRange<32>(v, m, o, lo, hi, out);
}
template <typename T, typename I>
void RaggedRangeAny(const T* v, int64_t m, const I* o, int64_t lo, int64_t hi, Out<T> out) {
  HasAvx2() ? RaggedRange32(v, m, o, lo, hi, out) : RaggedRange<16>(v, m, o, lo, hi, out);
}

template <typename T, typename I>
JAXVI_AVX2 void PaddedRange32(const T* x, int64_t w, const I* len, int64_t lo, int64_t hi,
                              Out<T> out) {
  PaddedRange<32>(x, w, len, lo, hi, out);
}
template <typename T, typename I>
void PaddedRangeAny(const T* x, int64_t w, const I* len, int64_t lo, int64_t hi, Out<T> out) {
  HasAvx2() ? PaddedRange32(x, w, len, lo, hi, out) : PaddedRange<16>(x, w, len, lo, hi, out);
}

template <typename T>
JAXVI_AVX2 void WindowRange32(const T* v, int64_t m, const int64_t* st, const int64_t* len,
                              int64_t lo, int64_t hi, Out<T> out) {
  WindowRange<32>(v, m, st, len, lo, hi, out);
}
template <typename T>
void WindowRangeAny(const T* v, int64_t m, const int64_t* st, const int64_t* len, int64_t lo,
                    int64_t hi, Out<T> out) {
  HasAvx2() ? WindowRange32(v, m, st, len, lo, hi, out)
            : WindowRange<16>(v, m, st, len, lo, hi, out);
}

// Splits `count` datasets into `parts` ranges of about equal work; `work(d)` is the work
// before dataset d (non-decreasing). Returns parts + 1 boundaries.
template <typename F>
std::vector<int64_t> Split(int64_t count, int64_t parts, int64_t total, F work_before) {
  std::vector<int64_t> edges(parts + 1, count);
  edges[0] = 0;
  for (int64_t p = 1; p < parts; ++p) {
    const int64_t target = total / parts * p;
    int64_t lo = edges[p - 1], hi = count;  // first d with work_before(d) >= target
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (work_before(mid) < target) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    edges[p] = lo;
  }
  return edges;
}

// Runs body(part) for part in [0, parts): on the calling thread and `schedule`d workers, and
// returns once all are done. A worker may run inline inside `schedule`. The workers' shared
// state lives on the heap: the last worker may still be unlocking it when this returns.
template <typename Schedule, typename Body>
void ParallelFor(int64_t parts, Schedule&& schedule, Body&& body) {
  if (parts <= 1) {
    body(0);
    return;
  }
  struct State {
    std::mutex mu;
    std::condition_variable done;
    int64_t remaining;
  };
  auto state = std::make_shared<State>();
  state->remaining = parts - 1;
  for (int64_t p = 1; p < parts; ++p) {
    schedule([state, &body, p] {
      body(p);
      std::lock_guard<std::mutex> lock(state->mu);
      if (--state->remaining == 0) state->done.notify_one();
    });
  }
  body(0);
  std::unique_lock<std::mutex> lock(state->mu);
  state->done.wait(lock, [&] { return state->remaining == 0; });
}

int64_t PartsFor(int64_t values, int64_t threads) {
  return std::max<int64_t>(1, std::min<int64_t>(threads, values / kValuesPerTask));
}

// ---------------------------------------------------------------------------------------
// The two layouts over a batch, given a scheduler and a thread count.

template <typename T, typename I, typename Schedule>
void RaggedBatch(const T* values, int64_t m, const I* off, int64_t d, int64_t batch, Out<T> out,
                 int64_t threads, Schedule&& schedule) {
  for (int64_t k = 0; k < batch; ++k) {
    const T* v = values + k * m;
    const I* o = off + k * (d + 1);
    Out<T> ok{out.n + k * d, out.shift + k * d, out.s1 + k * d, out.s2 + k * d};
    const int64_t parts = PartsFor(m, threads);
    // Work before dataset i: its first offset, clamped (any order of bad offsets still
    // splits the datasets into disjoint ranges, only less evenly).
    auto before = [&](int64_t i) {
      return std::clamp<int64_t>(o[i], 0, m) + kDatasetCost * i;
    };
    const std::vector<int64_t> edges = Split(d, parts, m + kDatasetCost * d, before);
    ParallelFor(parts, schedule, [&](int64_t p) {
      RaggedRangeAny(v, m, o, edges[p], std::max(edges[p], edges[p + 1]), ok);
    });
  }
}

template <typename T, typename I, typename Schedule>
void PaddedBatch(const T* x, int64_t rows, int64_t width, const I* len, Out<T> out,
                 int64_t threads, Schedule&& schedule) {
  const int64_t parts = PartsFor(rows * width, threads);
  auto before = [&](int64_t r) { return r * width; };
  const std::vector<int64_t> edges = Split(rows, parts, rows * width, before);
  ParallelFor(parts, schedule, [&](int64_t p) {
    PaddedRangeAny(x, width, len, edges[p], edges[p + 1], out);
  });
}

// ---------------------------------------------------------------------------------------
// XLA FFI handlers.

template <typename T>
Out<T> Outputs(ffi::Result<ffi::AnyBuffer>& n, ffi::Result<ffi::AnyBuffer>& shift,
               ffi::Result<ffi::AnyBuffer>& s1, ffi::Result<ffi::AnyBuffer>& s2) {
  return {n->typed_data<T>(), shift->typed_data<T>(), s1->typed_data<T>(), s2->typed_data<T>()};
}

struct XlaPool {
  ffi::ThreadPool* pool;
  template <typename F>
  void operator()(F&& f) const {
    pool->Schedule(std::forward<F>(f));
  }
};

bool IsFloat(ffi::DataType t) { return t == ffi::DataType::F32 || t == ffi::DataType::F64; }
bool IsIndex(ffi::DataType t) { return t == ffi::DataType::S32 || t == ffi::DataType::S64; }

// Calls run(T{}, I{}) for the value type T (float, double) and index type I (int32, int64).
template <typename F>
void ForTypes(ffi::DataType value, ffi::DataType index, F&& run) {
  const bool i64 = index == ffi::DataType::S64;
  if (value == ffi::DataType::F64) {
    i64 ? run(double{}, int64_t{}) : run(double{}, int32_t{});
  } else {
    i64 ? run(float{}, int64_t{}) : run(float{}, int32_t{});
  }
}

int64_t LeadingCount(const ffi::AnyBuffer& b) {
  auto dims = b.dimensions();
  int64_t count = 1;
  for (size_t i = 0; i + 1 < dims.size(); ++i) count *= dims[i];
  return count;
}

ffi::Error RaggedStatsImpl(ffi::ThreadPool pool, ffi::AnyBuffer values, ffi::AnyBuffer offsets,
                           ffi::Result<ffi::AnyBuffer> n, ffi::Result<ffi::AnyBuffer> shift,
                           ffi::Result<ffi::AnyBuffer> s1, ffi::Result<ffi::AnyBuffer> s2) {
  if (!IsFloat(values.element_type()) || !IsIndex(offsets.element_type())) {
    return ffi::Error::InvalidArgument("jaxvi ragged stats: need f32/f64 values, s32/s64 offsets");
  }
  auto vd = values.dimensions();
  auto od = offsets.dimensions();
  if (vd.size() < 1 || od.size() != vd.size() || od.back() < 1) {
    return ffi::Error::InvalidArgument("jaxvi ragged stats: values (..., M), offsets (..., D+1)");
  }
  const int64_t m = vd.back(), d = od.back() - 1, batch = LeadingCount(values);
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  XlaPool schedule{&pool};
  auto run = [&](auto t, auto i) {
    using T = decltype(t);
    using I = decltype(i);
    RaggedBatch(values.typed_data<T>(), m, offsets.typed_data<I>(), d, batch,
                Outputs<T>(n, shift, s1, s2), threads, schedule);
  };
  ForTypes(values.element_type(), offsets.element_type(), run);
  return ffi::Error::Success();
}

ffi::Error PaddedStatsImpl(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer lengths,
                           ffi::Result<ffi::AnyBuffer> n, ffi::Result<ffi::AnyBuffer> shift,
                           ffi::Result<ffi::AnyBuffer> s1, ffi::Result<ffi::AnyBuffer> s2) {
  if (!IsFloat(x.element_type()) || !IsIndex(lengths.element_type())) {
    return ffi::Error::InvalidArgument("jaxvi padded stats: need f32/f64 x, s32/s64 lengths");
  }
  auto xd = x.dimensions();
  if (xd.size() < 1 || static_cast<int64_t>(lengths.element_count()) != LeadingCount(x)) {
    return ffi::Error::InvalidArgument("jaxvi padded stats: x (..., W), lengths (...)");
  }
  const int64_t width = xd.back(), rows = LeadingCount(x);
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  XlaPool schedule{&pool};
  auto run = [&](auto t, auto i) {
    using T = decltype(t);
    using I = decltype(i);
    PaddedBatch(x.typed_data<T>(), rows, width, lengths.typed_data<I>(),
                Outputs<T>(n, shift, s1, s2), threads, schedule);
  };
  ForTypes(x.element_type(), lengths.element_type(), run);
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(RaggedStats, RaggedStatsImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()   // values (..., M)
                                  .Arg<ffi::AnyBuffer>()   // offsets (..., D + 1)
                                  .Ret<ffi::AnyBuffer>()   // n (..., D)
                                  .Ret<ffi::AnyBuffer>()   // shift
                                  .Ret<ffi::AnyBuffer>()   // sum_x
                                  .Ret<ffi::AnyBuffer>()); // sum_x2

XLA_FFI_DEFINE_HANDLER_SYMBOL(PaddedStats, PaddedStatsImpl,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()   // x (..., W)
                                  .Arg<ffi::AnyBuffer>()   // lengths (...)
                                  .Ret<ffi::AnyBuffer>()   // n (...)
                                  .Ret<ffi::AnyBuffer>()   // shift
                                  .Ret<ffi::AnyBuffer>()   // sum_x
                                  .Ret<ffi::AnyBuffer>()); // sum_x2

// ---------------------------------------------------------------------------------------
// Host functions for NumPy arrays (fit's CPU path): own threads, the GIL released.

namespace {

struct OwnThreads {
  std::vector<std::thread>* threads;
  template <typename F>
  void operator()(F&& f) const {
    threads->emplace_back(std::forward<F>(f));
  }
};

int64_t HostThreads(int64_t requested) {
  if (requested > 0) return requested;
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

template <typename T>
using Vec = nb::ndarray<T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;

// Four new NumPy arrays of `count` elements, owned by Python; `out` points into them.
template <typename T>
nb::tuple StatsArrays(int64_t count, Out<T>& out) {
  T* buf[4];
  nb::list arrays;
  for (int k = 0; k < 4; ++k) {
    buf[k] = new T[std::max<int64_t>(count, 1)];
    nb::capsule owner(buf[k], [](void* p) noexcept { delete[] static_cast<T*>(p); });
    size_t shape[1] = {static_cast<size_t>(count)};
    arrays.append(nb::ndarray<nb::numpy, T, nb::ndim<1>>(buf[k], 1, shape, owner));
  }
  out = {buf[0], buf[1], buf[2], buf[3]};
  return nb::tuple(arrays);
}

template <typename T>
nb::tuple HostWindows(Vec<const T> values, Vec<const int64_t> starts, Vec<const int64_t> lengths,
                      int64_t threads) {
  const int64_t d = static_cast<int64_t>(starts.shape(0));
  if (static_cast<int64_t>(lengths.shape(0)) != d) {
    throw std::invalid_argument("starts and lengths must have one entry per dataset");
  }
  const int64_t m = static_cast<int64_t>(values.shape(0));
  Out<T> out{};
  nb::tuple result = StatsArrays<T>(d, out);
  {
    nb::gil_scoped_release release;
    const T* v = values.data();
    const int64_t* st = starts.data();
    const int64_t* len = lengths.data();
    int64_t total = 0;
    for (int64_t i = 0; i < d; ++i) total += std::max<int64_t>(len[i], 0);
    const int64_t parts = PartsFor(total, HostThreads(threads));
    // Work before dataset i: its start, clamped (the windows of fit's layouts never go back).
    auto before = [&](int64_t i) {
      return std::clamp<int64_t>(st[i], 0, m) + kDatasetCost * i;
    };
    const std::vector<int64_t> edges = Split(d, parts, m + kDatasetCost * d, before);
    std::vector<std::thread> workers;
    ParallelFor(parts, OwnThreads{&workers}, [&](int64_t p) {
      WindowRangeAny(v, m, st, len, edges[p], std::max(edges[p], edges[p + 1]), out);
    });
    for (auto& w : workers) w.join();
  }
  return result;
}

template <typename T>
nb::capsule Handler(T* fn) {
  static_assert(std::is_invocable_r_v<XLA_FFI_Error*, T, XLA_FFI_CallFrame*>,
                "an XLA FFI handler");
  return nb::capsule(reinterpret_cast<void*>(fn));
}

}  // namespace

NB_MODULE(_suff_stats, m) {
  m.doc() = "jaxvi's native statistics: XLA FFI handlers and host functions";
  m.def("handlers", []() {
    nb::dict out;
    out["jaxvi_ragged_stats"] = Handler(RaggedStats);
    out["jaxvi_padded_stats"] = Handler(PaddedStats);
    return out;
  });
  m.attr("ffi_api_version") = nb::make_tuple(XLA_FFI_API_MAJOR, XLA_FFI_API_MINOR);
  const char* doc =
      "window_stats(values, starts, lengths, threads=0) -> (n, shift, sum_x, sum_x2): the "
      "statistics of values[starts[d]:starts[d] + lengths[d]] for every d; threads=0: all cores";
  m.def("window_stats", &HostWindows<float>, nb::arg("values"), nb::arg("starts"),
        nb::arg("lengths"), nb::arg("threads") = 0, doc);
  m.def("window_stats", &HostWindows<double>, nb::arg("values"), nb::arg("starts"),
        nb::arg("lengths"), nb::arg("threads") = 0);
}
