#include "tests/unit/reference_llama.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <numbers>
#include <stdexcept>

namespace tandem::testing {
namespace {

std::vector<double> take(const float*& p, size_t n) {
  std::vector<double> v(p, p + n);
  p += n;
  return v;
}

std::vector<double> copy(const Tensor& t) {
  const float* p = t.f32();
  return std::vector<double>(p, p + t.numel());
}

void rmsnorm(double* out, const double* x, size_t n, const double* w, double eps) {
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const double scale = 1.0 / std::sqrt(ss / n + eps);
  for (size_t i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void rmsnorm(std::vector<double>& out, const std::vector<double>& x, const double* w, double eps) {
  rmsnorm(out.data(), x.data(), x.size(), w, eps);
}

// Pair j's angle per position: 1 / theta^(2j / d), then Llama 3.1's scaling
// as Meta's reference writes it (wavelength bands, a blend between them).
double rotary_frequency(const ReferenceWeights& w, size_t j, size_t hd) {
  const double freq = 1.0 / std::pow(w.theta, static_cast<double>(2 * j) / hd);
  if (w.scale_factor == 0) return freq;
  const double wavelen = 2 * std::numbers::pi / freq;
  if (wavelen < w.original_context / w.high_freq_factor) return freq;
  if (wavelen > w.original_context / w.low_freq_factor) return freq / w.scale_factor;
  const double smooth = (w.original_context / wavelen - w.low_freq_factor) / (w.high_freq_factor - w.low_freq_factor);
  return (1 - smooth) * freq / w.scale_factor + smooth * freq;
}

// Rotates every head of `vec` (heads * hd values) for position `pos`.
void rope(std::vector<double>& vec, size_t heads, size_t hd, int pos, const ReferenceWeights& w) {
  for (size_t h = 0; h < heads; ++h) {
    for (size_t j = 0; j < hd / 2; ++j) {
      const double angle = pos * rotary_frequency(w, j, hd);
      const double c = std::cos(angle), s = std::sin(angle);
      const size_t i0 = h * hd + (w.rotate_half ? j : 2 * j), i1 = i0 + (w.rotate_half ? hd / 2 : 1);
      const double a = vec[i0], b = vec[i1];
      vec[i0] = a * c - b * s;
      vec[i1] = a * s + b * c;
    }
  }
}

// out[r] = sum_i w[r * n + i] * x[i]
void matvec(std::vector<double>& out, const std::vector<double>& x, const double* w, size_t rows) {
  const size_t n = x.size();
  out.assign(rows, 0.0);
  for (size_t r = 0; r < rows; ++r) {
    double s = 0;
    for (size_t i = 0; i < n; ++i) s += w[r * n + i] * x[i];
    out[r] = s;
  }
}

}  // namespace

ReferenceWeights parse_llama2c_reference(const std::string& bytes) {
  if (bytes.size() < 28) throw std::runtime_error("short checkpoint");
  int32_t h[7];
  std::memcpy(h, bytes.data(), 28);
  ReferenceWeights w;
  w.dim = h[0], w.hidden = h[1], w.layers = h[2], w.heads = h[3], w.kv_heads = h[4];
  w.vocab = std::abs(h[5]), w.seq = h[6];
  const size_t d = w.dim, hd = d / w.heads, kv = w.kv_heads * hd, L = w.layers, hid = w.hidden;
  const float* p = reinterpret_cast<const float*>(bytes.data() + 28);
  w.emb = take(p, w.vocab * d);
  w.rms_att = take(p, L * d);
  w.wq = take(p, L * d * d);
  w.wk = take(p, L * d * kv);
  w.wv = take(p, L * d * kv);
  w.wo = take(p, L * d * d);
  w.rms_ffn = take(p, L * d);
  w.w1 = take(p, L * d * hid);
  w.w2 = take(p, L * hid * d);
  w.w3 = take(p, L * d * hid);
  w.rms_final = take(p, d);
  p += w.seq * hd;  // legacy RoPE tables
  w.wcls = h[5] > 0 ? w.emb : take(p, w.vocab * d);
  if (reinterpret_cast<const char*>(p) != bytes.data() + bytes.size())
    throw std::runtime_error("checkpoint size does not match its header");
  return w;
}

ReferenceWeights reference_from(const LlamaWeights& lw) {
  const LlamaConfig& c = lw.config;
  ReferenceWeights w;
  w.dim = c.dim, w.hidden = c.hidden_dim, w.layers = c.n_layers, w.heads = c.n_heads;
  w.kv_heads = c.n_kv_heads, w.vocab = c.vocab_size, w.seq = c.max_seq_len;
  w.emb = copy(lw.embedding);
  for (const auto& l : lw.layers) {
    auto append = [](std::vector<double>& dst, const Tensor& t) {
      auto v = copy(t);
      dst.insert(dst.end(), v.begin(), v.end());
    };
    append(w.rms_att, l.attn_norm);
    append(w.wq, l.wq);
    append(w.wk, l.wk);
    append(w.wv, l.wv);
    append(w.wo, l.wo);
    append(w.rms_ffn, l.ffn_norm);
    append(w.w1, l.w_gate);
    append(w.w2, l.w_down);
    append(w.w3, l.w_up);
  }
  w.rms_final = copy(lw.final_norm);
  w.wcls = copy(lw.classifier);
  w.head_dim = static_cast<int>(c.head_dim());
  w.theta = c.rope_theta;
  w.eps = c.norm_eps;
  w.scale_factor = c.rope_scaling.factor;
  w.low_freq_factor = c.rope_scaling.low_freq_factor;
  w.high_freq_factor = c.rope_scaling.high_freq_factor;
  w.original_context = static_cast<double>(c.rope_scaling.original_context);
  for (const auto& l : lw.layers) {
    auto append_if = [](std::vector<double>& dst, const Tensor& t) {
      if (t.data == nullptr) return;
      auto v = copy(t);
      dst.insert(dst.end(), v.begin(), v.end());
    };
    append_if(w.bq, l.bq);
    append_if(w.bk, l.bk);
    append_if(w.bv, l.bv);
    append_if(w.q_norm, l.q_norm);
    append_if(w.k_norm, l.k_norm);
  }
  return w;
}

ReferenceLlama::ReferenceLlama(const ReferenceWeights& w)
    : w_(w),
      k_cache_(static_cast<size_t>(w.layers) * w.seq * (w.kv_heads * (w.head_dim ? w.head_dim : w.dim / w.heads))),
      v_cache_(k_cache_.size()) {}

std::vector<double> ReferenceLlama::forward(int token, int pos) {
  const size_t d = w_.dim, hd = w_.head_dim ? w_.head_dim : d / w_.heads, kv = w_.kv_heads * hd, hid = w_.hidden;
  const size_t qd = w_.heads * hd, group = w_.heads / w_.kv_heads;
  std::vector<double> x(w_.emb.begin() + token * d, w_.emb.begin() + (token + 1) * d);
  std::vector<double> xb(d), q, k, v, att(qd), o, h1, h3;
  for (int l = 0; l < w_.layers; ++l) {
    rmsnorm(xb, x, &w_.rms_att[l * d], w_.eps);
    matvec(q, xb, &w_.wq[l * qd * d], qd);
    matvec(k, xb, &w_.wk[l * d * kv], kv);
    matvec(v, xb, &w_.wv[l * d * kv], kv);
    if (!w_.bq.empty()) {
      for (size_t i = 0; i < qd; ++i) q[i] += w_.bq[l * qd + i];
      for (size_t i = 0; i < kv; ++i) k[i] += w_.bk[l * kv + i], v[i] += w_.bv[l * kv + i];
    }
    if (!w_.q_norm.empty()) {
      for (size_t h = 0; h < static_cast<size_t>(w_.heads); ++h)
        rmsnorm(&q[h * hd], &q[h * hd], hd, &w_.q_norm[l * hd], w_.eps);
      for (size_t h = 0; h < static_cast<size_t>(w_.kv_heads); ++h)
        rmsnorm(&k[h * hd], &k[h * hd], hd, &w_.k_norm[l * hd], w_.eps);
    }
    rope(q, w_.heads, hd, pos, w_);
    rope(k, w_.kv_heads, hd, pos, w_);
    double* kc = &k_cache_[(l * static_cast<size_t>(w_.seq) + pos) * kv];
    double* vc = &v_cache_[(l * static_cast<size_t>(w_.seq) + pos) * kv];
    std::copy(k.begin(), k.end(), kc);
    std::copy(v.begin(), v.end(), vc);
    for (size_t h = 0; h < static_cast<size_t>(w_.heads); ++h) {
      const size_t kvh = h / group;
      std::vector<double> scores(pos + 1);
      double max_score = -1e300;
      for (int t = 0; t <= pos; ++t) {
        const double* kt = &k_cache_[(l * static_cast<size_t>(w_.seq) + t) * kv + kvh * hd];
        double s = 0;
        for (size_t i = 0; i < hd; ++i) s += q[h * hd + i] * kt[i];
        scores[t] = s / std::sqrt(static_cast<double>(hd));
        max_score = std::max(max_score, scores[t]);
      }
      double sum = 0;
      for (double& s : scores) sum += (s = std::exp(s - max_score));
      for (size_t i = 0; i < hd; ++i) att[h * hd + i] = 0;
      for (int t = 0; t <= pos; ++t) {
        const double* vt = &v_cache_[(l * static_cast<size_t>(w_.seq) + t) * kv + kvh * hd];
        for (size_t i = 0; i < hd; ++i) att[h * hd + i] += scores[t] / sum * vt[i];
      }
    }
    matvec(o, att, &w_.wo[l * d * qd], d);
    for (size_t i = 0; i < d; ++i) x[i] += o[i];
    rmsnorm(xb, x, &w_.rms_ffn[l * d], w_.eps);
    matvec(h1, xb, &w_.w1[l * d * hid], hid);
    matvec(h3, xb, &w_.w3[l * d * hid], hid);
    for (size_t i = 0; i < hid; ++i) h1[i] = h1[i] / (1.0 + std::exp(-h1[i])) * h3[i];
    matvec(o, h1, &w_.w2[l * hid * d], d);
    for (size_t i = 0; i < d; ++i) x[i] += o[i];
  }
  rmsnorm(xb, x, w_.rms_final.data(), w_.eps);
  std::vector<double> logits;
  matvec(logits, xb, w_.wcls.data(), w_.vocab);
  return logits;
}

}  // namespace tandem::testing
