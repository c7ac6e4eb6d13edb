// Streaming perplexity evaluation: embed a group of windows, push the group through every block
// (one block resident at a time), then score next-token NLL against lm_head in vocab chunks.
#include "pipeline/eval.h"

#include <algorithm>
#include <cmath>

#include "core/buffer.h"
#include "core/error.h"
#include "core/interrupt.h"
#include "core/memory.h"
#include "core/timer.h"
#include "model/decoder.h"

namespace ar {

double forward_flops(const Decoder& d, int64_t n_seq, int64_t T) {
  const ModelConfig& c = d.config();
  const double C = double(c.hidden_size), F = double(c.intermediate_size), D = double(c.head_dim);
  const double H = double(c.num_attention_heads), Hkv = double(c.num_key_value_heads);
  const double per_token_linear = 2.0 * (C * H * D + 2 * C * Hkv * D + H * D * C + 3 * C * F);
  const double attn_per_seq = 2.0 * 2.0 * H * D * double(T) * double(T + 1) / 2.0;
  const double head = 2.0 * C * double(c.vocab_size);
  return double(n_seq) * (double(c.num_hidden_layers) * (per_token_linear * double(T) + attn_per_seq) +
                          head * double(T));
}

EvalResult evaluate_perplexity(const Decoder& d, const std::vector<std::vector<int32_t>>& windows,
                               const EvalOptions& opt) {
  EvalResult r;
  if (windows.empty()) AR_THROW("no complete evaluation window: the text is shorter than seqlen");
  const int64_t T = int64_t(windows[0].size());
  for (const auto& w : windows) AR_CHECK(int64_t(w.size()) == T, "windows of different lengths");
  const int64_t C = d.config().hidden_size;
  const int64_t n_win = int64_t(windows.size());
  const int64_t group = std::clamp<int64_t>(int64_t(opt.activation_budget_bytes / (uint64_t(T * C) * 4)), 1, n_win);
  Buffer x(size_t(group * T * C) * sizeof(float), "eval hidden states");
  std::vector<int32_t> targets(size_t(group * T));
  std::vector<double> nll(size_t(group * T));
  const int64_t V = d.config().vocab_size;
  Buffer logits(opt.on_logits ? size_t(T * V) * sizeof(float) : 0, "eval logits");
  Timer timer;
  for (int64_t g0 = 0; g0 < n_win; g0 += group) {
    // A host that asked to stop (the Python binding on Ctrl-C) is answered between groups; the CLI
    // installs no handler here, so for it nothing changes.
    throw_if_interrupted("during evaluation");
    const int64_t ng = std::min(group, n_win - g0);
    for (int64_t s = 0; s < ng; ++s) d.embed(x.as<float>() + s * T * C, windows[size_t(g0 + s)]);
    ForwardOptions fo;
    fo.precision = opt.precision;
    fo.transform_block = opt.transform_block;
    d.forward_hidden(x.as<float>(), ng, T, fo);
    // Position t predicts token t+1; the last position of each window predicts nothing (its target
    // is a placeholder and its NLL is skipped) -- cheaper in memory than compacting the hidden states.
    for (int64_t s = 0; s < ng; ++s) {
      const auto& w = windows[size_t(g0 + s)];
      std::copy(w.begin() + 1, w.end(), targets.begin() + s * T);
      targets[size_t(s * T + T - 1)] = 0;
    }
    d.next_token_nll(nll.data(), x.as<float>(), targets.data(), ng * T, opt.precision);
    if (opt.on_logits)
      for (int64_t s = 0; s < ng; ++s) {
        d.logits(logits.as<float>(), x.as<float>() + s * T * C, T, opt.precision);
        opt.on_logits(g0 + s, logits.as<float>(), T, V);
      }
    for (int64_t s = 0; s < ng; ++s)
      for (int64_t t = 0; t + 1 < T; ++t) r.nll_sum += nll[size_t(s * T + t)];
    r.tokens_scored += ng * (T - 1);
    r.windows += ng;
    if (opt.progress) {
      double el = timer.seconds();
      double eta = el / double(r.windows) * double(n_win - r.windows);
      opt.progress(cat("eval: windows ", r.windows, "/", n_win, "  ppl so far ",
                       std::exp(r.nll_sum / double(r.tokens_scored)), "  elapsed ", int(el), " s  ETA ",
                       int(eta), " s  RSS ", format_bytes(read_mem_stats().rss_bytes)));
    }
  }
  r.seconds = timer.seconds();
  r.tokens_total = n_win * T;
  r.perplexity = std::exp(r.nll_sum / double(r.tokens_scored));
  r.flops = forward_flops(d, n_win, T);
  return r;
}

}  // namespace ar
