// The streaming quantize loop: for each block, load (pread) -> [importance from calibration
// activations] -> RTN / optimized RTN per linear -> append to every output writer -> release.
// Non-block tensors (embedding, final norm, lm_head) are copied in 16-bit at the end, following the
// writers' tensor order so their shards can be streamed.
#include "pipeline/quantize.h"

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "calib/calib_set.h"
#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "core/buffer.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/timer.h"
#include "export/output_format.h"
#include "export/quantized_writer.h"
#include "io/safetensors.h"
#include "model/block.h"
#include "model/decoder.h"
#include "model/weights.h"
#include "pipeline/eval.h"
#include "pipeline/signround.h"
#include "quant/layer_config.h"
#include "quant/opt_rtn.h"
#include "quant/rtn.h"

namespace ar {

namespace {

constexpr const char* kLinearSuffix[kBlockLinears] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

LayerConfig make_layer_config(const QuantizeOptions& opt) {
  if (opt.layer_config.empty()) return LayerConfig(opt.scheme);
  std::error_code ec;
  if (opt.layer_config.find('{') == std::string::npos && std::filesystem::exists(opt.layer_config, ec))
    return LayerConfig::load(opt.layer_config, opt.scheme);
  return LayerConfig::parse(opt.layer_config, opt.scheme, "--layer_config");
}

uint64_t folder_bytes(const std::filesystem::path& dir) {
  uint64_t n = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir))
    if (e.is_regular_file()) n += e.file_size();
  return n;
}

std::string fmt_seconds(double s) {
  char buf[32];
  if (s < 120) std::snprintf(buf, sizeof buf, "%.1f s", s);
  else std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  return buf;
}

// Per-input-channel mean squared activation of each linear of one block, accumulated over the
// calibration samples while they are pushed through the block (in place: x becomes the block output).
std::vector<std::vector<float>> block_importance(float* x, int64_t n_samples, int64_t T, const BlockWeights& w,
                                                 const ModelConfig& c, const RopeTables& rope, BlockScratch& scratch,
                                                 Precision p) {
  std::vector<std::vector<double>> sum(kBlockLinears);
  for (int i = 0; i < kBlockLinears; ++i) sum[size_t(i)].assign(size_t(block_linears(w, i)->in), 0.0);
  auto observe = [&](int li, const float* in, int64_t rows, int64_t K) {
    auto& s = sum[size_t(li)];
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t k = 0; k < K; ++k) s[size_t(k)] += double(in[r * K + k]) * in[r * K + k];
  };
  for (int64_t s = 0; s < n_samples; ++s) block_forward(x + s * T * c.hidden_size, w, c, rope, scratch, p, observe);
  std::vector<std::vector<float>> imp(kBlockLinears);
  const double tokens = double(n_samples * T);
  for (int i = 0; i < kBlockLinears; ++i) {
    imp[size_t(i)].resize(sum[size_t(i)].size());
    for (size_t k = 0; k < imp[size_t(i)].size(); ++k) imp[size_t(i)][k] = float(sum[size_t(i)][k] / tokens);
  }
  return imp;
}

}  // namespace

QuantizeReport run_quantize(const QuantizeOptions& opt) {
  Timer total;
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  const SignRoundOptions& so = opt.tune;
  const bool tune = so.iters > 0;
  if (so.iters < 0) AR_THROW("--iters ", so.iters, " must be >= 0");
  if (tune && opt.dataset.empty())
    AR_THROW("SignRound tuning (--iters ", so.iters, ") needs calibration data: pass --dataset FILE (text, "
             ".jsonl or token ids; 'builtin' for the built-in demo text), or --iters 0 for RTN");
  if (tune && (so.batch_size <= 0 || so.gradient_accumulate_steps <= 0))
    AR_THROW("--batch_size and --gradient_accumulate_steps must be positive");
  if (opt.formats.empty()) AR_THROW("--format: no output format given");

  Decoder d(opt.model_dir);
  const ModelConfig& cfg = d.config();
  const SafetensorsReader& src = d.reader();
  if (!cfg.quantization_config.empty())
    AR_THROW(opt.model_dir.string(), ": the model is already quantized (config.json has quantization_config)");
  LayerConfig layers = make_layer_config(opt);

  std::vector<std::string> linear_names;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l)
    for (const char* suf : kLinearSuffix) linear_names.push_back(block_prefix(l) + suf);
  for (const auto& key : layers.unmatched_rules(linear_names))
    log("warning: --layer_config rule '" + key + "' matches no layer");

  // Tuning settings that differ from the Python tool's defaults go into quantization_config.
  nlohmann::json extra = nlohmann::json::object();
  if (so.iters != 200) extra["iters"] = so.iters;
  if (!tune && opt.disable_opt_rtn) extra["disable_opt_rtn"] = true;
  if (!opt.dataset.empty()) {
    if (opt.nsamples != 128) extra["nsamples"] = opt.nsamples;
    if (opt.seqlen != 2048) extra["seqlen"] = opt.seqlen;
  }
  if (tune) {
    if (so.batch_size != 8) extra["batch_size"] = so.batch_size;
    if (so.gradient_accumulate_steps != 1) extra["gradient_accumulate_steps"] = so.gradient_accumulate_steps;
    if (so.lr != 0) extra["lr"] = so.lr;
    if (so.minmax_lr != 0) extra["minmax_lr"] = so.minmax_lr;
    if (!so.enable_minmax_tuning) extra["enable_minmax_tuning"] = false;
    if (!opt.enable_quanted_input) extra["enable_quanted_input"] = false;
    if (so.seed != 42) extra["seed"] = so.seed;
  }

  // Every writer plans its whole output (and checks the destination) before any work.
  std::vector<std::unique_ptr<QuantizedModelWriter>> writers;
  QuantizeReport rep;
  for (const std::string& f : opt.formats) {
    OutputFormat fmt = parse_output_format(f);
    std::filesystem::path out = opt.formats.size() == 1 ? opt.output_dir : opt.output_dir / output_format_name(fmt);
    writers.push_back(std::make_unique<QuantizedModelWriter>(
        fmt, opt.model_dir, out, src, cfg, [&](const std::string& n) { return layers.scheme_for(n); },
        opt.max_shard_bytes, opt.overwrite, extra));
    rep.outputs.push_back(out);
    for (const auto& [name, why] : writers.back()->unstorable_layers())
      rep.kept_16bit.push_back(output_format_name(fmt) + ": " + name + " (" + why + ")");
  }
  if (!rep.kept_16bit.empty()) {
    std::string msg = cat("warning: ", rep.kept_16bit.size(), " layer(s) cannot be stored by the packed format and stay in 16-bit:");
    for (const auto& k : rep.kept_16bit) msg += "\n  " + k;
    log(msg);
  }

  // Calibration activations: importance for optimized RTN, or the inputs/targets of SignRound.
  const bool use_imp = !tune && !opt.dataset.empty() && !opt.disable_opt_rtn;
  std::optional<Buffer> calib_x;
  int64_t n_calib = 0;
  if (!tune && !opt.dataset.empty() && opt.disable_opt_rtn)
    log("note: --dataset is not used by plain RTN (--disable_opt_rtn)");
  if (use_imp || tune) {
    Tokenizer tok = Tokenizer::load(opt.model_dir);
    CalibSet cs = build_calib_set(opt.dataset, &tok, {opt.nsamples, opt.seqlen, so.seed});
    log("calibration: " + cs.note);
    n_calib = int64_t(cs.samples.size());
    const int64_t C = cfg.hidden_size;
    calib_x.emplace(size_t(n_calib * opt.seqlen * C) * sizeof(float), "calibration activations");
    for (int64_t s = 0; s < n_calib; ++s) d.embed(calib_x->as<float>() + s * opt.seqlen * C, cs.samples[size_t(s)]);
  }
  // SignRound keeps three activation sets in RAM (issue 4 moves them to disk): X (fp inputs, becomes
  // the targets in place), Xq (quantized-path inputs) and the targets' copy the tuner reads.
  const size_t act_floats = size_t(n_calib * opt.seqlen * cfg.hidden_size);
  std::optional<Buffer> calib_xq, calib_t;
  if (tune) {
    calib_t.emplace(act_floats * sizeof(float), "SignRound targets");
    if (opt.enable_quanted_input) {
      calib_xq.emplace(act_floats * sizeof(float), "quantized-path inputs");
      std::copy_n(calib_x->as<float>(), act_floats, calib_xq->as<float>());
    }
  }

  // Rotary tables and one sample's activations for the calibration passes: same shapes for every block.
  std::optional<RopeTables> rope;
  std::optional<BlockScratch> scratch;
  if (use_imp || tune) {
    rope.emplace(make_rope_tables(cfg, opt.seqlen));
    scratch.emplace(cfg, opt.seqlen);
  }

  // Source tensors in the writers' order, grouped per block.
  std::vector<std::string> order = output_tensor_order(src);
  std::map<int64_t, std::vector<std::string>> by_block;
  std::vector<std::string> outside;
  for (const auto& n : order) {
    int64_t b = tensor_block_index(n);
    (b >= 0 ? by_block[b] : outside).push_back(n);
  }

  double q_bits = 0, q_weights = 0;
  Timer blocks_timer;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    Timer bt;
    {
      BlockWeights w = load_block(src, cfg, l);
      std::map<std::string, QuantizedWeight> done;
      std::array<QuantScheme, kBlockLinears> schemes;
      for (int i = 0; i < kBlockLinears; ++i) schemes[size_t(i)] = layers.scheme_for(block_linears(w, i)->name);
      if (tune) {
        // Targets T = block_fp(X), then X <- T for the next block (SPEC §2 steps 1 and 5).
        float* x = calib_x->as<float>();
        float* t = calib_t->as<float>();
        std::copy_n(x, act_floats, t);
        for (int64_t s = 0; s < n_calib; ++s)
          block_forward(t + s * opt.seqlen * cfg.hidden_size, w, cfg, *rope, *scratch, so.precision);
        const float* xin = opt.enable_quanted_input ? calib_xq->as<float>() : x;
        BlockTuneResult tr = tune_block(w, cfg, schemes, xin, t, n_calib, opt.seqlen, so);
        for (int i = 0; i < kBlockLinears; ++i) {
          if (tr.q[size_t(i)].out == 0) continue;
          LinearWeights& lw = *block_linears(w, i);
          // The quantized path continues with the dequantized weights (step 5: Xq <- block_q(Xq)).
          tr.q[size_t(i)].dequantize(lw.w.as<float>());
          done.emplace(lw.name, std::move(tr.q[size_t(i)]));
        }
        if (opt.enable_quanted_input) {
          float* xq = calib_xq->as<float>();
          for (int64_t s = 0; s < n_calib; ++s)
            block_forward(xq + s * opt.seqlen * cfg.hidden_size, w, cfg, *rope, *scratch, so.precision);
        }
        std::copy_n(t, act_floats, x);
      } else {
        std::vector<std::vector<float>> imp;
        if (use_imp) imp = block_importance(calib_x->as<float>(), n_calib, opt.seqlen, w, cfg, *rope, *scratch, opt.precision);
        for (int i = 0; i < kBlockLinears; ++i) {
          const LinearWeights& lw = *block_linears(w, i);
          const QuantScheme& s = schemes[size_t(i)];
          if (!s.quantized()) continue;
          const float* im = use_imp ? imp[size_t(i)].data() : nullptr;
          done.emplace(lw.name, opt.disable_opt_rtn ? quantize_rtn(lw.w.as<float>(), lw.out, lw.in, s)
                                                    : quantize_opt_rtn(lw.w.as<float>(), lw.out, lw.in, s, im));
        }
      }
      for (const auto& [name, q] : done) {
        q_bits += double(q.out) * double(q.in) * q.scheme.bits + double(q.n_groups) * double(q.out) * (16 + q.scheme.bits);
        q_weights += double(q.out) * double(q.in);
        ++rep.quantized_layers;
      }
      for (auto& wr : writers)
        for (const std::string& t : by_block[l]) {
          const std::string base = t.size() > 7 && t.ends_with(".weight") ? t.substr(0, t.size() - 7) : "";
          auto it = done.find(base);
          if (it != done.end() && wr->stores_quantized(base)) wr->add_quantized(base, it->second);
          else wr->add_copy(t);
        }
    }  // block weights and quantized results freed here
    release_block_pages(src, l);
    const double el = blocks_timer.seconds();
    const double eta = el / double(l + 1) * double(cfg.num_hidden_layers - l - 1);
    MemStats m = read_mem_stats();
    log(cat("[", l + 1, "/", cfg.num_hidden_layers, "] block ", l, ": ", fmt_seconds(bt.seconds()), "  elapsed ",
            fmt_seconds(el), "  ETA ", fmt_seconds(eta), "  RSS ", format_bytes(m.rss_bytes), " (peak ",
            format_bytes(m.peak_bytes), ")"));
  }
  scratch.reset();
  calib_x.reset();
  calib_xq.reset();
  calib_t.reset();
  for (auto& wr : writers)
    for (const std::string& t : outside) wr->add_copy(t);
  for (auto& wr : writers) wr->finish();
  writers.clear();
  for (const auto& o : rep.outputs) rep.output_bytes.push_back(folder_bytes(o));
  rep.bits_per_weight = q_weights > 0 ? q_bits / q_weights : 0;

  if (!opt.eval_dataset.empty()) {
    Tokenizer tok = Tokenizer::load(opt.model_dir);
    auto windows = cut_windows(load_eval_tokens(opt.eval_dataset, &tok), opt.eval_seqlen);
    if (windows.empty()) AR_THROW(opt.eval_dataset, ": shorter than one --eval_seqlen window");
    EvalOptions eo;
    eo.precision = opt.precision;
    log(cat("eval: original model, ", windows.size(), " windows of ", opt.eval_seqlen));
    rep.ppl_original = evaluate_perplexity(d, windows, eo).perplexity;
    log(cat("eval: quantized model read back from ", rep.outputs[0].string()));
    rep.ppl_quantized = evaluate_perplexity(Decoder(rep.outputs[0]), windows, eo).perplexity;
  }
  rep.seconds = total.seconds();
  rep.peak_rss_bytes = read_mem_stats().peak_bytes;
  return rep;
}

}  // namespace ar
