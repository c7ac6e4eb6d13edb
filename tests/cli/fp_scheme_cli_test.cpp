// The floating-point schemes end to end through the real binary (issue 19, stage 2): --scheme
// MXFP4 / MXFP8 / NVFP4 / FP8 / FP8_BLOCK with RTN into the fake format give exactly the library's
// dequantized weights and a folder `autoround eval` reads; a killed run resumes to the same bytes;
// the combinations no format can hold are refused before any work with the format and scheme
// named. SignRound for these schemes: fp_signround_cli_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "export/quantized_writer.h"
#include "io/safetensors.h"
#include "quant/fp_formats.h"
#include "quant/rtn.h"
#include "support/files.h"
#include "support/fixtures.h"
#include "support/run.h"
#include "support/tensors.h"

namespace ar {
namespace {

using test::read_f32;

namespace fs = std::filesystem;

std::string cli() { return AR_CLI_PATH; }

test::RunResult quantize(const fs::path& model, const fs::path& out, const std::string& args) {
  return test::run_command(cli() + " quantize --model " + model.string() + " --output_dir " + out.string() + " " +
                           args);
}

double eval_ppl(const fs::path& model) {
  auto r = test::run_command(cli() + " eval --model " + model.string() + " --dataset builtin --seqlen 64");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const size_t at = r.out.find("perplexity: ");
  return at == std::string::npos ? std::nan("") : std::stod(r.out.substr(at + 12));
}

float max_abs(const std::vector<float>& w) {
  float m = 0.f;
  for (float x : w) m = std::max(m, std::fabs(x));
  return m;
}

// The amax NVFP4's global scale of block weight `name` comes from: with `fused`, the largest |w|
// over the projections vLLM fuses it with (q/k/v or gate/up of the same layer); else its own.
float nvfp4_amax(const SafetensorsReader& src, const std::string& name, bool fused) {
  static const std::vector<std::vector<std::string>> groups = {{"q_proj", "k_proj", "v_proj"},
                                                               {"gate_proj", "up_proj"}};
  float m = max_abs(read_f32(src, name));
  if (!fused) return m;
  for (const auto& g : groups)
    for (const std::string& part : g) {
      const size_t at = name.find("." + part + ".weight");
      if (at == std::string::npos) continue;
      for (const std::string& other : g)
        m = std::max(m, max_abs(read_f32(src, name.substr(0, at) + "." + other + ".weight")));
    }
  return m;
}

// Every block linear of `out` equals `scheme_for(linear)` applied by the library to the source
// weight (stories260K is f32, so the fake output holds the dequantized values exactly). NVFP4
// linears take the global scale of their fused group unless `nvfp4_fused` is false.
template <typename F>
void expect_library_weights(const fs::path& model, const fs::path& out, F scheme_for, bool nvfp4_fused = true) {
  const SafetensorsReader src = SafetensorsReader::open(model), got = SafetensorsReader::open(out);
  int checked = 0;
  for (const TensorInfo& t : src.tensors()) {
    if (!is_block_linear_weight(t.name, t.shape)) continue;
    const std::vector<float> w = read_f32(src, t.name);
    const QuantScheme s = scheme_for(t.name);
    const float ga = s.data_type == DataType::NVFP4 ? nvfp4_amax(src, t.name, nvfp4_fused) : -1.f;
    const QuantizedWeight q = quantize_rtn(w.data(), t.shape[0], t.shape[1], s, nullptr, nullptr, nullptr, t.name, ga);
    std::vector<float> want(w.size());
    q.dequantize(want.data());
    EXPECT_EQ(read_f32(got, t.name), want) << t.name << " " << scheme_label(s);
    ++checked;
  }
  EXPECT_EQ(checked, 35);  // 5 blocks x 7 linears
}

TEST(FpSchemeCli, EverySchemeWritesTheLibrarysWeightsAndEvaluates) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("fp-cli");
  const double base = eval_ppl(model);
  for (const char* name : {"MXFP4", "MXFP8", "NVFP4", "FP8", "FP8_BLOCK"}) {
    const fs::path out = root / name;
    auto r = quantize(model, out, std::string("--scheme ") + name + " --iters 0 --format fake");
    ASSERT_EQ(r.exit_code, 0) << name << ": " << r.err;
    const QuantScheme s = resolve_scheme(name);
    // The log line says which scheme and that it is plain RTN (optimized RTN searches integer grids).
    EXPECT_NE(r.err.find(std::string(name) + "  RTN (the optimized-RTN search is for integer schemes)"),
              std::string::npos)
        << r.err;
    const size_t at = r.out.find("bits per weight (quantized linears, incl. scales and zeros): ");
    ASSERT_NE(at, std::string::npos) << r.out;
    const double bpw = std::stod(r.out.substr(at + 61));
    EXPECT_GE(bpw, s.bits) << name;
    EXPECT_LT(bpw, s.bits + 1.0) << name;
    expect_library_weights(model, out, [&](const std::string&) { return s; });
    const double ppl = eval_ppl(out);
    std::printf("stories260K %-9s RTN: %.3f bits/weight, ppl %.4f (original %.4f)\n", name, bpw, ppl, base);
    EXPECT_TRUE(std::isfinite(ppl)) << name;
    EXPECT_GT(ppl, base * 0.98) << name;  // quantization does not make it much better, nor absurd
    EXPECT_LT(ppl, base * (s.bits == 4 ? 3.0 : 1.1)) << name;
  }
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

// Explicit --bits / --group_size win over an integer preset, as in AutoRound (and the Python API).
TEST(FpSchemeCli, IntegerPresetsTakeExplicitOverrides) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("fp-cli-int");
  auto a = quantize(model, root / "a", "--scheme W2A16G64 --bits 4 --iters 0 --disable_opt_rtn --format fake");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  EXPECT_NE(a.err.find("W4G64 sym  RTN"), std::string::npos) << a.err;
  auto b = quantize(model, root / "b", "--bits 4 --group_size 64 --iters 0 --disable_opt_rtn --format fake");
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(test::tree_bytes(root / "a"), test::tree_bytes(root / "b"));
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

// A layer config mixes data types: here an integer default with MXFP8 down_proj layers.
TEST(FpSchemeCli, LayerConfigSelectsAFloatingPointTypePerLayer) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("fp-cli-lc");
  const std::string lc = R"('{"mlp.down_proj": {"data_type": "mx_fp", "bits": 8}}')";
  auto r = quantize(model, root / "o", "--group_size 32 --iters 0 --disable_opt_rtn --format fake --layer_config " + lc);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  QuantScheme w4g32;
  w4g32.group_size = 32;
  expect_library_weights(model, root / "o", [&](const std::string& n) {
    return n.find("down_proj") != std::string::npos ? fp_scheme(DataType::MXFP8) : w4g32;
  });
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

// NVFP4: q/k/v and gate/up share one global scale (vLLM fuses them and keeps one), the largest
// part's; --nvfp4_per_layer_global_scale keeps each linear's own. Checked in the auto_round
// files' weight_global_scale tensors and in the fake weights, for RTN and after tuning.
TEST(FpSchemeCli, Nvfp4FusedProjectionsShareOneGlobalScale) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("fp-cli-nvfused");
  const SafetensorsReader src = SafetensorsReader::open(model);
  const std::string tune = " --iters 3 --nsamples 2 --seqlen 32 --dataset builtin";
  for (const std::string& extra : {std::string(), std::string(" --nvfp4_per_layer_global_scale"), tune}) {
    SCOPED_TRACE(extra);
    const bool fused = extra.find("per_layer") == std::string::npos;
    const fs::path out = root / std::to_string(std::hash<std::string>()(extra));
    auto r = quantize(model, out, "--scheme NVFP4 --format auto_round,fake" + (extra == tune ? extra : " --iters 0" + extra));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    if (extra != tune)
      expect_library_weights(model, out / "fake", [](const std::string&) { return fp_scheme(DataType::NVFP4); },
                             fused);
    const SafetensorsReader ar = SafetensorsReader::open(out / "auto_round");
    auto gs = [&](int64_t l, const std::string& m) {
      return read_f32(ar, "model.layers." + std::to_string(l) + "." + m + ".weight_global_scale").at(0);
    };
    auto own = [&](int64_t l, const std::string& m) {
      return nvfp4_global_scale(max_abs(read_f32(src, "model.layers." + std::to_string(l) + "." + m + ".weight")));
    };
    int differ = 0;  // fused parts whose own scales differ: the test has something to show
    for (int64_t l = 0; l < 5; ++l) {
      const std::vector<std::string> qkv = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"};
      const std::vector<std::string> gu = {"mlp.gate_proj", "mlp.up_proj"};
      for (const auto* g : {&qkv, &gu}) {
        float smallest = own(l, (*g)[0]);
        for (const std::string& m : *g) smallest = std::min(smallest, own(l, m));
        for (const std::string& m : *g) {
          differ += own(l, m) != smallest;
          EXPECT_EQ(gs(l, m), fused ? smallest : own(l, m)) << "layer " << l << " " << m;
        }
      }
      EXPECT_EQ(gs(l, "self_attn.o_proj"), own(l, "self_attn.o_proj")) << "layer " << l;  // in no group
    }
    EXPECT_GT(differ, 5);
  }
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

// The checkpoint's block files carry the FP fields: killed after block 1 and resumed, a run
// writes the bytes of an uninterrupted one.
TEST(FpSchemeCli, KilledRunResumesToTheSameOutput) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("fp-cli-resume");
  const std::string args = "--scheme NVFP4 --iters 0 --format fake";
  auto full = quantize(model, root / "full", args);
  ASSERT_EQ(full.exit_code, 0) << full.err;
  auto killed = quantize(model, root / "k", args + " --debug_kill_after_block 1");
  EXPECT_NE(killed.exit_code, 0);
  ASSERT_TRUE(fs::exists(root / "k.autoround_work" / "checkpoint.json")) << killed.err;
  auto resumed = quantize(model, root / "k", args + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resume: 2 of 5 blocks finished"), std::string::npos) << resumed.err;
  EXPECT_EQ(test::tree_bytes(root / "full"), test::tree_bytes(root / "k"));
  // A checkpoint of one data type does not resume another.
  killed = quantize(model, root / "m", args + " --debug_kill_after_block 0");
  ASSERT_TRUE(fs::exists(root / "m.autoround_work" / "checkpoint.json")) << killed.err;
  auto other = quantize(model, root / "m", "--scheme MXFP4 --iters 0 --format fake --resume");
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_NE(other.err.find("was made with data_type=\"NVFP4\", this run has data_type=\"MXFP4\""), std::string::npos)
      << other.err;
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

TEST(FpSchemeCli, UnsupportedCombinationsAreRefusedBeforeAnyWork) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("fp-cli-refuse");
  const fs::path out = root / "out";
  struct Case {
    std::string args;
    std::vector<std::string> say;
  };
  const std::string lc = R"( --layer_config '{"mlp.down_proj": {"data_type": "nv_fp"}}')";
  const std::vector<Case> cases = {
      {"--scheme NVFP4 --iters 0 --format auto_awq", {"--format auto_awq cannot store NVFP4 weights", "4-bit integer"}},
      {"--scheme MXFP8 --iters 0 --format auto_gptq", {"--format auto_gptq cannot store MXFP8 weights", "auto_round"}},
      {"--scheme FP8 --iters 0 --format fake,auto_gptq", {"--format auto_gptq cannot store FP8 weights"}},
      {"--bits 8 --iters 0 --format auto_round,awq", {"--format awq cannot store W8G128 sym weights", "4-bit only"}},
      {"--iters 0 --format auto_awq --layer_config '{\"mlp.up_proj\": {\"bits\": 2}}'",
       {"cannot store W2G128 sym weights (layer 'model.layers.0.mlp.up_proj')"}},
      {"--scheme FP8_BLOCK --iters 0 --format gguf:q4_k_m", {"gguf:q4_k_m cannot store FP8_BLOCK weights"}},
      {"--scheme MXFP4 --bits 8 --iters 0 --format fake", {"scheme MXFP4 stores 4-bit weights; bits 8 contradicts"}},
      {"--scheme NVFP4 --group_size 32 --iters 0 --format fake", {"fixes the group size at 16"}},
      {"--scheme MXFP4 --asym --iters 0 --format fake", {"symmetric"}},
      {"--scheme MXFP3 --iters 0 --format fake", {"scheme 'MXFP3' is not one of", "NVFP4"}},
      {"--iters 0 --format auto_gptq" + lc,
       {"cannot store NVFP4 weights (layer 'model.layers.0.mlp.down_proj')"}},
      // Two FP types in one auto_round file are refused; llm_compressor stores a scheme per layer.
      {"--scheme NVFP4 --iters 0 --format auto_round --layer_config '{\"down_proj\": {\"data_type\": \"fp\", \"bits\": 8}}'",
       {"--format auto_round stores one scheme for the whole model (NVFP4)", "'model.layers.0.mlp.down_proj' is FP8",
        "llm_compressor"}},
      // An allowed MXFP8 layer next to a refused NVFP4 one: the refusal names the NVFP4 layer.
      {"--scheme MXFP4 --iters 0 --format auto_round --layer_config '{\"o_proj\": \"MXFP8\", \"q_proj\": \"NVFP4\"}'",
       {"layer 'model.layers.0.self_attn.q_proj' is NVFP4", "auto_round mixes MXFP4 and MXFP8 only"}},
      {"--iters 0 --format fake --layer_config '{\"q_proj\": {\"data_type\": \"mx_fp\", \"bits\": 2}}'",
       {"q_proj", "mx_fp with 2 bits"}},
  };
  for (const Case& c : cases) {
    auto r = quantize(model, out, c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args;
    for (const std::string& s : c.say) EXPECT_NE(r.err.find(s), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(r.err.find("[1/5]"), std::string::npos) << c.args << ": a block ran before the refusal";
    EXPECT_EQ(r.err.find("calibration:"), std::string::npos) << c.args << ": calibration ran before the refusal";
    EXPECT_FALSE(fs::exists(out)) << c.args;
    EXPECT_FALSE(fs::exists(root / "out.autoround_work")) << c.args;
  }
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

// A NaN weight stops an FP run with the file and tensor named (the loader's check, which runs
// before the format's own) and leaves no output.
TEST(FpSchemeCli, NonFiniteWeightIsRefusedByName) {
  const fs::path root = test::make_temp_dir("fp-cli-nan");
  auto g = test::run_command(cli() + " generate --preset tiny-qwen3 --num_layers 1 --output_dir " +
                             (root / "m").string() + " --seed 3");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  const std::string tensor = "model.layers.0.mlp.up_proj.weight";
  {
    const SafetensorsReader st = SafetensorsReader::open(root / "m");
    const TensorInfo& t = st.require(tensor);
    ASSERT_EQ(t.dtype, DType::BF16);
    std::fstream f(st.file_path(t.file_index), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(std::streamoff(t.offset_bytes + 5 * 2));
    const uint16_t nan_bits = 0x7fc0;
    f.write(reinterpret_cast<const char*>(&nan_bits), 2);
  }
  auto r = quantize(root / "m", root / "out", "--scheme MXFP4 --iters 0 --format fake");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("'" + tensor + "'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("non-finite value (nan) at element 5"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(root / "out"));
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
