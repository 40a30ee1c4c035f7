// The host collective algorithms on the in-process transport: every collective
// for 1..8 ranks (one thread each), every dtype and op, against a sequential
// reference; then deadlines, abort and a dying peer.
//
// Inputs are small integers (and, for i32/i64, values near the type's limit so
// that sums wrap): every partial sum is exact in every dtype, bf16 included
// (|sum| <= 8 * 5 < 256), so results are compared bitwise whatever the order
// of reduction.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "collectives/collectives.h"
#include "collectives/host/reduce.h"
#include "collectives/local/local_transport.h"

namespace tandem::collectives {
namespace {

using namespace std::chrono_literals;
using Comms = std::vector<std::unique_ptr<Communicator>>;

#define EXPECT_OK(expr)                          \
  do {                                           \
    const ::tandem::Status s_ = (expr);          \
    EXPECT_TRUE(s_.ok()) << s_.to_string();      \
  } while (0)

constexpr DType kTypes[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kI32, DType::kI64};
constexpr ReduceOp kOps[] = {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin};
// Small enough that both all_reduce paths and many-chunk pipelines (with
// chunks that do not divide the blocks) run on small data.
constexpr HostCommunicatorOptions kTiny{256, 64};

// Generous: two shared cores, and the sanitizers slow everything down.
Deadline soon() { return deadline_after(60s); }

void on_ranks(int n, const std::function<void(int)>& body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < n; ++r) threads.emplace_back(body, r);
  for (auto& t : threads) t.join();
}

bool contains(const Status& s, const std::string& what) {
  return s.message().find(what) != std::string::npos;
}

int64_t value(DType dt, int rank, size_t i) {
  if (dt == DType::kI32 && i % 5 == 1) return std::numeric_limits<int32_t>::max() - 3 * rank - int64_t(i % 7);
  if (dt == DType::kI64 && i % 5 == 1) return std::numeric_limits<int64_t>::max() - 3 * rank - int64_t(i % 7);
  return static_cast<int64_t>((static_cast<size_t>(rank) * 7 + i * 3) % 11) - 5;
}

int64_t fold(DType dt, ReduceOp op, int64_t a, int64_t b) {
  if (op == ReduceOp::kMax) return std::max(a, b);
  if (op == ReduceOp::kMin) return std::min(a, b);
  if (dt == DType::kI32) return static_cast<int32_t>(static_cast<uint32_t>(a) + static_cast<uint32_t>(b));
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));  // exact for the floats
}

// A buffer of elements of one dtype, 8-byte aligned.
struct Buf {
  Buf(DType dtype, size_t count) : dt(dtype), n(count), words(count * dtype_size(dtype) / 8 + 1) {}
  char* p() { return reinterpret_cast<char*>(words.data()); }
  size_t bytes() const { return n * dtype_size(dt); }
  void put(size_t i, int64_t v) {
    switch (dt) {
      case DType::kF32: reinterpret_cast<float*>(p())[i] = static_cast<float>(v); break;
      case DType::kF16: reinterpret_cast<uint16_t*>(p())[i] = float_to_half(static_cast<float>(v)); break;
      case DType::kBF16: reinterpret_cast<uint16_t*>(p())[i] = float_to_bf16(static_cast<float>(v)); break;
      case DType::kI32: reinterpret_cast<int32_t*>(p())[i] = static_cast<int32_t>(v); break;
      default: reinterpret_cast<int64_t*>(p())[i] = v; break;
    }
  }
  bool operator==(Buf& o) { return bytes() == o.bytes() && std::memcmp(p(), o.p(), bytes()) == 0; }
  DType dt;
  size_t n;
  std::vector<uint64_t> words;
};

// Rank r's input: element i of `count`, starting at global index `first`.
Buf input(DType dt, size_t count, int r, size_t first = 0) {
  Buf b(dt, count);
  for (size_t i = 0; i < count; ++i) b.put(i, value(dt, r, first + i));
  return b;
}

// op over ranks 0..n-1 of the inputs, elements [first, first + count).
Buf reduced(DType dt, ReduceOp op, size_t count, int n, size_t first = 0) {
  Buf b(dt, count);
  for (size_t i = 0; i < count; ++i) {
    int64_t acc = value(dt, 0, first + i);
    for (int r = 1; r < n; ++r) acc = fold(dt, op, acc, value(dt, r, first + i));
    b.put(i, acc);
  }
  return b;
}

std::string label(DType dt, ReduceOp op, size_t count, int r) {
  return std::string(dtype_name(dt)) + " " + std::string(reduce_op_name(op)) + " count " +
         std::to_string(count) + " rank " + std::to_string(r);
}

// Parameters: ranks, and whether to use kTiny or the default options.
class CollectivesLocal : public ::testing::TestWithParam<std::tuple<int, bool>> {
 protected:
  int n() const { return std::get<0>(GetParam()); }
  bool tiny() const { return std::get<1>(GetParam()); }
  Comms group() const { return make_local_group(n(), tiny() ? kTiny : HostCommunicatorOptions{}); }
  // Default options: 40000 elements are above small_bytes for every dtype.
  std::vector<size_t> counts() const {
    return tiny() ? std::vector<size_t>{0, 1, 7, 100, 4097} : std::vector<size_t>{0, 1, 7, 4097, 40000};
  }
};

TEST_P(CollectivesLocal, AllReduce) {
  Comms comms = group();
  // With tiny options, also the ring on counts below the rank count (empty
  // blocks), which the small path would otherwise take.
  Comms ring = make_local_group(n(), {0, 64});
  on_ranks(n(), [&](int r) {
    for (DType dt : kTypes)
      for (ReduceOp op : kOps)
        for (size_t count : counts())
          for (Communicator* c : {comms[r].get(), tiny() && count < 10 ? ring[r].get() : nullptr}) {
            if (c == nullptr) continue;
            Buf want = reduced(dt, op, count, n()), in = input(dt, count, r), out(dt, count);
            EXPECT_OK(c->all_reduce(in.p(), out.p(), count, dt, op, soon()));
            EXPECT_TRUE(out == want) << label(dt, op, count, r);
            EXPECT_OK(c->all_reduce(in.p(), in.p(), count, dt, op, soon()));  // in place
            EXPECT_TRUE(in == want) << "in place " << label(dt, op, count, r);
          }
  });
}

TEST_P(CollectivesLocal, ReduceScatter) {
  Comms comms = group();
  on_ranks(n(), [&](int r) {
    for (DType dt : kTypes)
      for (ReduceOp op : kOps)
        for (size_t count : counts()) {
          if (count > 4097 && dt != DType::kI64) continue;  // the big ring case, once
          Buf in = input(dt, count * n(), r), out(dt, count);
          Buf want = reduced(dt, op, count, n(), count * r);
          EXPECT_OK(comms[r]->reduce_scatter(in.p(), out.p(), count, dt, op, soon()));
          EXPECT_TRUE(out == want) << label(dt, op, count, r);
        }
  });
}

TEST_P(CollectivesLocal, AllGather) {
  Comms comms = group();
  on_ranks(n(), [&](int r) {
    for (DType dt : kTypes)
      for (size_t count : counts()) {
        Buf want(dt, count * n());
        for (size_t i = 0; i < count * n(); ++i)
          want.put(i, value(dt, static_cast<int>(i / count), i % count));
        Buf in = input(dt, count, r), out(dt, count * n());
        EXPECT_OK(comms[r]->all_gather(in.p(), out.p(), count, dt, soon()));
        EXPECT_TRUE(out == want) << label(dt, ReduceOp::kSum, count, r);
        Buf inplace(dt, count * n());
        std::memcpy(inplace.p() + r * in.bytes(), in.p(), in.bytes());
        EXPECT_OK(comms[r]->all_gather(inplace.p() + r * in.bytes(), inplace.p(), count, dt, soon()));
        EXPECT_TRUE(inplace == want) << "in place " << label(dt, ReduceOp::kSum, count, r);
      }
  });
}

TEST_P(CollectivesLocal, BroadcastFromEveryRoot) {
  Comms comms = group();
  on_ranks(n(), [&](int r) {
    for (DType dt : {DType::kF16, DType::kI64})
      for (size_t count : counts())
        for (int root = 0; root < n(); ++root) {
          Buf buf = input(dt, count, r), want = input(dt, count, root);
          EXPECT_OK(comms[r]->broadcast(buf.p(), count, dt, root, soon()));
          EXPECT_TRUE(buf == want) << "root " << root << " " << label(dt, ReduceOp::kSum, count, r);
        }
  });
}

INSTANTIATE_TEST_SUITE_P(Ranks, CollectivesLocal,
                         ::testing::Combine(::testing::Range(1, 9), ::testing::Bool()),
                         [](const auto& param_info) {
                           return std::to_string(std::get<0>(param_info.param)) +
                                  (std::get<1>(param_info.param) ? "_tiny" : "_default");
                         });

TEST(CollectivesLocalTest, SmallAndRingResultsBitwiseIdenticalAcrossRanks) {
  // Real-valued inputs, so the order of reduction shows in the last bits; the
  // double-precision reference bounds the error (5 f32 additions of values
  // below 1: well within 1e-5).
  const std::pair<HostCommunicatorOptions, size_t> cases[] = {{{}, 50}, {kTiny, 3001}};
  for (auto [options, count] : cases) {
    const int n = 5;
    Comms comms = make_local_group(n, options);
    std::vector<std::vector<float>> out(n, std::vector<float>(count));
    std::vector<double> want(count, 0.0);
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<std::vector<float>> in(n, std::vector<float>(count));
    for (auto& v : in)
      for (size_t i = 0; i < count; ++i) want[i] += v[i] = dist(rng);
    on_ranks(n, [&](int r) {
      EXPECT_OK(
          comms[r]->all_reduce(in[r].data(), out[r].data(), count, DType::kF32, ReduceOp::kSum, soon()));
    });
    for (int r = 1; r < n; ++r) EXPECT_EQ(0, std::memcmp(out[0].data(), out[r].data(), count * 4)) << r;
    for (size_t i = 0; i < count; ++i) EXPECT_NEAR(out[0][i], want[i], 1e-5);
  }
}

TEST(CollectivesLocalTest, SendRecvMatchInOrderPerTagAndApartFromCollectives) {
  Comms comms = make_local_group(3);
  on_ranks(3, [&](int r) {
    int64_t x = r;
    if (r == 0) {
      for (uint32_t m : {10u, 20u, 11u}) EXPECT_OK(comms[0]->send(&m, sizeof m, 1, m / 10, soon()));
      EXPECT_OK(comms[0]->all_reduce(&x, &x, 1, DType::kI64, ReduceOp::kSum, soon()));
      const uint32_t m = 12;
      EXPECT_OK(comms[0]->send(&m, sizeof m, 1, 1, soon()));
    } else if (r == 1) {
      uint32_t m = 0;
      for (uint32_t want : {10u, 20u, 11u}) {
        EXPECT_OK(comms[1]->recv(&m, sizeof m, 0, want / 10, soon()));
        EXPECT_EQ(m, want);
      }
      EXPECT_OK(comms[1]->all_reduce(&x, &x, 1, DType::kI64, ReduceOp::kSum, soon()));
      EXPECT_OK(comms[1]->recv(&m, sizeof m, 0, 1, soon()));
      EXPECT_EQ(m, 12u);
    } else {
      EXPECT_OK(comms[2]->all_reduce(&x, &x, 1, DType::kI64, ReduceOp::kSum, soon()));
    }
    EXPECT_EQ(x, 3);
  });
}

TEST(CollectivesLocalTest, TransportMatchesPerTagOutOfOrderAndChecksSizes) {
  LocalGroup group(2);
  auto t0 = group.transport(0), t1 = group.transport(1);
  const int64_t a = 1, b = 2;
  int64_t ra = 0, rb = 0;
  int32_t small = 0;
  auto sa = t0->post_send(1, 7, &a, 8), sb = t0->post_send(1, 9, &b, 8), sc = t0->post_send(1, 9, &b, 8);
  auto wb = t1->post_recv(0, 9, &rb, 8), wa = t1->post_recv(0, 7, &ra, 8);
  auto wc = t1->post_recv(0, 9, &small, 4);
  ASSERT_TRUE(sa.ok() && sb.ok() && sc.ok() && wa.ok() && wb.ok() && wc.ok());
  const RequestId sends[] = {*sa, *sb, *sc}, recvs[] = {*wa, *wb};
  EXPECT_OK(t0->wait(sends, soon()));  // a mis-sized send is still delivered
  EXPECT_OK(t1->wait(recvs, soon()));
  EXPECT_EQ(ra, 1);
  EXPECT_EQ(rb, 2);
  const RequestId truncated = *wc;
  const Status s = t1->wait({&truncated, 1}, soon());
  EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.to_string();
  EXPECT_TRUE(contains(s, "peer 0")) << s.to_string();
  // Nobody sends this: the deadline names what is pending.
  auto lonely = t1->post_recv(0, 3, &ra, 8);
  ASSERT_TRUE(lonely.ok());
  const RequestId l = *lonely;
  const Status d = t1->wait({&l, 1}, deadline_after(20ms));
  EXPECT_EQ(d.code(), StatusCode::kDeadlineExceeded);
  EXPECT_TRUE(contains(d, "recv from peer 0")) << d.to_string();
}

TEST(CollectivesLocalTest, BarrierWaitsForEveryRank) {
  const int n = 4;
  Comms comms = make_local_group(n);
  std::atomic<int> arrived[3] = {0, 0, 0};
  on_ranks(n, [&](int r) {
    for (auto& count : arrived) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5 * r));
      count.fetch_add(1);
      EXPECT_OK(comms[r]->barrier(soon()));
      EXPECT_EQ(count.load(), n);
    }
  });
}

TEST(CollectivesLocalTest, InvalidArgumentsLeaveTheGroupUsable) {
  Comms comms = make_local_group(2);
  EXPECT_EQ(make_local_group(0).size(), 0u);
  EXPECT_EQ(comms[0]->backend_name(), "local");
  on_ranks(2, [&](int r) {
    float x = 1;
    auto& c = *comms[r];
    EXPECT_EQ(c.broadcast(&x, 1, DType::kF32, 2, soon()).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(c.broadcast(&x, 1, DType::kF32, -1, soon()).code(), StatusCode::kInvalidArgument);
    const Status q = c.all_reduce(&x, &x, 1, DType::kQ8_0, ReduceOp::kSum, soon());
    EXPECT_EQ(q.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(contains(q, "rank " + std::to_string(r) + ": all_reduce: ")) << q.to_string();
    EXPECT_EQ(c.all_gather(&x, nullptr, 1, DType::kF32, soon()).code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(c.send(&x, 4, r, 0, soon()).code(), StatusCode::kInvalidArgument);  // self
    EXPECT_EQ(c.recv(&x, 4, 5, 0, soon()).code(), StatusCode::kInvalidArgument);
    EXPECT_OK(c.all_reduce(&x, &x, 1, DType::kF32, ReduceOp::kSum, soon()));
    EXPECT_EQ(x, 2.0f);
  });
}

TEST(CollectivesLocalTest, MisSizedRecvIsDataLossAndAborts) {
  Comms comms = make_local_group(2);
  on_ranks(2, [&](int r) {
    int64_t v = 5;
    if (r == 0) {
      EXPECT_OK(comms[0]->send(&v, 8, 1, 3, soon()));
      return;
    }
    const Status s = comms[1]->recv(&v, 4, 0, 3, soon());
    EXPECT_EQ(s.code(), StatusCode::kDataLoss) << s.to_string();
    EXPECT_TRUE(contains(s, "rank 1: recv: peer 0")) << s.to_string();
    EXPECT_EQ(comms[1]->barrier(soon()).code(), StatusCode::kAborted);
  });
}

// ---- Faults: deadlines, abort, a dying peer. ----

TEST(CollectivesLocalFaults, RankThatNeverCallsMeansDeadlineExceededThenAborted) {
  constexpr auto kTimeout = 300ms;
  constexpr auto kSlack = 3s;  // wake-up latency on two shared cores under a sanitizer
  for (size_t count : {size_t{4}, size_t{1000}}) {  // small path, ring path
    Comms comms = make_local_group(3, kTiny);
    on_ranks(2, [&](int r) {  // rank 2 never calls
      std::vector<float> buf(count, 1.0f);
      const auto start = Clock::now();
      const Status s = comms[r]->all_reduce(buf.data(), buf.data(), count, DType::kF32, ReduceOp::kSum,
                                            start + kTimeout);
      const auto elapsed = Clock::now() - start;
      EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << s.to_string();
      EXPECT_TRUE(contains(s, "rank " + std::to_string(r) + ": all_reduce: ")) << s.to_string();
      EXPECT_TRUE(contains(s, "pending: recv from peer")) << s.to_string();
      EXPECT_GE(elapsed, kTimeout);
      EXPECT_LT(elapsed, kTimeout + kSlack);
      const Status later = comms[r]->barrier(soon());
      EXPECT_EQ(later.code(), StatusCode::kAborted) << later.to_string();
      EXPECT_TRUE(contains(later, "DEADLINE_EXCEEDED")) << later.to_string();
    });
  }
}

// Ranks that call a collective with counts differing by whole chunks would
// otherwise match the chunks they share: one returned OK holding part of
// the wrong data while the other timed out. Neither may return OK.
TEST(CollectivesLocalFaults, RanksCallingWithDifferentCountsBothFail) {
  constexpr auto kTimeout = 300ms;
  const size_t chunk = kTiny.chunk_bytes / sizeof(float);
  for (int which = 0; which < 2; ++which) {  // all_gather, broadcast
    Comms comms = make_local_group(2, kTiny);
    on_ranks(2, [&](int r) {
      const size_t count = (r == 0 ? 2 : 4) * chunk;
      std::vector<float> send(count, static_cast<float>(r + 1)), recv(2 * count);
      const Status s = which == 0 ? comms[r]->all_gather(send.data(), recv.data(), count, DType::kF32,
                                                         deadline_after(kTimeout))
                                  : comms[r]->broadcast(send.data(), count, DType::kF32, 0, deadline_after(kTimeout));
      EXPECT_EQ(s.code(), StatusCode::kDeadlineExceeded) << (which == 0 ? "all_gather" : "broadcast") << " rank "
                                                          << r << ": " << s.to_string();
      EXPECT_TRUE(contains(s, "with another count")) << s.to_string();
    });
  }
}

TEST(CollectivesLocalFaults, AbortFromAnotherThreadUnblocksAWait) {
  Comms comms = make_local_group(2);
  std::thread aborter([&] {
    std::this_thread::sleep_for(100ms);
    comms[0]->abort("operator cancelled");
    comms[0]->abort("second reason");  // the first reason wins
  });
  float x = 1;
  const auto start = Clock::now();
  const Status s = comms[0]->all_reduce(&x, &x, 1, DType::kF32, ReduceOp::kSum, deadline_after(60s));
  EXPECT_LT(Clock::now() - start, 10s);
  EXPECT_EQ(s.code(), StatusCode::kAborted) << s.to_string();
  EXPECT_TRUE(contains(s, "rank 0: all_reduce: ")) << s.to_string();
  EXPECT_TRUE(contains(s, "operator cancelled")) << s.to_string();
  aborter.join();
  const Status later = comms[0]->broadcast(&x, 1, DType::kF32, 0, soon());
  EXPECT_EQ(later.code(), StatusCode::kAborted);
  EXPECT_TRUE(contains(later, "operator cancelled")) << later.to_string();
  EXPECT_FALSE(contains(later, "second reason")) << later.to_string();
}

TEST(CollectivesLocalFaults, KilledPeerIsUnavailableNamingThePeer) {
  for (bool kill_first : {false, true})
    for (size_t count : {size_t{4}, size_t{1000}}) {  // small path, ring path
      LocalGroup group(3);
      Comms comms;
      for (int r = 0; r < 3; ++r) comms.push_back(make_host_communicator(group.transport(r), kTiny));
      if (kill_first) group.kill(2);
      std::thread killer([&] {
        std::this_thread::sleep_for(100ms);
        group.kill(2);
      });
      on_ranks(2, [&](int r) {
        std::vector<float> buf(count, 1.0f);
        const auto start = Clock::now();
        const Status s = comms[r]->all_reduce(buf.data(), buf.data(), count, DType::kF32, ReduceOp::kSum,
                                              deadline_after(60s));
        EXPECT_LT(Clock::now() - start, 10s);
        EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
        EXPECT_TRUE(contains(s, "rank " + std::to_string(r) + ": all_reduce: peer 2: gone")) << s.to_string();
        EXPECT_EQ(comms[r]->barrier(soon()).code(), StatusCode::kAborted);
      });
      killer.join();
    }
}

// ---- The reduction arithmetic. ----

TEST(CollectivesReduce, HalfConversionsRoundToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto v = static_cast<uint16_t>(h);
    if ((h & 0x7c00) != 0x7c00 || (h & 0x3ff) == 0) {  // NaNs aside
      ASSERT_EQ(float_to_half(half_to_float(v)), v) << h;
    }
    if ((h & 0x7f80) != 0x7f80 || (h & 0x7f) == 0) {
      ASSERT_EQ(float_to_bf16(bf16_to_float(v)), v) << h;
    }
  }
  EXPECT_EQ(float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(float_to_half(65504.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65519.0f), 0x7bff);
  EXPECT_EQ(float_to_half(65520.0f), 0x7c00);                // the tie rounds to even: inf
  EXPECT_EQ(float_to_half(1.0f + 0x1p-11f), 0x3c00);         // tie, down to even
  EXPECT_EQ(float_to_half(1.0f + 3 * 0x1p-11f), 0x3c02);     // tie, up to even
  EXPECT_EQ(float_to_half(0x1p-24f), 0x0001);                // smallest subnormal
  EXPECT_EQ(float_to_half(0x1p-25f), 0x0000);                // tie, to zero
  EXPECT_EQ(float_to_half(0x1.8p-25f), 0x0001);
  EXPECT_EQ(float_to_half(-0x1.ffcp-15f), 0x8400);           // rounds up into the smallest normal
  EXPECT_TRUE(std::isnan(half_to_float(float_to_half(std::nanf("")))));
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f), 0x3f80);          // tie, down to even
  EXPECT_EQ(float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3f82);      // tie, up to even
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
}

TEST(CollectivesReduce, IntegerSumsWrapAndHalvesReduceInFloat) {
  int32_t a[2] = {std::numeric_limits<int32_t>::max(), -7};
  const int32_t b[2] = {1, 3};
  reduce_into(a, b, 2, DType::kI32, ReduceOp::kSum);
  EXPECT_EQ(a[0], std::numeric_limits<int32_t>::min());
  EXPECT_EQ(a[1], -4);
  int64_t c = std::numeric_limits<int64_t>::min(), d = -1, e = 0;
  reduce_to(&e, &c, &d, 1, DType::kI64, ReduceOp::kSum);
  EXPECT_EQ(e, std::numeric_limits<int64_t>::max());
  uint16_t h = float_to_half(2048.0f);
  const uint16_t one = float_to_half(1.0f);
  reduce_into(&h, &one, 1, DType::kF16, ReduceOp::kSum);  // 2049 is a tie: back to 2048
  EXPECT_EQ(half_to_float(h), 2048.0f);
  float f[3] = {1, -2, 3};
  const float g[3] = {0, 5, -4};
  reduce_into(f, g, 3, DType::kF32, ReduceOp::kMin);
  EXPECT_EQ(f[0], 0.0f);
  EXPECT_EQ(f[1], -2.0f);
  EXPECT_EQ(f[2], -4.0f);
}

}  // namespace
}  // namespace tandem::collectives
