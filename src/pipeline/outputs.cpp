#include "pipeline/outputs.h"

#include "core/error.h"
#include "core/log.h"
#include "export/gguf_mix.h"
#include "export/output_format.h"
#include "export/quantized_writer.h"
#include "io/safetensors.h"
#include "pipeline/quantize.h"

namespace ar {

namespace {

// Tuning settings that differ from the Python tool's defaults go into quantization_config.
nlohmann::json tuning_extra(const QuantizeOptions& opt) {
  const SignRoundOptions& so = opt.tune;
  const bool tune = so.iters > 0;
  nlohmann::json extra = nlohmann::json::object();
  if (so.iters != 200) extra["iters"] = so.iters;
  if (!tune && opt.disable_opt_rtn) extra["disable_opt_rtn"] = true;
  if (opt.has_dataset()) {
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
  return extra;
}

}  // namespace

OutputSet::OutputSet(const QuantizeOptions& opt, const SafetensorsReader& src, const ModelConfig& cfg,
                     const LayerConfig& layers, const std::vector<std::string>& linear_names,
                     bool calibrated, bool has_importance, const std::function<void(const std::string&)>& log) {
  // In a GGUF file a layer's "bits" rule picks its block type (16 keeps it in F16); group size
  // and symmetry are fixed by the type, so those fields of a rule cannot apply there.
  std::map<std::string, GgmlType> gguf_requested;
  std::vector<std::string> gguf_unused_fields;
  for (const std::string& name : linear_names) {
    const LayerConfig::RuleFields f = layers.rule_fields(name);
    if (f.bits) gguf_requested[name + ".weight"] = gguf_type_for_bits(*f.bits);
    if (f.group_size || f.sym) gguf_unused_fields.push_back(name);
  }
  const nlohmann::json extra = tuning_extra(opt);
  bool any_gguf = false;
  for (const std::string& f : opt.formats) {
    if (std::optional<GgufMix> mix = parse_gguf_format(f)) {
      // Q2_K_S leaves most 2-bit weights without promotion; llama-quantize refuses it without an
      // importance matrix, and so do we without calibration (importance or tuning).
      if (*mix == GgufMix::Q2_K_S && !calibrated)
        AR_THROW("--format ", f, ": q2_k_s needs calibration data (as llama-quantize needs an importance matrix for "
                 "it): pass --dataset FILE ('builtin' for the demo text) for importance-weighted RTN, or --iters N to "
                 "tune; without data use q2_k");
      const std::filesystem::path out = opt.formats.size() == 1
                                            ? opt.output_dir
                                            : opt.output_dir / ("gguf-" + std::string(gguf_mix_info(*mix).name));
      writers_.push_back(std::make_unique<GgufModelWriter>(opt.model_dir, out, *mix, src, cfg, opt.overwrite,
                                                           has_importance, gguf_requested));
      any_gguf = true;
    } else {
      const OutputFormat fmt = parse_output_format(f);
      const std::filesystem::path out =
          opt.formats.size() == 1 ? opt.output_dir : opt.output_dir / output_format_name(fmt);
      auto w = std::make_unique<QuantizedModelWriter>(
          fmt, opt.model_dir, out, src, cfg, [&](const std::string& n) { return layers.scheme_for(n); },
          opt.max_shard_bytes, opt.overwrite, extra);
      for (const auto& [name, why] : w->unstorable_layers())
        kept_16bit_.push_back(output_format_name(fmt) + ": " + name + " (" + why + ")");
      writers_.push_back(std::move(w));
    }
    paths_.push_back(writers_.back()->output_path());
    if (eval_path_.empty()) eval_path_ = writers_.back()->eval_path();
  }
  if (any_gguf && !gguf_unused_fields.empty())
    log(cat("note: gguf: --layer_config group_size / sym do not apply to GGUF block types (", gguf_unused_fields.size(),
            " layer(s), e.g. ", gguf_unused_fields[0], "); only bits pick a layer's type there"));
  if (!kept_16bit_.empty()) {
    std::string msg = cat("warning: ", kept_16bit_.size(), " layer(s) cannot be stored by the packed format and stay in 16-bit:");
    for (const auto& k : kept_16bit_) msg += "\n  " + k;
    log(msg);
  }
  for (const auto& n : output_tensor_order(src)) {
    const int64_t bi = tensor_block_index(n);
    (bi >= 0 ? by_block_[bi] : outside_).push_back(n);
  }
}

bool OutputSet::has_integer_formats() const {
  for (const auto& w : writers_)
    if (!w->is_gguf()) return true;
  return false;
}

bool OutputSet::has_gguf_formats() const {
  for (const auto& w : writers_)
    if (w->is_gguf()) return true;
  return false;
}

const GgufModelWriter* OutputSet::sole_gguf() const {
  return writers_.size() == 1 ? dynamic_cast<const GgufModelWriter*>(writers_[0].get()) : nullptr;
}

bool OutputSet::needs_block_weights() const {
  for (const auto& w : writers_)
    if (w->needs_block_weights()) return true;
  return false;
}

void OutputSet::add_block(int64_t layer, const BlockResult& r, const BlockWeights* w) {
  const std::vector<std::string>& tensors = by_block_[layer];
  for (auto& wr : writers_) wr->add_block(tensors, r, w);
}

uint64_t OutputSet::block_buffer_bytes(int64_t layer) const {
  const auto it = by_block_.find(layer);
  if (it == by_block_.end()) return 0;
  uint64_t n = 0;
  for (const auto& wr : writers_) n += wr->block_buffer_bytes(it->second);
  return n;
}

void OutputSet::finish() {
  for (auto& wr : writers_)
    for (const std::string& t : outside_) wr->add_copy(t);
  for (auto& wr : writers_) wr->finish();
}

QuantStats OutputSet::stats() const {
  for (const auto& w : writers_)
    if (!w->is_gguf()) return w->stats();
  return writers_.empty() ? QuantStats{} : writers_[0]->stats();
}

}  // namespace ar
