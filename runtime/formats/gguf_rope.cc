// Llama 3.1's RoPE frequency scaling in GGUF files. llama.cpp's converter
// (convert_hf_to_gguf.py, LlamaModel, since its PR #8676) records no
// metadata for it: it evaluates Llama 3's formula from config.json's
// rope_scaling and stores the result as a tensor, rope_freqs.weight, f32
// [head_dim / 2], the divisor of each rotary frequency (1 for high
// frequencies, `factor` for low ones, a smooth blend between), which
// llama.cpp hands to ggml_rope_ext as freq_factors.
//
// ModelSource describes the scaling by its four parameters, which a divisor
// table does not give back uniquely (only the ratios of original_context to
// the two frequency factors matter). So the table is checked instead: the
// largest divisor is the factor, and every entry must match Llama 3's
// formula with that factor and Llama 3.1/3.2's published low_freq_factor 1,
// high_freq_factor 4 and original context 8192 (or the parameters the file's
// metadata states). A table that matches is the same model; any other is
// refused rather than run with frequencies the file did not mean.
//
// tandem's own files may also state the parameters as metadata:
// <arch>.rope.scaling.type = "llama3" with .rope.scaling.factor,
// .low_freq_factor, .high_freq_factor and .original_context_length.
#include <cmath>
#include <cstring>
#include <vector>

#include "runtime/formats/gguf_model_keys.h"
#include "runtime/rope_frequencies.h"

namespace tandem {
namespace {

// The divisor Llama 3's scaling applies to rotary frequency `freq`.
double llama3_divisor(double freq, const RopeScaling& s) { return freq / llama3_scaled_frequency(freq, s); }

std::string describe(const RopeScaling& s) {
  return "factor " + std::to_string(s.factor) + ", low_freq_factor " + std::to_string(s.low_freq_factor) +
         ", high_freq_factor " + std::to_string(s.high_freq_factor) + ", original context " +
         std::to_string(s.original_context);
}

Status check_parameters(const std::string& source, const RopeScaling& s) {
  const bool ok = std::isfinite(s.factor) && s.factor >= 1.0f && std::isfinite(s.low_freq_factor) &&
                  s.low_freq_factor > 0.0f && std::isfinite(s.high_freq_factor) &&
                  s.high_freq_factor > s.low_freq_factor && s.original_context > 0 &&
                  s.original_context <= kMaxSeqLen;
  if (!ok)
    return OutOfRange(source + ": llama3 rope scaling (" + describe(s) +
                      ") needs factor >= 1, 0 < low_freq_factor < high_freq_factor and a positive original context");
  return Status::Ok();
}

Result<RopeScaling> scaling_from_metadata(const gguf::File& f, const std::string& arch) {
  const auto key = [&](const char* name) { return arch + ".rope.scaling." + name; };
  RopeScaling s;
  TANDEM_ASSIGN_OR_RETURN(s.factor, f.get_f32(key("factor")));
  TANDEM_ASSIGN_OR_RETURN(s.low_freq_factor, gguf_optional(f, key("low_freq_factor"), 1.0f, &gguf::File::get_f32));
  TANDEM_ASSIGN_OR_RETURN(s.high_freq_factor, gguf_optional(f, key("high_freq_factor"), 4.0f, &gguf::File::get_f32));
  TANDEM_ASSIGN_OR_RETURN(s.original_context,
                          gguf_optional<int64_t>(f, key("original_context_length"), 8192, &gguf::File::get_int));
  TANDEM_RETURN_IF_ERROR(check_parameters(f.source, s));
  return s;
}

// Checks rope_freqs.weight against `s` (or, when `s.factor` is 0, against the
// Llama 3 defaults with the table's largest divisor) and returns the scaling
// it stands for; factor 0 when every divisor is 1.
Result<RopeScaling> scaling_from_table(const gguf::File& f, const std::string& arch, const LlamaConfig& c,
                                       RopeScaling s) {
  const gguf::TensorInfo& t = *f.find_tensor("rope_freqs.weight");
  const int64_t half = c.head_dim() / 2;
  if (t.type != gguf::GgmlType::kF32 || t.ne.size() != 1 || t.ne[0] != half)
    return InvalidArgument(f.source + ": rope_freqs.weight should be F32 [" + std::to_string(half) +
                           "] (half the head dimension), but is " +
                           std::string(gguf::ggml_type_name(static_cast<uint32_t>(t.type))) + " with " +
                           std::to_string(t.ne[0]) + " elements in " + std::to_string(t.ne.size()) + " dimensions");
  std::vector<float> divisors(static_cast<size_t>(half));
  std::memcpy(divisors.data(), t.data, divisors.size() * sizeof(float));  // may be unaligned
  if (s.factor == 0.0f) {
    float largest = 0.0f;
    for (const float d : divisors) largest = std::isfinite(d) && d > largest ? d : largest;
    bool all_one = true;
    for (const float d : divisors) all_one = all_one && d == 1.0f;
    if (all_one) return RopeScaling{0.0f};
    s.factor = largest;
    TANDEM_ASSIGN_OR_RETURN(s.original_context, gguf_optional<int64_t>(f, arch + ".rope.scaling.original_context_length",
                                                                      8192, &gguf::File::get_int));
    TANDEM_RETURN_IF_ERROR(check_parameters(f.source, s));
  }
  for (int64_t i = 0; i < half; ++i) {
    // Rotary frequency i of a head: theta^(-2i / head_dim).
    const double freq = std::pow(static_cast<double>(c.rope_theta), -2.0 * static_cast<double>(i) /
                                                                         static_cast<double>(c.head_dim()));
    const double want = llama3_divisor(freq, s);
    const double got = divisors[static_cast<size_t>(i)];
    if (!(std::fabs(got - want) <= 1e-3 * want))
      return Unimplemented(f.source + ": rope_freqs.weight[" + std::to_string(i) + "] = " + std::to_string(got) +
                           ", but Llama 3 scaling with " + describe(s) + " gives " + std::to_string(want) +
                           "; other per-frequency factors are not supported");
  }
  return s;
}

}  // namespace

Status read_gguf_rope_scaling(const gguf::File& f, const std::string& arch, ModelSource& source) {
  const std::string type_key = arch + ".rope.scaling.type";
  TANDEM_ASSIGN_OR_RETURN(const std::string type, gguf_optional<std::string>(f, type_key, "", &gguf::File::get_string));
  RopeScaling s{0.0f};
  if (type == "llama3") {
    TANDEM_ASSIGN_OR_RETURN(s, scaling_from_metadata(f, arch));
  } else if (type == "linear") {
    // Some converters state linear scaling by 1, which changes nothing.
    TANDEM_ASSIGN_OR_RETURN(const float factor,
                            gguf_optional(f, arch + ".rope.scaling.factor", 1.0f, &gguf::File::get_f32));
    if (factor != 1.0f)
      return Unimplemented(f.source + ": linear rope scaling by " + std::to_string(factor) + " is not supported");
  } else if (!type.empty() && type != "none") {
    return Unimplemented(f.source + ": " + type_key + " = \"" + type +
                         "\" is not supported; tandem runs llama3 scaling (or none)");
  }
  if (f.find_tensor("rope_freqs.weight") != nullptr) {
    TANDEM_ASSIGN_OR_RETURN(s, scaling_from_table(f, arch, source.config, s));
  }
  if (s.factor > 0.0f) source.config.rope_scaling = s;
  return Status::Ok();
}

}  // namespace tandem
