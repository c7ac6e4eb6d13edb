// Gemma3 and Phi3 end to end: generate, tune with SignRound, write auto_round / auto_gptq / fake,
// read every output back. Phi3's fused qkv_proj / gate_up_proj are quantized as one linear each
// (as AutoRound does), so the packed folders hold qkv_proj.qweight and no q_proj; Gemma3's four
// norms and q/k norms are copied as stored (offsets from one, not multipliers).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/file.h"
#include "quant/opt_rtn.h"
#include "quant/scheme.h"
#include "io/safetensors.h"
#include "model/decoder.h"
#include "support/fixtures.h"
#include "support/model_logits.h"
#include "support/run.h"
#include "tools/synth_model.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::string cli() { return AR_CLI_PATH; }

fs::path make_model(const std::string& preset, const fs::path& dir) {
  nlohmann::json c = synth_preset_config(preset);
  synth_set_num_layers(c, 2);
  SynthOptions o;
  o.config = c;
  o.output_dir = dir;
  o.dtype = DType::F32;  // so the fake folder holds the dequantized weights exactly
  o.seed = 5;
  generate_synthetic_model(o);
  return dir;
}


double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::vector<float> tensor_f32(const fs::path& model, const std::string& name) {
  const SafetensorsReader st = SafetensorsReader::open(model);
  const TensorInfo& t = st.require(name);
  std::vector<float> v(size_t(t.numel()));
  st.read_f32(t, v.data());
  return v;
}

class NewArch : public ::testing::TestWithParam<const char*> {};

// Every weight of an f32 router set to zero in the model's file: each token's probabilities tie,
// so the top k are experts 0..k-1 and the others never see a token.
void zero_router(const fs::path& model, const std::string& router) {
  const SafetensorsReader st = SafetensorsReader::open(model);
  const TensorInfo& t = st.require(router);
  ASSERT_EQ(t.dtype, DType::F32);
  const std::vector<char> zeros(t.size_bytes, 0);
  std::fstream f(st.file_path(t.file_index), std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(t.offset_bytes));
  f.write(zeros.data(), std::streamsize(zeros.size()));
}

TEST_P(NewArch, TunesWritesAndReadsBack) {
  const std::string preset = GetParam();
  const fs::path dir = test::make_temp_dir("newarch_" + preset);
  const fs::path model = make_model(preset, dir / "model"), out = dir / "out";
  const auto r = test::run_command(cli() + " quantize --model " + model.string() + " --output_dir " + out.string() +
                                   " --iters 10 --nsamples 4 --seqlen 64 --dataset builtin --group_size 32"
                                   " --format auto_round,auto_gptq,fake");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const bool phi = preset == "tiny-phi3";
  const std::string log = r.out + r.err;
  // Per block: gemma3 7, phi3 4 (fused), qwen3-moe 4 + 8 experts x 3 (block 1 is dense: 7),
  // mixtral 4 + 4 x 3.
  const std::map<std::string, int> linears = {
      {"tiny-gemma3", 14}, {"tiny-phi3", 8}, {"tiny-qwen3-moe", 28 + 7}, {"tiny-mixtral", 32}};
  EXPECT_NE(log.find("quantized " + std::to_string(linears.at(preset)) + " linear layers"), std::string::npos) << log;

  const std::string l0 = "model.layers.0.";
  const SafetensorsReader ar = SafetensorsReader::open(out / "auto_round");
  if (phi) {
    const ModelConfig c = load_model_config(model);
    const int64_t qkv = (c.num_attention_heads + 2 * c.num_key_value_heads) * c.head_dim;
    const TensorInfo& q = ar.require(l0 + "self_attn.qkv_proj.qweight");
    EXPECT_EQ(q.shape, (std::vector<int64_t>{c.hidden_size / 8, qkv}));  // 4-bit: 8 per int32 along in
    EXPECT_EQ(ar.require(l0 + "mlp.gate_up_proj.scales").shape,
              (std::vector<int64_t>{c.hidden_size / 32, 2 * c.intermediate_size}));
    EXPECT_EQ(ar.find(l0 + "self_attn.q_proj.qweight"), nullptr);
  } else if (preset == "tiny-qwen3-moe" || preset == "tiny-mixtral") {
    // The router stays as stored and the quantization config says so; the experts are packed.
    const bool mixtral = preset == "tiny-mixtral";
    const std::string moe = l0 + (mixtral ? "block_sparse_moe." : "mlp.");
    EXPECT_EQ(ar.require(moe + "gate.weight").shape, (std::vector<int64_t>{mixtral ? 4 : 8, 128}));
    EXPECT_EQ(ar.find(moe + "gate.qweight"), nullptr);
    EXPECT_NE(ar.find(moe + (mixtral ? "experts.3.w2.qweight" : "experts.7.down_proj.qweight")), nullptr);
    const auto cfg = nlohmann::json::parse(read_text_file(out / "auto_round" / "config.json"));
    EXPECT_EQ(cfg["quantization_config"]["extra_config"][moe + "gate"]["bits"], 16);
  } else {
    for (const char* n : {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                          "post_feedforward_layernorm", "self_attn.q_norm", "self_attn.k_norm"}) {
      // Stored as the offsets the source holds (values near 0, written as f16), not as 1 + w.
      const std::string t = l0 + n + ".weight";
      const std::vector<float> got = tensor_f32(out / "auto_round", t), want = tensor_f32(model, t);
      ASSERT_EQ(got.size(), want.size()) << t;
      for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4f) << t << " [" << i << "]";
    }
  }
  // Every output reads back to the same model: the packed folders dequantize to the fake one
  // (which keeps the f32 source's other tensors; the packed ones store them as f16, ~5e-4 here).
  std::vector<int32_t> ids(80);
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = int32_t((i * 131 + 7) % 1024);
  const std::vector<double> fake = test::log_softmax_of(Decoder(out / "fake"), ids);
  const double d_ar = max_diff(test::log_softmax_of(Decoder(out / "auto_round"), ids), fake);
  const double d_gptq = max_diff(test::log_softmax_of(Decoder(out / "auto_gptq"), ids), fake);
  const double d_q = max_diff(test::log_softmax_of(Decoder(model), ids), fake);
  std::printf("  %s: max |d log-softmax| auto_round %.2e, auto_gptq %.2e vs fake; source vs fake %.2e\n",
              preset.c_str(), d_ar, d_gptq, d_q);
  EXPECT_LT(d_ar, 3e-3);
  EXPECT_LT(d_gptq, 3e-3);
  EXPECT_GT(d_q, 10 * std::max(d_ar, d_gptq));  // quantizing changed the model far more
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Tiny, NewArch, ::testing::Values("tiny-gemma3", "tiny-phi3", "tiny-qwen3-moe", "tiny-mixtral"),
                         [](const auto& info) {
                           std::string n = std::string(info.param).substr(5);
                           std::replace(n.begin(), n.end(), '-', '_');
                           return n;
                         });

// With every router weight zero, each token's probabilities tie and the top 2 are experts 0 and
// 1: experts 2..7 never see a calibration token. Tuning cannot move them (no gradient), so they
// get optimized RTN, and the log names them once per block.
TEST(NewArch, ExpertsWithoutTokensGetOptimizedRtn) {
  const fs::path dir = test::make_temp_dir("moe_unrouted");
  const fs::path model = make_model("tiny-qwen3-moe", dir / "model"), out = dir / "out";
  zero_router(model, "model.layers.0.mlp.gate.weight");
  const auto r = test::run_command(cli() + " quantize --model " + model.string() + " --output_dir " + out.string() +
                                   " --iters 5 --nsamples 4 --seqlen 64 --dataset builtin --group_size 32 --format fake");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string log = r.out + r.err;
  EXPECT_NE(log.find("block 0: experts no calibration token reached (optimized RTN): 2, 3, 4, 5, 6, 7"),
            std::string::npos) << log;
  // Expert 7's fake weights are exactly optimized RTN of its source weights; expert 0's were tuned.
  for (const char* e : {"7", "0"}) {
    const std::string name = std::string("model.layers.0.mlp.experts.") + e + ".up_proj.weight";
    const std::vector<float> w = tensor_f32(model, name), got = tensor_f32(out, name);
    const SafetensorsReader st = SafetensorsReader::open(model);
    const TensorInfo& t = st.require(name);
    std::vector<float> rtn(w.size());
    quantize_opt_rtn(w.data(), t.shape[0], t.shape[1], QuantScheme{4, 32, true}).dequantize(rtn.data());
    EXPECT_EQ(got == rtn, std::string(e) == "7") << name;
  }
  fs::remove_all(dir);
}

// Expert groups from the command line, on the tiny MoE with its router zeroed so that experts
// 2..7 see no token: the plan names the groups, each group logs its losses, the unrouted experts
// are still found (now group by group) and get optimized RTN, the tuned ones do not.
TEST(NewArch, ExpertGroupsOnTheCommandLine) {
  const fs::path dir = test::make_temp_dir("moe_groups");
  const fs::path model = make_model("tiny-qwen3-moe", dir / "model"), out = dir / "out";
  zero_router(model, "model.layers.0.mlp.gate.weight");
  const auto r = test::run_command(cli() + " quantize --model " + model.string() + " --output_dir " + out.string() +
                                   " --iters 5 --nsamples 4 --seqlen 64 --dataset builtin --group_size 32 --format fake" +
                                   " --expert_groups 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string log = r.out + r.err;
  EXPECT_NE(log.find("experts tuned in 3 groups of ~3 (--expert_groups"), std::string::npos) << log;
  for (const char* g : {"block 0 expert group 1/3:", "block 0 expert group 3/3:", "15 steps in 3 expert groups"})
    EXPECT_NE(log.find(g), std::string::npos) << g << "\n" << log;
  EXPECT_EQ(log.find("block 1 expert group"), std::string::npos) << "block 1 is dense\n" << log;
  EXPECT_NE(log.find("block 0: experts no calibration token reached (optimized RTN): 2, 3, 4, 5, 6, 7"),
            std::string::npos) << log;
  for (const char* e : {"7", "2", "0"}) {
    const std::string name = std::string("model.layers.0.mlp.experts.") + e + ".gate_proj.weight";
    const std::vector<float> w = tensor_f32(model, name), got = tensor_f32(out, name);
    const SafetensorsReader st = SafetensorsReader::open(model);
    const TensorInfo& t = st.require(name);
    std::vector<float> rtn(w.size());
    quantize_opt_rtn(w.data(), t.shape[0], t.shape[1], QuantScheme{4, 32, true}).dequantize(rtn.data());
    EXPECT_EQ(got == rtn, std::string(e) != "0") << name;
  }
  fs::remove_all(dir);
}

// The number on a plan line after `key` ("... peak RAM 1.23 MiB"), in bytes; 0 when absent.
double plan_bytes_after(const std::string& log, const std::string& key) {
  const size_t at = log.find(key);
  if (at == std::string::npos) return 0;
  std::istringstream in(log.substr(at + key.size()));
  double v = 0;
  std::string unit;
  in >> v >> unit;
  while (!unit.empty() && !std::isalpha(static_cast<unsigned char>(unit.back()))) unit.pop_back();  // "MiB,"
  const double scale = unit == "GiB" ? 1024.0 * 1024 * 1024 : unit == "MiB" ? 1024.0 * 1024 : unit == "KiB" ? 1024.0 : 1;
  return v * scale;
}

// --max_ram below what tuning all experts at once needs: the plan picks the fewest groups that
// fit and the run stays within the budget.
TEST(NewArch, MaxRamChoosesExpertGroups) {
  const fs::path dir = test::make_temp_dir("moe_groups_auto");
  nlohmann::json c = synth_preset_config("tiny-qwen3-moe");
  synth_set_num_layers(c, 1);
  c["hidden_size"] = 256;
  c["intermediate_size"] = 512;
  c["moe_intermediate_size"] = 256;
  c["num_experts"] = 64;
  c["num_experts_per_tok"] = 4;
  c["mlp_only_layers"] = nlohmann::json::array();
  SynthOptions o;
  o.config = c;
  o.output_dir = dir / "model";
  o.dtype = DType::BF16;
  o.seed = 6;
  generate_synthetic_model(o);
  auto run = [&](const std::string& max_ram, const std::string& name) {
    return test::run_command(cli() + " quantize --model " + (dir / "model").string() + " --output_dir " +
                             (dir / name).string() + " --iters 1 --nsamples 2 --seqlen 64 --batch_size 2" +
                             " --dataset builtin --format fake --cache disk --max_ram " + max_ram);
  };
  const auto wide = run("64G", "wide");
  ASSERT_EQ(wide.exit_code, 0) << wide.err;
  const std::string wlog = wide.out + wide.err;
  EXPECT_NE(wlog.find("experts tuned all at once (64 per MoE block)"), std::string::npos) << wlog;
  const double all_at_once = plan_bytes_after(wlog, "predicted peak RAM ");
  const double state = plan_bytes_after(wlog, "tuning / pass working set ");
  ASSERT_GT(all_at_once, 0) << wlog;
  ASSERT_GT(state, 64 << 20) << "the experts' state should dominate\n" << wlog;
  // Room for about half the state: two or three groups.
  const uint64_t budget = uint64_t(all_at_once - state / 2);
  const auto tight = run(std::to_string(budget), "tight");
  ASSERT_EQ(tight.exit_code, 0) << tight.err;
  const std::string tlog = tight.out + tight.err;
  const size_t at = tlog.find("experts tuned in ");
  ASSERT_NE(at, std::string::npos) << tlog;
  const int groups = std::atoi(tlog.c_str() + at + std::string("experts tuned in ").size());
  EXPECT_GE(groups, 2);
  EXPECT_LE(groups, 4);
  EXPECT_NE(tlog.find("(the fewest that fit the budget; all at once the working set is"), std::string::npos) << tlog;
  EXPECT_NE(tlog.find(cat(groups, " steps in ", groups, " expert groups")), std::string::npos) << tlog;
  EXPECT_LE(plan_bytes_after(tlog, "peak RSS (VmHWM): "), double(budget)) << tlog;
  // One group fewer does not fit: the plan split no more than it had to.
  const auto fewer = test::run_command(cli() + " quantize --model " + (dir / "model").string() + " --output_dir " +
                                       (dir / "fewer").string() + " --iters 1 --nsamples 2 --seqlen 64 --batch_size 2" +
                                       " --dataset builtin --format fake --cache disk --max_ram " + std::to_string(budget) +
                                       " --expert_groups " + std::to_string(groups - 1));
  EXPECT_EQ(fewer.exit_code, 1);
  EXPECT_NE(fewer.err.find("no strategy fits"), std::string::npos) << fewer.err;
  // No room for any tuning state: even one expert per group does not fit, and the error says so.
  const auto none = run(std::to_string(uint64_t(all_at_once - state)), "none");
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("experts tuned in 64 groups of ~1 (one expert per group, the most there can be, and still "
                          "over the budget"),
            std::string::npos)
      << none.err;
  EXPECT_NE(none.err.find("no strategy fits"), std::string::npos) << none.err;
  EXPECT_FALSE(fs::exists(dir / "none")) << "nothing is written when the plan fails";
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ar
