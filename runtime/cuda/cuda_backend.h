// The CUDA backend (runtime/backend.h's interface on one GPU) and the two
// measurements `tandem bench generate --backend cuda` divides by. Everything
// here is declared in every build: in a build without CUDA the functions
// answer FailedPrecondition (cuda_backend_absent.cc), so callers need no #ifdefs.
//
// What the backend does (cuda_backend_impl.h for the how):
//  - Memory: allocate() takes device memory from the device's stream-ordered
//    pool, which keeps freed memory for reuse; the model plans all of its
//    memory at creation, and the backend's scratch (bf16 copies of prefill
//    activations, attention scores) grows on first use and then stays, so a
//    decode or prefill step allocates nothing after the first.
//  - Weights: f32, bf16, ggml Q8_0 and Q4_0, read by the kernels in their
//    storage type. import_weights() copies host weights once, in 64 MiB chunks
//    through two pinned staging buffers; weights already in device memory
//    (fill_synthetic) are used as they are; on an integrated GPU that can read
//    pageable host memory (GB10's unified memory), host weights are used in
//    place, with no copy.
//  - Kernels: few tokens (decode, <= 16) use matrix-vector kernels that read
//    each weight once (one token: kernels_gemv.cu, with RMSNorm, the residual
//    add or SwiGLU fused in and Q8_0/Q4_0 as dp4a on 8-bit activations) and
//    split-K attention, and
//    run as a CUDA graph recorded per step shape (decode_step); more tokens
//    (prefill) use cuBLAS GEMMs in bf16 (quantized weights are widened to
//    bf16 first) or f32, and attention as two strided-batched GEMMs around a
//    causal softmax (TF32 when the model's weights are narrower than f32).
//  - Errors: every CUDA and cuBLAS call is checked; a kernel-side failure is
//    kept (the first one, with file:line) and returned by the next
//    copy_to_host() or synchronize(). Every host wait polls with a deadline.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "runtime/backend.h"

namespace tandem {

Result<std::unique_ptr<Backend>> make_cuda_backend(int device);

// Device-to-device copy of a `bytes` buffer, `reps` times after a warm-up,
// timed with CUDA events: median (bytes read + bytes written) per second,
// the convention of runtime/memory_bandwidth.h.
Result<double> cuda_copy_bandwidth(Backend& cuda, size_t bytes, int reps);
// A kernel that only reads a `bytes` buffer (no writes): median bytes read
// per second. Decode only reads weights, so this is the tighter ceiling; the
// bench reports it beside the copy-based roofline that DESIGN.md prescribes.
Result<double> cuda_read_bandwidth(Backend& cuda, size_t bytes, int reps);
// cuBLAS GEMM of [m, k] x [k, n] with inputs of `dtype` (bf16 or f32; f32
// accumulation), the median FLOP/s (2*m*n*k per GEMM) over `reps`.
Result<double> cuda_gemm_flops(Backend& cuda, DType dtype, int64_t m, int64_t n, int64_t k, int reps);

}  // namespace tandem
