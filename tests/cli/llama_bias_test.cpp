// A Llama with attention_bias (HF LlamaAttention: bias on q, k, v *and* o_proj) and mlp_bias
// (LlamaMLP: gate, up, down), end to end: the generated o_proj.bias is loaded, both block forwards
// add it, SignRound tuning sees it (changing it changes the next block's quantized weights), the
// quantized folder keeps it, and an F32 GGUF export names it attn_output.bias and evaluates like
// the safetensors folder. (o_proj.bias used to be dropped by the loader, hence ignored throughout,
// and the GGUF export refused it as a tensor without a GGUF name.)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/block.h"
#include "model/block_grad.h"
#include "model/decoder.h"
#include "support/fixtures.h"
#include "support/run.h"
#include "tools/synth_model.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::string cli() { return AR_CLI_PATH; }

const std::string kOBias = "model.layers.0.self_attn.o_proj.bias";

fs::path make_model(const fs::path& dir) {
  nlohmann::json c = synth_preset_config("tiny");
  synth_set_num_layers(c, 2);
  c["attention_bias"] = true;
  c["mlp_bias"] = true;
  SynthOptions o;
  o.config = c;
  o.output_dir = dir;
  o.dtype = DType::F32;  // so the test can rewrite a bias in place
  o.seed = 3;
  generate_synthetic_model(o);
  return dir;
}

std::vector<float> read_tensor(const fs::path& model, const std::string& name) {
  const SafetensorsReader st = SafetensorsReader::open(model);
  const TensorInfo& t = st.require(name);
  std::vector<float> v(size_t(t.numel()));
  st.read_f32(t, v.data());
  return v;
}

// The stored bytes of every tensor of block `layer` (quantized or not), in name order.
std::string block_bytes(const fs::path& model, int64_t layer) {
  const SafetensorsReader st = SafetensorsReader::open(model);
  const std::string prefix = "model.layers." + std::to_string(layer) + ".";
  std::vector<std::string> names;
  for (const TensorInfo& t : st.tensors())
    if (t.name.starts_with(prefix)) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  std::string all;
  for (const std::string& n : names) {
    const TensorInfo& t = st.require(n);
    std::string b(t.size_bytes, '\0');
    st.read(t, b.data());
    all += n + b;
  }
  return all;
}

void fill_tensor_f32(const fs::path& model, const std::string& name, float value) {
  uint64_t offset = 0, n = 0;
  fs::path file;
  {
    const SafetensorsReader st = SafetensorsReader::open(model);
    const TensorInfo& t = st.require(name);
    ASSERT_EQ(t.dtype, DType::F32);
    offset = t.offset_bytes;
    n = uint64_t(t.numel());
    file = st.file_path(t.file_index);
  }
  const std::vector<float> v(n, value);
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(offset));
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(n * sizeof(float)));
  ASSERT_TRUE(f.good());
}

// block_forward of x (T, C) through `b`.
std::vector<float> forward(const BlockWeights& b, const ModelConfig& c, const std::vector<float>& x, int64_t T) {
  std::vector<float> y = x;
  BlockScratch s(c, T);
  block_forward(y.data(), b, c, make_rope_tables(c, T), s, Precision::F32);
  return y;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

TEST(LlamaBias, OProjBiasIsLoadedAndUsedByBothForwards) {
  const fs::path root = test::make_temp_dir("llama-bias-fwd");
  const fs::path model = make_model(root / "m");
  const Decoder d(model);
  const ModelConfig& c = d.config();
  ASSERT_TRUE(c.attention_bias);
  ASSERT_TRUE(c.mlp_bias);
  BlockWeights b = d.weights().load_block(0);
  ASSERT_TRUE(b.o.has_bias());
  ASSERT_EQ(b.o.b.size_bytes(), size_t(c.hidden_size) * sizeof(float));
  const std::vector<float> file = read_tensor(model, kOBias);
  EXPECT_TRUE(std::equal(file.begin(), file.end(), b.o.b.as<float>()));
  for (const LinearWeights* l : {&b.q, &b.k, &b.v, &b.gate, &b.up, &b.down}) EXPECT_TRUE(l->has_bias()) << l->name;

  const int64_t T = 6, C = c.hidden_size;
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> x(size_t(T * C));
  for (float& e : x) e = nd(rng);
  const std::vector<float> y = forward(b, c, x, T);

  // The trainable forward (SignRound's) agrees with the inference one, bias included.
  {
    BlockLinearWeights w(kDenseLinears);
    for (int i = 0; i < kDenseLinears; ++i) w[size_t(i)] = block_linears(b, i)->w.as<float>();
    BlockGradScratch s(c, T);
    std::vector<float> yt(x.size());
    block_forward_train(yt.data(), s, x.data(), b, w, c, make_rope_tables(c, T), Precision::F32);
    EXPECT_LT(max_abs_diff(yt, y), 1e-4f);
  }

  // Shifting o_proj's bias shifts the attention half's output: the block output moves.
  for (int64_t i = 0; i < C; ++i) b.o.b.as<float>()[i] += 0.5f;
  const std::vector<float> y_shifted = forward(b, c, x, T);
  EXPECT_GT(max_abs_diff(y_shifted, y), 0.1f);
  // With the MLP weights zeroed, the output is exactly x + attention + o bias: the shift is 0.5.
  for (LinearWeights* l : {&b.gate, &b.up, &b.down}) {
    std::fill_n(l->w.as<float>(), l->out * l->in, 0.f);
    std::fill_n(l->b.as<float>(), l->out, 0.f);
  }
  const std::vector<float> attn_only_shifted = forward(b, c, x, T);
  for (int64_t i = 0; i < C; ++i) b.o.b.as<float>()[i] -= 0.5f;
  const std::vector<float> attn_only = forward(b, c, x, T);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(attn_only_shifted[i] - attn_only[i], 0.5f, 1e-5f) << i;
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

TEST(LlamaBias, QuantizeKeepsUsesAndExportsOProjBias) {
  const fs::path root = test::make_temp_dir("llama-bias-cli");
  const fs::path model = make_model(root / "m");
  const std::string tune = " --iters 20 --dataset builtin --nsamples 4 --seqlen 32 --batch_size 2 --group_size 32 --format auto_round";
  auto quantize = [&](const fs::path& out, const std::string& args) {
    auto r = test::run_command(cli() + " quantize --model " + model.string() + " --output_dir " + out.string() + args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
  };
  auto eval_ppl = [&](const fs::path& m) {
    auto r = test::run_command(cli() + " eval --model " + m.string() + " --dataset builtin --seqlen 64");
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const size_t at = r.out.find("perplexity: ");
    return at == std::string::npos ? std::nan("") : std::stod(r.out.substr(at + 12));
  };

  // The quantized folder carries the bias (stored f16, as GPTQ stores a quantized linear's bias).
  quantize(root / "q1", tune);
  const std::vector<float> bias = read_tensor(model, kOBias);
  const std::vector<float> kept = read_tensor(root / "q1", kOBias);
  ASSERT_EQ(kept.size(), bias.size());
  for (size_t i = 0; i < bias.size(); ++i) EXPECT_NEAR(kept[i], bias[i], 1e-4f) << i;

  // An F32 GGUF export names it and evaluates like the safetensors folder.
  quantize(root / "g", " --iters 0 --format gguf:f32");
  fs::path gguf;
  for (const auto& e : fs::directory_iterator(root / "g"))
    if (e.path().extension() == ".gguf") gguf = e.path();
  ASSERT_FALSE(gguf.empty());
  {
    const GgufReader g = GgufReader::open(gguf);
    for (const char* name : {"blk.0.attn_output.bias", "blk.1.attn_output.bias", "blk.0.attn_q.bias", "blk.1.ffn_gate.bias",
                             "blk.1.ffn_up.bias", "blk.1.ffn_down.bias"})
      EXPECT_NE(g.find_tensor(name), nullptr) << name;
  }
  const double ppl = eval_ppl(model);
  EXPECT_NEAR(eval_ppl(gguf) / ppl, 1.0, 1e-6);
  {
    const Decoder dg(gguf);
    const BlockWeights b = dg.weights().load_block(0);
    ASSERT_TRUE(b.o.has_bias());
    EXPECT_TRUE(std::equal(bias.begin(), bias.end(), b.o.b.as<float>()));
  }

  // A different o_proj.bias in block 0 changes the inputs block 1 is tuned on, hence its result,
  // and the model's perplexity.
  fill_tensor_f32(model, kOBias, 1.0f);
  EXPECT_GT(std::fabs(eval_ppl(model) - ppl), 1e-3 * ppl);
  quantize(root / "q2", tune);
  EXPECT_EQ(block_bytes(root / "q2", 0).size(), block_bytes(root / "q1", 0).size());
  EXPECT_NE(block_bytes(root / "q2", 1), block_bytes(root / "q1", 1));
  for (float v : read_tensor(root / "q2", kOBias)) EXPECT_EQ(v, 1.0f);
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
