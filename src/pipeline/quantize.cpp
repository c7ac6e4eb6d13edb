// The streaming quantize loop: for each block, load (pread) -> [targets from the calibration
// caches] -> SignRound / optimized RTN / RTN per linear -> [propagate the caches] -> append to
// every output writer -> checkpoint -> release.
// Non-block tensors (embedding, final norm, lm_head) are copied in 16-bit at the end, following the
// writers' tensor order so their shards can be streamed. GGUF outputs (gguf:<mix>) get each block's
// f32 weights (RTN: the originals plus the calibration importance; SignRound: the tuned weights)
// and quantize them to the mix's per-tensor types themselves.
#include "pipeline/quantize.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include <csignal>
#include <unistd.h>

#include "calib/calib_set.h"
#include "calib/dataset.h"
#include "calib/tokenizer.h"
#include "core/buffer.h"
#include "core/checksum.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/timer.h"
#include "export/gguf_model_writer.h"
#include "export/output_format.h"
#include "export/quantized_writer.h"
#include "io/safetensors.h"
#include "model/block.h"
#include "model/block_specs.h"
#include "model/decoder.h"
#include "model/weights.h"
#include "io/work_file.h"
#include "pipeline/activation_store.h"
#include "pipeline/checkpoint.h"
#include "pipeline/eval.h"
#include "pipeline/memory_plan.h"
#include "pipeline/signround.h"
#include "quant/gguf_blocks.h"
#include "quant/gguf_tune.h"
#include "quant/layer_config.h"
#include "quant/opt_rtn.h"
#include "quant/rtn.h"

namespace ar {

namespace {

// --layer_config names a file unless it is JSON text.
bool layer_config_is_file(const QuantizeOptions& opt) {
  std::error_code ec;
  return !opt.layer_config.empty() && opt.layer_config.find('{') == std::string::npos &&
         std::filesystem::exists(opt.layer_config, ec);
}

LayerConfig make_layer_config(const QuantizeOptions& opt) {
  if (opt.layer_config.empty()) return LayerConfig(opt.scheme);
  if (layer_config_is_file(opt)) return LayerConfig::load(opt.layer_config, opt.scheme);
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

}  // namespace

namespace {

std::filesystem::path default_work_dir(const std::filesystem::path& output_dir) {
  std::filesystem::path out = std::filesystem::absolute(output_dir).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();
  return out.parent_path() / (out.filename().string() + ".autoround_work");
}

std::string gen_file(const char* what, int64_t block) { return cat(what, ".", block, ".f32"); }
std::string block_file(int64_t block) { return cat("block.", block, ".q"); }
std::string gguf_block_file(int64_t block) { return cat("block.", block, ".gguf"); }

// Everything that determines the output bytes; a resumed run must agree on all of it.
nlohmann::json run_identity(const QuantizeOptions& opt, const ModelConfig& cfg, const SafetensorsReader& src,
                            const std::vector<std::vector<int32_t>>& calib) {
  nlohmann::json j;
  j["model"] = std::filesystem::absolute(opt.model_dir).lexically_normal().string();
  uint64_t tensors = 0;
  for (const auto& name : output_tensor_order(src)) tensors = checksum64(name.data(), name.size(), tensors);
  j["model_tensors"] = checksum_hex(tensors);
  j["layers"] = cfg.num_hidden_layers;
  j["bits"] = opt.scheme.bits;
  j["group_size"] = opt.scheme.group_size;
  j["sym"] = opt.scheme.sym;
  j["layer_config"] = opt.layer_config;
  // A config file may be edited between the interrupted run and the resume: its content counts.
  if (layer_config_is_file(opt)) {
    std::ifstream f(opt.layer_config, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    j["layer_config_content"] = checksum_hex(checksum64(text.data(), text.size()));
  }
  j["disable_opt_rtn"] = opt.disable_opt_rtn;
  j["iters"] = opt.tune.iters;
  j["batch_size"] = opt.tune.batch_size;
  j["gradient_accumulate_steps"] = opt.tune.gradient_accumulate_steps;
  j["lr"] = opt.tune.lr;
  j["minmax_lr"] = opt.tune.minmax_lr;
  j["enable_minmax_tuning"] = opt.tune.enable_minmax_tuning;
  j["gguf_minmax_tuning"] = opt.gguf_minmax_tuning;
  j["seed"] = opt.tune.seed;
  j["tune_precision"] = int(opt.tune.precision);
  j["precision"] = int(opt.precision);
  j["enable_quanted_input"] = opt.enable_quanted_input;
  j["nsamples"] = opt.nsamples;
  j["seqlen"] = opt.seqlen;
  uint64_t ids = 0;
  for (const auto& s : calib) ids = checksum64(s.data(), s.size() * sizeof(int32_t), ids);
  j["calibration_ids"] = checksum_hex(ids);
  j["formats"] = opt.formats;
  j["max_shard_bytes"] = opt.max_shard_bytes;
  return j;
}

// Our files only: the work dir may be a folder the user shares with other things.
void remove_work_files(const std::filesystem::path& dir) {
  std::error_code ec;
  std::vector<std::filesystem::path> ours;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n == kManifestName || ((n.starts_with("X.") || n.starts_with("Xq.")) && n.ends_with(".f32")) ||
        (n.starts_with("block.") && (n.ends_with(".q") || n.ends_with(".gguf"))))
      ours.push_back(e.path());
  }
  for (const auto& p : ours) std::filesystem::remove(p, ec);
  std::filesystem::remove(dir, ec);  // only if now empty
}

// A failed run keeps its work dir only when it holds a checkpoint that --resume can continue
// from; the caches of a run that never finished a block are worth nothing and are removed.
class WorkDirGuard {
 public:
  WorkDirGuard(std::filesystem::path dir, std::function<void(const std::string&)> log)
      : dir_(std::move(dir)), log_(std::move(log)) {}
  WorkDirGuard(const WorkDirGuard&) = delete;
  WorkDirGuard& operator=(const WorkDirGuard&) = delete;
  void release() { armed_ = false; }
  ~WorkDirGuard() {
    if (!armed_) return;
    try {
      if (std::optional<CheckpointManifest> m = read_manifest(dir_)) {
        log_(cat("note: the checkpoint in ", dir_.string(), " is kept (", m->next_block,
                 " block(s) finished): rerun with the same options and --resume to continue, or delete it"));
        return;
      }
    } catch (const std::exception&) {
      return;  // an unreadable checkpoint is the user's to inspect, not ours to delete
    }
    remove_work_files(dir_);
  }

 private:
  std::filesystem::path dir_;
  std::function<void(const std::string&)> log_;
  bool armed_ = true;
};

uint64_t dir_bytes(const std::filesystem::path& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) n += e.file_size(ec);
  return n;
}

}  // namespace

QuantizeReport run_quantize(const QuantizeOptions& opt) {
  Timer total;
  auto log = [&](const std::string& s) {
    if (opt.log) opt.log(s);
  };
  auto mem_log = [&](const std::string& phase) {
    if (!opt.log_memory) return;
    MemStats m = read_mem_stats();
    log(cat("memory: ", phase, ": RSS ", format_bytes(m.rss_bytes), ", peak ", format_bytes(m.peak_bytes)));
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
  if (opt.cache != "auto" && opt.cache != "ram" && opt.cache != "disk")
    AR_THROW("--cache: '", opt.cache, "' is not one of auto, ram, disk");
  if (opt.stream_loss && !tune) AR_THROW("--stream_loss applies to SignRound tuning only (--iters > 0)");

  Decoder d(opt.model_dir);
  const ModelConfig& cfg = d.config();
  const SafetensorsReader& src = d.reader();
  if (!cfg.quantization_config.empty())
    AR_THROW(opt.model_dir.string(), ": the model is already quantized (config.json has quantization_config)");
  LayerConfig layers = make_layer_config(opt);
  const int64_t L = cfg.num_hidden_layers, C = cfg.hidden_size;

  std::vector<std::string> linear_names;
  for (int64_t l = 0; l < L; ++l)
    for (const BlockTensorSpec& t : block_tensor_specs(cfg, l))
      if (t.quantizable()) linear_names.push_back(t.module);
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

  // Calibration samples: importance for optimized RTN, or the inputs/targets of SignRound.
  const bool use_imp = !tune && !opt.dataset.empty() && !opt.disable_opt_rtn;
  const bool calib = use_imp || tune;

  // Every writer plans its whole output (and checks the destination) before any work.
  std::vector<std::unique_ptr<QuantizedModelWriter>> writers;
  std::vector<std::unique_ptr<GgufModelWriter>> gguf_writers;
  std::filesystem::path eval_model;  // what the final evaluation reads back
  QuantizeReport rep;
  // In a GGUF file a layer's "bits" rule picks its block type (16 keeps it in F16); group size
  // and symmetry are fixed by the type, so those fields of a rule cannot apply there.
  std::map<std::string, GgmlType> gguf_requested;
  std::vector<std::string> gguf_unused_fields;
  for (const std::string& name : linear_names) {
    const LayerConfig::RuleFields f = layers.rule_fields(name);
    if (f.bits) gguf_requested[name + ".weight"] = gguf_type_for_bits(*f.bits);
    if (f.group_size || f.sym) gguf_unused_fields.push_back(name);
  }
  for (const std::string& f : opt.formats) {
    if (std::optional<GgufMix> mix = parse_gguf_format(f)) {
      // Q2_K_S leaves most 2-bit weights without promotion; llama-quantize refuses it without an
      // importance matrix, and so do we without calibration (importance or tuning).
      if (*mix == GgufMix::Q2_K_S && !calib)
        AR_THROW("--format ", f, ": q2_k_s needs calibration data (as llama-quantize needs an importance matrix for "
                 "it): pass --dataset FILE ('builtin' for the demo text) for importance-weighted RTN, or --iters N to "
                 "tune; without data use q2_k");
      std::filesystem::path out = opt.formats.size() == 1 ? opt.output_dir
                                                          : opt.output_dir / ("gguf-" + std::string(gguf_mix_info(*mix).name));
      gguf_writers.push_back(
          std::make_unique<GgufModelWriter>(opt.model_dir, out, *mix, src, cfg, opt.overwrite, use_imp, gguf_requested));
      rep.outputs.push_back(out);
      if (eval_model.empty()) eval_model = gguf_writers.back()->path();
      continue;
    }
    OutputFormat fmt = parse_output_format(f);
    std::filesystem::path out = opt.formats.size() == 1 ? opt.output_dir : opt.output_dir / output_format_name(fmt);
    if (eval_model.empty()) eval_model = out;
    writers.push_back(std::make_unique<QuantizedModelWriter>(
        fmt, opt.model_dir, out, src, cfg, [&](const std::string& n) { return layers.scheme_for(n); },
        opt.max_shard_bytes, opt.overwrite, extra));
    rep.outputs.push_back(out);
    for (const auto& [name, why] : writers.back()->unstorable_layers())
      rep.kept_16bit.push_back(output_format_name(fmt) + ": " + name + " (" + why + ")");
  }
  if (!gguf_writers.empty() && !gguf_unused_fields.empty())
    log(cat("note: gguf: --layer_config group_size / sym do not apply to GGUF block types (", gguf_unused_fields.size(),
            " layer(s), e.g. ", gguf_unused_fields[0], "); only bits pick a layer's type there"));
  if (!rep.kept_16bit.empty()) {
    std::string msg = cat("warning: ", rep.kept_16bit.size(), " layer(s) cannot be stored by the packed format and stay in 16-bit:");
    for (const auto& k : rep.kept_16bit) msg += "\n  " + k;
    log(msg);
  }

  // SignRound for a single GGUF output tunes every linear under its planned GGUF block format, so
  // the tuned rounding is exactly what the file stores; next to other formats it tunes the
  // --bits/--group_size scheme and the GGUF writer re-quantizes the tuned weights.
  const bool tune_gguf = tune && gguf_writers.size() == 1 && writers.empty();
  // Under a GGUF format the clipping factors stay at 1 unless asked for: the format's own scale
  // search already placed each sub-block's range, and tuning it as well made qwen3-student worse
  // (q2_k_s, 100 steps: TinyStories ppl 6.105 with it, 5.976 rounding only; RTN+importance 6.071).
  SignRoundOptions tune_opts = so;
  if (tune_gguf && !opt.gguf_minmax_tuning) tune_opts.enable_minmax_tuning = false;
  if (tune && !gguf_writers.empty() && !tune_gguf)
    log("note: gguf: with other formats in the same run SignRound tunes the --bits/--group_size scheme; the "
        "tuned weights are then quantized to the GGUF mix's types (run the GGUF format alone to tune under it)");
  // Each linear's scheme: the layer config's, or its GGUF block format when tuning for GGUF.
  auto block_schemes = [&](const BlockWeights& w) {
    std::array<QuantScheme, kBlockLinears> sch;
    for (int i = 0; i < kBlockLinears; ++i) {
      const std::string& name = block_linears(w, i)->name;
      sch[size_t(i)] = layers.scheme_for(name);
      if (!tune_gguf) continue;
      const GgmlType t = gguf_writers[0]->planned_type(name + ".weight");
      sch[size_t(i)].gguf = t;
      sch[size_t(i)].bits = gguf_tunable(t) ? 4 : 16;  // F16/F32 stay unquantized
    }
    return sch;
  };
  if (!tune && !opt.dataset.empty() && opt.disable_opt_rtn)
    log("note: --dataset is not used by plain RTN (--disable_opt_rtn)");
  CalibSet cs;
  if (calib) {
    Tokenizer tok = Tokenizer::load(opt.model_dir);
    cs = build_calib_set(opt.dataset, &tok, {opt.nsamples, opt.seqlen, so.seed});
    log("calibration: " + cs.note);
  }
  const int64_t n_calib = int64_t(cs.samples.size()), T = opt.seqlen;
  const size_t sample_floats = size_t(T * C);
  // Caches held at once: X (which becomes the targets in place) and Xq; without quantized inputs
  // the fp inputs and the targets are both needed, unless targets are streamed.
  const bool with_xq = tune && opt.enable_quanted_input;
  const int caches = !calib ? 0 : use_imp ? 1 : 2;
  const int caches_streamed = tune ? (with_xq ? 2 : 1) : 0;

  // The work directory and the memory plan.
  const std::filesystem::path work_dir = opt.work_dir.empty() ? default_work_dir(opt.output_dir) : opt.work_dir;
  std::error_code ec;
  std::filesystem::create_directories(work_dir, ec);
  if (ec) AR_THROW(work_dir.string(), ": cannot create the work directory: ", ec.message());
  WorkDirGuard work_guard(work_dir, log);
  const BlockWeights shapes0 = block_shapes(cfg, 0);
  const std::array<QuantScheme, kBlockLinears> schemes0 = block_schemes(shapes0);
  uint64_t max_result = 0, bf16_saving = 0;
  for (int i = 0; i < kBlockLinears; ++i) {
    const LinearWeights& l = *block_linears(shapes0, i);
    max_result += uint64_t(l.in * l.out) + 64;
    // An owning tuner keeps a bf16 checkpoint's quantized linears as bf16 (BlockTuner).
    const TensorInfo* ti = src.find(l.name + ".weight");
    if (schemes0[size_t(i)].quantized() && ti && ti->dtype == DType::BF16) bf16_saving += uint64_t(l.in * l.out) * 2;
  }
  PlanInputs pin;
  // + allocator, thread-stack and library slack: a 4B-shaped run with RAM caches predicted at 2.00 GiB
  // peaked 5 MiB above the prediction with 32 MiB of slack.
  pin.base_bytes = read_mem_stats().rss_bytes + (64ull << 20);
  // The block's weights and the working set of the larger phase: tuning (weights compacted to
  // bf16 where exact) or a calibration pass (f32 weights, inference scratch).
  const uint64_t block_f32 = block_f32_bytes(cfg);
  const uint64_t pass_bytes = calib ? BlockScratch::size_bytes(cfg, T) + 2 * sample_floats * sizeof(float) : 0;
  const uint64_t tune_bytes = tune ? BlockTuner::state_bytes(shapes0, cfg, schemes0, T, tune_opts) : 0;
  if (tune && block_f32 - bf16_saving + tune_bytes > block_f32 + pass_bytes) {
    pin.block_bytes = block_f32 - bf16_saving;
    pin.work_bytes = tune_bytes;
  } else {
    pin.block_bytes = block_f32;
    pin.work_bytes = pass_bytes;
  }
  pin.cache_bytes = uint64_t(n_calib) * sample_floats * sizeof(float);
  pin.caches = caches;
  pin.caches_streamed = caches_streamed;
  pin.result_bytes = max_result * uint64_t(L);
  const uint64_t avail = available_memory_bytes();
  pin.max_ram = opt.max_ram ? opt.max_ram : (avail ? avail / 10 * 8 : UINT64_MAX);
  pin.free_disk = free_disk_bytes(work_dir);
  if (opt.max_disk) pin.free_disk = std::min(pin.free_disk, opt.max_disk);
  pin.allow_disk = opt.low_cpu_mem_usage && opt.cache != "ram";
  pin.force_stream = opt.stream_loss;
  pin.checkpoint = opt.checkpoint;
  pin.allow_ram = opt.cache != "disk";
  const MemoryPlan plan = choose_plan(pin);
  rep.plan = plan.text;
  log(plan.text);
  if (opt.resume && !plan.checkpoint && calib)
    AR_THROW("--resume: this run's plan keeps no checkpoint (not enough disk in ", work_dir.string(), ")");

  // Caches of the current block's inputs: X (fp path) and Xq (quantized path).
  const bool on_disk = plan.mode == CacheMode::Disk;
  std::unique_ptr<ActivationStore> X, XQ;
  auto new_store = [&](const char* what, int64_t gen) {
    return on_disk ? make_file_store(what, work_dir / gen_file(what, gen), n_calib, sample_floats)
                   : make_ram_store(what, n_calib, sample_floats);
  };
  std::vector<float> a(calib ? sample_floats : 0), b(calib ? sample_floats : 0);

  // Resume: finished blocks come back from their files, the caches from the checkpoint.
  const nlohmann::json identity = run_identity(opt, cfg, src, cs.samples);
  CheckpointManifest man;
  man.identity = identity;
  int64_t start_block = 0;
  if (opt.resume) {
    std::optional<CheckpointManifest> m = read_manifest(work_dir);
    if (!m) AR_THROW("--resume: no checkpoint in ", work_dir.string(), " (", kManifestName, " is missing)");
    check_identity(work_dir, m->identity, identity);
    man = *m;
    start_block = man.next_block;
    if (start_block > L) AR_THROW(work_dir.string(), ": checkpoint says ", start_block, " of ", L, " blocks are done");
    if (calib && start_block < L) {
      if (man.x_file.empty() || (with_xq && man.xq_file.empty()) || man.x_sums.size() != size_t(n_calib))
        AR_THROW(work_dir.string(), ": checkpoint has no activation caches for block ", start_block);
      X = open_checked_store("X", work_dir / man.x_file, n_calib, sample_floats, man.x_sums, !on_disk);
      if (with_xq) XQ = open_checked_store("Xq", work_dir / man.xq_file, n_calib, sample_floats, man.xq_sums, !on_disk);
    }
    log(cat("resume: ", start_block, " of ", L, " blocks finished in ", work_dir.string()));
    rep.resumed_blocks = start_block;
  } else {
    // A stale checkpoint must not be resumed into this run's files: drop it first.
    std::filesystem::remove(work_dir / kManifestName, ec);
    if (calib) {
      X = new_store("X", 0);
      if (with_xq) XQ = new_store("Xq", 0);
      for (int64_t s = 0; s < n_calib; ++s) {
        d.embed(a.data(), cs.samples[size_t(s)]);
        X->write(s, a.data());
        if (XQ) XQ->write(s, a.data());
      }
    }
  }
  cs.samples.clear();
  cs.samples.shrink_to_fit();
  mem_log("calibration caches ready");

  // Source tensors in the writers' order, grouped per block.
  std::vector<std::string> order = output_tensor_order(src);
  std::map<int64_t, std::vector<std::string>> by_block;
  std::vector<std::string> outside;
  for (const auto& n : order) {
    int64_t bi = tensor_block_index(n);
    (bi >= 0 ? by_block[bi] : outside).push_back(n);
  }

  double q_bits = 0, q_weights = 0;
  auto emit = [&](int64_t l, std::map<std::string, QuantizedWeight>& done) {
    for (const auto& [name, q] : done) {
      if (writers.empty()) break;  // GGUF only: counted from the GGUF bytes instead
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
  };
  auto emit_gguf = [&](const std::vector<GgufBlockTensor>& ts) {
    for (const GgufBlockTensor& t : ts) {
      if (t.output >= gguf_writers.size() || !gguf_writers[t.output]->wants(t.name) ||
          gguf_writers[t.output]->planned_type(t.name) != t.type)
        AR_THROW(work_dir.string(), ": checkpoint GGUF tensor '", t.name, "' does not belong to this run's plan");
      gguf_writers[t.output]->add_bytes(t.name, t.type, t.bytes.data(), t.bytes.size());
      // GGUF only: the first GGUF output's quantized block matrices are what the run quantized (a
      // resumed block's bytes count as much as a freshly quantized one's; 16-bit ones are kept).
      if (writers.empty() && t.output == 0 && ggml_is_quantized(t.type) && t.name.ends_with(".weight") &&
          src.require(t.name).shape.size() == 2) {
        ++rep.quantized_layers;
        q_bits += 8.0 * double(t.bytes.size());
        q_weights += double(src.require(t.name).numel());
      }
    }
  };
  if (!gguf_writers.empty() && man.gguf_block_sums.size() != size_t(start_block))
    AR_THROW(work_dir.string(), ": checkpoint has no GGUF tensors for its finished blocks");
  for (int64_t l = 0; l < start_block; ++l) {
    std::map<std::string, QuantizedWeight> done = load_block_result(work_dir / man.block_files[size_t(l)],
                                                                     man.block_sums[size_t(l)]);
    emit(l, done);
    if (!gguf_writers.empty())
      emit_gguf(load_gguf_block(work_dir / gguf_block_file(l), man.gguf_block_sums[size_t(l)]));
  }

  // Rotary tables for the calibration passes; their scratch lives only during a pass, never
  // beside the tuner's (the memory plan counts the larger of the two).
  std::optional<RopeTables> rope;
  std::optional<BlockScratch> scratch;
  if (calib && start_block < L) rope.emplace(make_rope_tables(cfg, T));
  Timer blocks_timer;
  for (int64_t l = start_block; l < L; ++l) {
    Timer bt;
    const bool last = l + 1 == L;
    std::unique_ptr<ActivationStore> X_next, XQ_next;
    {
      BlockWeights w = load_block(src, cfg, l);
      mem_log(cat("block ", l, " loaded"));
      std::map<std::string, QuantizedWeight> done;
      std::array<std::vector<float>, kBlockLinears> imps;  // per-input-column importance (RTN with calibration)
      const std::array<QuantScheme, kBlockLinears> schemes = block_schemes(w);
      std::array<std::vector<uint8_t>, kBlockLinears> tuned_gguf;  // GGUF bytes of tuned linears
      if (tune) {
        BlockTuner tuner(std::move(w), cfg, schemes, T, tune_opts);  // bf16-exact weights are held as bf16
        ActivationStore& in = with_xq ? *XQ : *X;  // the tuned block's inputs
        TuneSamples ts;
        ts.n = n_calib;
        if (!plan.stream_targets) {
          // Targets T = block_fp(X), which are also the next block's X (SPEC §2 steps 1 and 5). In
          // RAM, X is overwritten in place when the tuning inputs are Xq; on disk a new generation
          // is written so the checkpoint of the previous block stays intact.
          const bool in_place = !on_disk && with_xq;
          X_next = in_place ? nullptr : new_store("X", l + 1);
          ActivationStore& t_store = in_place ? *X : *X_next;
          for (int64_t s = 0; s < n_calib; ++s) {
            X->read(s, a.data());
            tuner.fp_forward(b.data(), a.data());
            t_store.write(s, b.data());
          }
          mem_log(cat("block ", l, " targets"));
          ts.fetch = [&](int64_t idx, float* x, float* t) {
            in.read(idx, x);
            t_store.read(idx, t);
          };
          if (in_place) X_next = std::move(X);
        } else {
          ts.fp_inputs = true;
          ts.fetch = [&](int64_t idx, float* x, float* xfp) {
            in.read(idx, x);
            X->read(idx, xfp);
          };
        }
        BlockTuneResult tr = tuner.tune(ts);
        mem_log(cat("block ", l, " tuned"));
        if (plan.stream_targets && !last) {  // the next block's X = block_fp(X)
          X_next = on_disk ? new_store("X", l + 1) : nullptr;
          for (int64_t s = 0; s < n_calib; ++s) {
            X->read(s, a.data());
            tuner.fp_forward(b.data(), a.data());
            (X_next ? *X_next : *X).write(s, b.data());
          }
          if (!X_next) X_next = std::move(X);
        }
        w = tuner.release_weights();
        for (int i = 0; i < kBlockLinears; ++i) {
          LinearWeights& lw = *block_linears(w, i);
          if (!tr.gguf[size_t(i)].empty()) {  // tuned under its GGUF format: w' is what the file stores
            gguf_dequantize_tensor(schemes[size_t(i)].gguf, tr.gguf[size_t(i)].data(), lw.out, lw.in, lw.w.as<float>());
            tuned_gguf[size_t(i)] = std::move(tr.gguf[size_t(i)]);
            continue;
          }
          if (tr.q[size_t(i)].out == 0) continue;
          // The quantized path continues with the dequantized weights (step 5: Xq <- block_q(Xq)).
          tr.q[size_t(i)].dequantize(lw.w.as<float>());
          done.emplace(lw.name, std::move(tr.q[size_t(i)]));
        }
      } else {
        std::vector<std::vector<double>> sum(kBlockLinears);
        if (use_imp) {
          // Per-input-channel mean squared activation of each linear, accumulated while the
          // samples pass through the block; the outputs are the next block's inputs.
          for (int i = 0; i < kBlockLinears; ++i) sum[size_t(i)].assign(size_t(block_linears(w, i)->in), 0.0);
          auto observe = [&](int li, const float* xin, int64_t rows, int64_t K) {
            auto& acc = sum[size_t(li)];
            for (int64_t r = 0; r < rows; ++r)
              for (int64_t k = 0; k < K; ++k) acc[size_t(k)] += double(xin[r * K + k]) * xin[r * K + k];
          };
          X_next = on_disk && !last ? new_store("X", l + 1) : nullptr;
          scratch.emplace(cfg, T);
          for (int64_t s = 0; s < n_calib; ++s) {
            X->read(s, a.data());
            block_forward(a.data(), w, cfg, *rope, *scratch, opt.precision, observe);
            if (!last) (X_next ? *X_next : *X).write(s, a.data());
          }
          if (!X_next) X_next = std::move(X);
          scratch.reset();
        }
        const double tokens = double(n_calib * T);
        for (int i = 0; i < kBlockLinears; ++i) {
          const LinearWeights& lw = *block_linears(w, i);
          const QuantScheme& s = schemes[size_t(i)];
          std::vector<float>& imp = imps[size_t(i)];
          if (use_imp) {
            imp.resize(sum[size_t(i)].size());
            for (size_t k = 0; k < imp.size(); ++k) imp[k] = float(sum[size_t(i)][k] / tokens);
          }
          if (!s.quantized() || writers.empty()) continue;  // GGUF outputs quantize for themselves
          done.emplace(lw.name, opt.disable_opt_rtn ? quantize_rtn(lw.w.as<float>(), lw.out, lw.in, s)
                                                    : quantize_opt_rtn(lw.w.as<float>(), lw.out, lw.in, s,
                                                                       use_imp ? imp.data() : nullptr));
        }
      }
      if (with_xq && !last) {  // Xq <- block_q(Xq)
        XQ_next = on_disk ? new_store("Xq", l + 1) : nullptr;
        scratch.emplace(cfg, T);
        for (int64_t s = 0; s < n_calib; ++s) {
          XQ->read(s, a.data());
          block_forward(a.data(), w, cfg, *rope, *scratch, so.precision);
          (XQ_next ? *XQ_next : *XQ).write(s, a.data());
        }
        if (!XQ_next) XQ_next = std::move(XQ);
        scratch.reset();
        mem_log(cat("block ", l, " quantized path propagated"));
      }
      // The GGUF outputs' bytes of this block: linears from the (tuned or original) f32 weights,
      // everything else converted from the source.
      std::vector<GgufBlockTensor> gblk;
      for (size_t gi = 0; gi < gguf_writers.size(); ++gi) {
        const GgufModelWriter& gw = *gguf_writers[gi];
        for (const std::string& t : by_block[l]) {
          if (!gw.wants(t)) continue;
          GgufBlockTensor x{uint32_t(gi), t, gw.planned_type(t), {}};
          for (int i = 0; i < kBlockLinears && x.bytes.empty(); ++i) {
            const LinearWeights& lw = *block_linears(w, i);
            if (t == lw.name + ".weight" && !tuned_gguf[size_t(i)].empty()) x.bytes = tuned_gguf[size_t(i)];
            else if (t == lw.name + ".weight")
              x.bytes = gw.encode_weight(t, lw.w.as<float>(), lw.out, lw.in,
                                         imps[size_t(i)].empty() ? nullptr : imps[size_t(i)].data());
          }
          if (x.bytes.empty()) x.bytes = gw.encode_copy(t);
          gblk.push_back(std::move(x));
        }
      }
      emit(l, done);
      emit_gguf(gblk);
      // Checkpoint: the block's result, then the next block's caches, then the manifest (last,
      // atomically); only then is the previous checkpoint's data removed.
      if (plan.checkpoint) {
        man.block_files.push_back(block_file(l));
        man.block_sums.push_back(save_block_result(work_dir / block_file(l), done));
        if (!gguf_writers.empty()) man.gguf_block_sums.push_back(save_gguf_block(work_dir / gguf_block_file(l), gblk));
        man.next_block = l + 1;
        man.x_file.clear();
        man.xq_file.clear();
        man.x_sums.clear();
        man.xq_sums.clear();
        if (!last && X_next) {
          man.x_file = gen_file("X", l + 1);
          X_next->persist(work_dir / man.x_file);
          man.x_sums = X_next->checksums();
        }
        if (!last && XQ_next) {
          man.xq_file = gen_file("Xq", l + 1);
          XQ_next->persist(work_dir / man.xq_file);
          man.xq_sums = XQ_next->checksums();
        }
        write_manifest(work_dir, man);
        rep.work_dir_peak_bytes = std::max(rep.work_dir_peak_bytes, dir_bytes(work_dir));
        mem_log(cat("block ", l, " checkpointed"));
      }
    }  // block weights and quantized results freed here
    X = std::move(X_next);
    XQ = std::move(XQ_next);
    // Block l's inputs are superseded (by the checkpoint just written, if any): on disk they are
    // the files of generation l; in RAM, the previous checkpoint's copies.
    std::filesystem::remove(work_dir / gen_file("X", l), ec);
    std::filesystem::remove(work_dir / gen_file("Xq", l), ec);
    release_block_pages(src, l);
    const double el = blocks_timer.seconds();
    const double eta = el / double(l + 1 - start_block) * double(L - l - 1);
    MemStats m = read_mem_stats();
    log(cat("[", l + 1, "/", L, "] block ", l, ": ", fmt_seconds(bt.seconds()), "  elapsed ", fmt_seconds(el),
            "  ETA ", fmt_seconds(eta), "  RSS ", format_bytes(m.rss_bytes), " (peak ", format_bytes(m.peak_bytes), ")"));
    if (opt.debug_kill_after_block == l) {
      log(cat("debug: killing the process after block ", l, " (--debug_kill_after_block)"));
      ::kill(::getpid(), SIGKILL);
    }
  }
  X.reset();
  XQ.reset();
  for (auto& wr : writers)
    for (const std::string& t : outside) wr->add_copy(t);
  for (auto& gw : gguf_writers)
    for (const std::string& t : outside)
      if (gw->wants(t)) gw->add_copy(t);
  for (auto& wr : writers) wr->finish();
  for (auto& gw : gguf_writers) gw->finish();
  writers.clear();
  gguf_writers.clear();
  // The outputs are complete: the checkpoint has served its purpose.
  remove_work_files(work_dir);
  work_guard.release();
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
    log(cat("eval: quantized model read back from ", eval_model.string()));
    rep.ppl_quantized = evaluate_perplexity(Decoder(eval_model), windows, eo).perplexity;
  }
  rep.seconds = total.seconds();
  rep.peak_rss_bytes = read_mem_stats().peak_bytes;
  return rep;
}

}  // namespace ar
