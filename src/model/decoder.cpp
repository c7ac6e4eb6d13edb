// Streaming model passes: embedding lookup by row reads, block-by-block forward, and the output
// projection in vocabulary chunks (so neither the lm_head in f32 nor a (T, V) logits matrix is resident).
#include "model/decoder.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <omp.h>
#include <limits>
#include <optional>

#include "core/buffer.h"
#include "core/error.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "kernels/linear.h"
#include "kernels/rms_norm.h"
#include "model/block.h"
#include "model/gguf_config.h"
#include "model/gguf_weights.h"
#include "model/weights.h"

namespace ar {

namespace {
// Rows of lm_head converted to f32 at once: 4096 x 2560 x 4 B = 40 MB for Qwen3-4B.
constexpr int64_t kVocabChunk = 4096;
// Per-thread block scratch allowed when running sequences in parallel.
constexpr size_t kAcrossSeqScratchLimit = 64ull << 20;
}  // namespace

Decoder::Decoder(const std::filesystem::path& path) {
  if (std::optional<std::filesystem::path> g = find_gguf_model(path)) {
    gguf_file_ = *g;
    dir_ = g->parent_path();
    auto r = std::make_unique<GgufReader>(GgufReader::open(*g));
    config_ = gguf_model_config(*r);
    weights_ = make_gguf_source(std::move(r), config_);
    return;
  }
  dir_ = path;
  config_ = load_model_config(path);
  reader_ = std::make_unique<SafetensorsReader>(SafetensorsReader::open(path));
  // Fails early, before any work, if the files do not match the config.
  weights_ = make_safetensors_source(*reader_, config_);
}

const SafetensorsReader& Decoder::reader() const {
  if (!reader_) AR_THROW(gguf_file_.string(), ": a GGUF model has no safetensors files (this step needs a HF model folder)");
  return *reader_;
}

Decoder::~Decoder() = default;
Decoder::Decoder(Decoder&&) noexcept = default;
Decoder& Decoder::operator=(Decoder&&) noexcept = default;

void Decoder::embed(float* x, std::span<const int32_t> ids) const {
  const int64_t C = config_.hidden_size;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= config_.vocab_size)
      AR_THROW("token id ", ids[i], " at position ", i, " is outside the model's vocabulary (",
               config_.vocab_size, ")");
    weights_->embedding_rows(ids[i], 1, x + int64_t(i) * C);
  }
  if (config_.embed_scale != 1.0) {  // Gemma: embeddings times sqrt(hidden_size), in f32
    const float s = float(config_.embed_scale);
    for (size_t i = 0; i < ids.size() * size_t(C); ++i) x[i] *= s;
  }
}

void Decoder::forward_hidden(float* x, int64_t n_seq, int64_t T, const ForwardOptions& opt) const {
  const ModelConfig& c = config_;
  const int64_t C = c.hidden_size;
  RopeTables rope = make_rope_tables(c, T);
  // Small per-sample work (tiny models, short windows) is parallelised across sequences, each
  // thread running single-threaded kernels: many short multi-threaded GEMMs spend their time in
  // thread synchronisation, which collapses when the cores are shared. Large work parallelises
  // inside the kernels instead, keeping one scratch.
  const int threads = omp_get_max_threads();
  const bool across = threads > 1 && n_seq > 1 && BlockScratch::size_bytes(c, T) <= kAcrossSeqScratchLimit;
  std::vector<BlockScratch> scratch;
  for (int t = 0; t < (across ? threads : 1); ++t) scratch.emplace_back(c, T);
  for (int64_t layer = 0; layer < c.num_hidden_layers; ++layer) {
    {
      BlockWeights w = weights_->load_block(layer);
      if (opt.transform_block) opt.transform_block(w);
      if (across) {
        std::exception_ptr err;
#pragma omp parallel for schedule(dynamic, 1)
        for (int64_t s = 0; s < n_seq; ++s) {
          try {
            block_forward(x + s * T * C, w, c, rope, scratch[size_t(omp_get_thread_num())], opt.precision);
          } catch (...) {
#pragma omp critical
            err = std::current_exception();
          }
        }
        if (err) std::rethrow_exception(err);
      } else {
        for (int64_t s = 0; s < n_seq; ++s) block_forward(x + s * T * C, w, c, rope, scratch[0], opt.precision);
      }
    }  // block weights freed here
    weights_->release_block(layer);
    if (opt.on_block) opt.on_block(layer, c.num_hidden_layers);
  }
  Buffer norm(size_t(C) * sizeof(float), "final norm");
  weights_->final_norm(norm.as<float>());
  if (c.norm_weight_offset)
    for (int64_t i = 0; i < C; ++i) norm.as<float>()[i] += 1.0f;
  rms_norm_forward(x, nullptr, x, norm.as<float>(), n_seq * T, C, float(c.rms_norm_eps));
}

namespace {
// cap·tanh(logit/cap) on n logits (final_logit_softcapping); nothing when cap is 0.
void softcap_logits(float* l, int64_t n, double cap) {
  if (cap <= 0) return;
  const float cf = float(cap);
  for (int64_t i = 0; i < n; ++i) l[i] = cf * std::tanh(l[i] / cf);
}
}  // namespace

void Decoder::logits(float* out, const float* h, int64_t n, Precision p) const {
  const int64_t C = config_.hidden_size, V = config_.vocab_size;
  Buffer w(size_t(std::min(kVocabChunk, V) * C) * sizeof(float), "lm_head chunk");
  Buffer tmp(size_t(n * std::min(kVocabChunk, V)) * sizeof(float), "logits chunk");
  for (int64_t v0 = 0; v0 < V; v0 += kVocabChunk) {
    const int64_t nv = std::min(kVocabChunk, V - v0);
    weights_->lm_head_rows(v0, nv, w.as<float>());
    linear_forward(tmp.as<float>(), h, w.as<float>(), nullptr, n, C, nv, p);
    softcap_logits(tmp.as<float>(), n * nv, config_.final_logit_softcapping);
    for (int64_t i = 0; i < n; ++i)
      std::copy_n(tmp.as<float>() + i * nv, nv, out + i * V + v0);
  }
}

void Decoder::next_token_nll(double* nll, const float* h, const int32_t* target, int64_t n, Precision p) const {
  const int64_t C = config_.hidden_size, V = config_.vocab_size;
  const int64_t chunk = std::min(kVocabChunk, V);
  Buffer w(size_t(chunk * C) * sizeof(float), "lm_head chunk");
  // Rows of h are processed in slices so the logits slice stays small for long inputs.
  const int64_t row_slice = 1024;
  Buffer lg(size_t(std::min(row_slice, n) * chunk) * sizeof(float), "logits chunk");
  std::vector<float> run_max(size_t(n), -std::numeric_limits<float>::infinity());
  std::vector<double> run_sum(size_t(n), 0.0);
  std::vector<float> tgt_logit(size_t(n), 0.0f);
  for (int64_t i = 0; i < n; ++i)
    if (target[i] < 0 || target[i] >= V) AR_THROW("target token id ", target[i], " outside vocabulary ", V);
  for (int64_t v0 = 0; v0 < V; v0 += chunk) {
    const int64_t nv = std::min(chunk, V - v0);
    weights_->lm_head_rows(v0, nv, w.as<float>());
    for (int64_t r0 = 0; r0 < n; r0 += row_slice) {
      const int64_t nr = std::min(row_slice, n - r0);
      linear_forward(lg.as<float>(), h + r0 * C, w.as<float>(), nullptr, nr, C, nv, p);
      softcap_logits(lg.as<float>(), nr * nv, config_.final_logit_softcapping);
#pragma omp parallel for schedule(static)
      for (int64_t i = 0; i < nr; ++i) {
        const float* l = lg.as<float>() + i * nv;
        const int64_t row = r0 + i;
        float m = *std::max_element(l, l + nv);
        // Online log-sum-exp: rescale the running sum when the maximum grows.
        if (m > run_max[row]) {
          run_sum[row] *= std::exp(double(run_max[row]) - double(m));
          run_max[row] = m;
        }
        const float mr = run_max[row];
        float s = 0;  // terms are <= 1, so a float sum over one chunk loses nothing that matters
        for (int64_t j = 0; j < nv; ++j) s += std::exp(l[j] - mr);
        run_sum[row] += double(s);
        int64_t t = target[row];
        if (t >= v0 && t < v0 + nv) tgt_logit[row] = l[t - v0];
      }
    }
  }
  for (int64_t i = 0; i < n; ++i) nll[i] = double(run_max[i]) + std::log(run_sum[i]) - double(tgt_logit[i]);
}

std::vector<int32_t> greedy_generate(const Decoder& d, std::vector<int32_t> ids, int64_t n_new, Precision p) {
  const int64_t C = d.config().hidden_size, V = d.config().vocab_size;
  for (int64_t step = 0; step < n_new; ++step) {
    const int64_t T = int64_t(ids.size());
    std::vector<float> x(size_t(T * C));
    d.embed(x.data(), ids);
    d.forward_hidden(x.data(), 1, T, ForwardOptions{p, {}, {}});
    std::vector<float> lg(static_cast<size_t>(V));
    d.logits(lg.data(), x.data() + (T - 1) * C, 1, p);
    ids.push_back(int32_t(std::max_element(lg.begin(), lg.end()) - lg.begin()));
  }
  return ids;
}

}  // namespace ar
