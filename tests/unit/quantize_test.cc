// The weight formats on the host (runtime/quant_blocks.h, runtime/quantize.h),
// the CPU backend's argmax and synthetic fill, and how a CUDA request is
// refused where there is no CUDA: all of it runs without a GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "runtime/backend.h"
#include "runtime/cpu/cpu_backend.h"
#include "runtime/quant_blocks.h"
#include "runtime/quantize.h"
#include "runtime/synthetic.h"

namespace tandem {
namespace {

std::vector<float> random_values(size_t n, uint32_t seed, float scale) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

TEST(Quantize, Bf16RoundsToNearestEven) {
  EXPECT_EQ(quant::bf16_from_f32(1.0f), 0x3f80);
  // 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7: ties go to even (1).
  EXPECT_EQ(quant::bf16_from_f32(1.0f + 1.0f / 256), 0x3f80);
  EXPECT_EQ(quant::bf16_from_f32(1.0f + 3.0f / 256), 0x3f82);
  EXPECT_TRUE(std::isnan(quant::f32_from_bf16(quant::bf16_from_f32(std::nanf("")))));
}

TEST(Quantize, F16ConversionsMatchIeeeIncludingSubnormals) {
  EXPECT_EQ(quant::f16_from_f32(1.0f), 0x3c00);
  EXPECT_EQ(quant::f16_from_f32(-2.0f), 0xc000);
  EXPECT_EQ(quant::f16_from_f32(65504.0f), 0x7bff);
  EXPECT_EQ(quant::f16_from_f32(70000.0f), 0x7c00);             // overflow: inf
  EXPECT_EQ(quant::f16_from_f32(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(quant::f16_from_f32(std::ldexp(1.0f, -26)), 0x0000);  // below half of it
  for (uint32_t h = 0; h < 0x7c00; ++h)  // every finite positive half survives a round trip
    ASSERT_EQ(quant::f16_from_f32(quant::f32_from_f16(static_cast<uint16_t>(h))), h) << h;
}

// Every element comes back within half a quantization step (Q8_0: amax/127;
// Q4_0: amax/8), except that Q4_0's levels run from -8 to +7 steps with the
// largest magnitude on the -8 side: values of the other sign beyond 7 steps
// clip, by up to one step (ggml's rule, kept bit for bit).
TEST(Quantize, QBlocksRoundTripWithinHalfAStep) {
  const int64_t n = 32 * 9;
  const auto x = random_values(n, 3, 2.0f);
  for (DType dtype : {DType::kQ8_0, DType::kQ4_0}) {
    std::vector<uint8_t> bytes(Tensor::view(nullptr, dtype, {n}).bytes());
    std::vector<float> back(n);
    quantize_row(dtype, x.data(), n, bytes.data());
    dequantize_row(dtype, bytes.data(), n, back.data());
    for (int64_t b = 0; b < n / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::abs(x[b * 32 + i]));
      const float step = dtype == DType::kQ8_0 ? amax / 127 : amax / 8;
      for (int i = 0; i < 32; ++i) {
        const bool clipped = dtype == DType::kQ4_0 && std::abs(x[b * 32 + i]) > 7 * step;
        EXPECT_NEAR(back[b * 32 + i], x[b * 32 + i], step * (clipped ? 1.0f : 0.5f) * 1.01f)
            << dtype_name(dtype) << " " << b;
      }
    }
  }
}

TEST(Quantize, ConvertWeightsKeepsNormsAndRefusesRowsOffTheBlocks) {
  auto f32 = make_synthetic_weights(*synthetic_shape("tiny-gqa"), 1);
  ASSERT_TRUE(f32.ok());
  auto q4 = convert_weights(*f32, DType::kQ4_0);
  ASSERT_TRUE(q4.ok()) << q4.status().to_string();
  EXPECT_EQ(q4->layers[0].wq.dtype, DType::kQ4_0);
  EXPECT_EQ(q4->layers[0].attn_norm.dtype, DType::kF32);
  EXPECT_EQ(q4->classifier.data, q4->embedding.data);  // still shared
  auto stories = make_synthetic_weights(*synthetic_shape("stories260K"), 1);  // hidden 172
  ASSERT_TRUE(stories.ok());
  auto refused = convert_weights(*stories, DType::kQ8_0);
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(convert_weights(*stories, DType::kBF16).ok());
}

TEST(CpuBackendExtras, ArgmaxAndSyntheticFill) {
  CpuBackend cpu(2);
  std::vector<float> logits = {0.5f, 3.0f, -1.0f, 3.0f, 2.0f, 7.0f};
  std::vector<int32_t> out(2, -1);
  cpu.argmax(Tensor::view(out.data(), DType::kI32, {2}), Tensor::view(logits.data(), DType::kF32, {2, 3}));
  EXPECT_EQ(out, (std::vector<int32_t>{1, 2}));
  logits = {std::nanf(""), 1.0f, 2.0f, 4.0f, std::nanf(""), 3.0f};  // a NaN never wins, as in Sampler
  cpu.argmax(Tensor::view(out.data(), DType::kI32, {2}), Tensor::view(logits.data(), DType::kF32, {2, 3}));
  EXPECT_EQ(out, (std::vector<int32_t>{2, 0}));
  std::vector<float> fill(1000);
  ASSERT_TRUE(cpu.fill_synthetic(Tensor::view(fill.data(), DType::kF32, {1000}), 9, 0.5f, 1.0f).ok());
  for (size_t i = 0; i < fill.size(); ++i)
    ASSERT_EQ(fill[i], 1.0f + 0.5f * quant::synthetic_uniform(9, i));
  // Narrower dtypes hold what quantize_row makes of the f32 fill; dtypes no
  // kernel computes with are refused.
  for (DType dtype : {DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    Tensor sized = Tensor::view(nullptr, dtype, {1000 / 32 * 32});
    std::vector<uint8_t> got(sized.bytes()), want(sized.bytes());
    sized.data = got.data();
    ASSERT_TRUE(cpu.fill_synthetic(sized, 9, 0.5f, 1.0f).ok()) << dtype_name(dtype);
    quantize_row(dtype, fill.data(), sized.numel(), want.data());
    EXPECT_EQ(got, want) << dtype_name(dtype);
  }
  std::vector<int32_t> ints(64);
  EXPECT_EQ(cpu.fill_synthetic(Tensor::view(ints.data(), DType::kI32, {64}), 9, 1, 0).code(),
            StatusCode::kInvalidArgument);
}

TEST(BackendKind, CudaIsRefusedWithTheReasonWhereItCannotRun) {
  EXPECT_EQ(*parse_backend_kind("cuda"), BackendKind::kCuda);
  EXPECT_EQ(parse_backend_kind("tpu").status().code(), StatusCode::kInvalidArgument);
  auto backend = make_backend({BackendKind::kCuda, 0, 0});
  if (backend.ok()) GTEST_SKIP() << "a GPU is usable here: " << (*backend)->name();
  // No CUDA in this build, or no usable GPU: either way a reason, never a crash.
  const StatusCode code = backend.status().code();
  EXPECT_TRUE(code == StatusCode::kFailedPrecondition || code == StatusCode::kUnavailable)
      << backend.status().to_string();
  EXPECT_FALSE(backend.status().message().empty());
}

}  // namespace
}  // namespace tandem
