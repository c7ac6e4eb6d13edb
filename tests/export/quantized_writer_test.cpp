// QuantizedModelWriter on a tiny synthetic Llama (stories260K-like shapes: hidden 64, ragged
// intermediate 172): auto_round output read back by Decoder equals the in-memory dequantized weights
// bit for bit, the forward pass matches in-memory fake quantization, shards + index, config.json,
// side files, unstorable layers kept 16-bit, and failures that leave nothing that looks complete.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "core/dtype.h"
#include "core/error.h"
#include "export/quantized_writer.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "model/decoder.h"
#include "model/weights.h"
#include "quant/rtn.h"
#include "support/fixtures.h"
#include "support/tensors.h"
#include "support/tiny_llama.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ar {
namespace {

using test::read_f32;

constexpr int64_t kC = 64, kF = 172, kLayers = 2, kVocab = 96, kHeads = 8, kKv = 4, kD = 8;

fs::path make_tiny_model(const fs::path& dir) {
  return test::write_tiny_llama(dir, test::TinyLlama{kC, kF, kLayers, kVocab, kHeads, kKv, kD, 42, true});
}

QuantScheme scheme_for(const std::string& linear) {
  if (linear.find("self_attn.v_proj") != std::string::npos) return {8, 32, false};
  return {4, 32, true};
}

struct FedModel {
  std::map<std::string, QuantizedWeight> quantized;  // what was handed to the writer
};

// Feeds the writer every source tensor (in `order`, default output_tensor_order), quantizing with
// RTN under `scheme` what it stores quantized and copying the rest.
FedModel feed(QuantizedModelWriter& w, const SafetensorsReader& src,
              const std::function<QuantScheme(const std::string&)>& scheme = scheme_for,
              std::vector<std::string> order = {}) {
  if (order.empty()) order = output_tensor_order(src);
  FedModel r;
  for (const std::string& name : order) {
    const TensorInfo& t = src.require(name);
    const std::string linear = name.substr(0, name.size() - 7);
    if (is_block_linear_weight(name, t.shape) && w.stores_quantized(linear)) {
      const std::vector<float> wf = read_f32(src, name);
      QuantizedWeight q = quantize_rtn(wf.data(), t.shape[0], t.shape[1], scheme(linear));
      w.add_quantized(linear, q);
      r.quantized.emplace(linear, std::move(q));
    } else {
      w.add_copy(name);
    }
  }
  return r;
}

class WriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = test::make_temp_dir("quantized_writer");
    src_dir_ = make_tiny_model(root_ / "src");
  }
  void TearDown() override {
    if (!HasFailure()) fs::remove_all(root_);
  }
  std::unique_ptr<QuantizedModelWriter> make(OutputFormat f, const fs::path& out, uint64_t shard = 1ull << 30,
                                             bool overwrite = false) {
    src_ = std::make_unique<SafetensorsReader>(SafetensorsReader::open(src_dir_));
    cfg_ = load_model_config(src_dir_);
    return std::make_unique<QuantizedModelWriter>(f, src_dir_, out, *src_, cfg_, scheme_for, shard, overwrite,
                                                  json{{"iters", 0}});
  }
  fs::path root_, src_dir_;
  std::unique_ptr<SafetensorsReader> src_;
  ModelConfig cfg_;
};

TEST_F(WriterTest, AutoRoundRoundTripThroughDecoderIsBitExact) {
  const fs::path out = root_ / "out-ar";
  auto w = make(OutputFormat::AutoRound, out, 40'000);  // small shards: several files + index
  // gate/up (out 172) and down (in 172) cannot be packed: kept 16-bit, as the Python tool does.
  EXPECT_EQ(w->unstorable_layers().size(), size_t(3 * kLayers));
  EXPECT_TRUE(w->stores_quantized("model.layers.0.self_attn.q_proj"));
  EXPECT_FALSE(w->stores_quantized("model.layers.0.mlp.down_proj"));
  const FedModel run = feed(*w, *src_);
  w->finish();
  w.reset();
  EXPECT_TRUE(fs::exists(out / "model.safetensors.index.json"));
  EXPECT_TRUE(fs::exists(out / "tokenizer.json"));
  EXPECT_TRUE(fs::exists(out / "generation_config.json"));
  EXPECT_FALSE(fs::exists(root_ / ".out-ar.tmp"));

  json cfg = json::parse(std::ifstream(out / "config.json"));
  const json& qc = cfg["quantization_config"];
  EXPECT_EQ(qc["quant_method"], "auto-round");
  EXPECT_EQ(qc["packing_format"], "auto_round:auto_gptq");
  EXPECT_EQ(qc["bits"], 4);
  EXPECT_EQ(qc["group_size"], 32);
  EXPECT_EQ(qc["sym"], true);
  EXPECT_EQ(qc["iters"], 0);
  EXPECT_EQ(qc["extra_config"]["model.layers.1.self_attn.v_proj"], (json{{"bits", 8}, {"sym", false}}));
  EXPECT_EQ(qc["extra_config"]["model.layers.0.mlp.down_proj"]["bits"], 16);
  EXPECT_EQ(cfg["torch_dtype"], "bfloat16");

  Decoder dec(out);
  const SafetensorsReader& st = dec.reader();
  EXPECT_EQ(st.require("model.layers.0.self_attn.q_proj.qweight").dtype, DType::I32);
  EXPECT_EQ(st.require("model.layers.0.self_attn.q_proj.scales").dtype, DType::F16);
  EXPECT_EQ(st.find("model.layers.0.self_attn.q_proj.weight"), nullptr);
  // Like the Python AutoRound's auto_round files: qweight, qzeros, scales, no g_idx.
  EXPECT_EQ(st.find("model.layers.0.self_attn.q_proj.g_idx"), nullptr);
  for (int64_t l = 0; l < kLayers; ++l) {
    BlockWeights b = load_block(st, dec.config(), l);
    for (int i = 0; i < kDenseLinears; ++i) {
      const LinearWeights& lw = *block_linears(b, i);
      SCOPED_TRACE(lw.name);
      std::vector<float> expect(size_t(lw.in * lw.out));
      auto it = run.quantized.find(lw.name);
      if (it != run.quantized.end()) it->second.dequantize(expect.data());
      else expect = read_f32(*src_, lw.name + ".weight");  // BF16 copy: exact
      ASSERT_EQ(lw.w.size_bytes(), expect.size() * 4);
      EXPECT_EQ(std::memcmp(lw.w.data(), expect.data(), lw.w.size_bytes()), 0);
    }
  }

  // Forward of the exported model == forward of the source with the same weights fake-quantized.
  const int64_t T = 6;
  const std::vector<int32_t> ids = {1, 5, 9, 33, 70, 2};
  std::vector<float> h_out(size_t(T * kC)), h_ref(size_t(T * kC));
  dec.embed(h_out.data(), ids);
  dec.forward_hidden(h_out.data(), 1, T, {});
  Decoder src_dec(src_dir_);
  src_dec.embed(h_ref.data(), ids);
  ForwardOptions fo;
  fo.transform_block = [&](BlockWeights& b) {
    for (int i = 0; i < kDenseLinears; ++i) {
      LinearWeights& lw = *block_linears(b, i);
      auto it = run.quantized.find(lw.name);
      if (it != run.quantized.end()) it->second.dequantize(lw.w.as<float>());
    }
  };
  src_dec.forward_hidden(h_ref.data(), 1, T, fo);
  EXPECT_EQ(std::memcmp(h_out.data(), h_ref.data(), h_out.size() * 4), 0);
}

TEST_F(WriterTest, AutoGptqConfigAndFakeFormat) {
  {
    auto w = make(OutputFormat::AutoGptq, root_ / "out-gptq");
    feed(*w, *src_);
    w->finish();
    json qc = json::parse(std::ifstream(root_ / "out-gptq" / "config.json"))["quantization_config"];
    EXPECT_EQ(qc["quant_method"], "gptq");
    EXPECT_EQ(qc["desc_act"], false);
    EXPECT_EQ(qc["true_sequential"], false);
    EXPECT_EQ(qc["damp_percent"], 0.01);
    EXPECT_EQ(qc["checkpoint_format"], "gptq");
    EXPECT_TRUE(qc["dynamic"].contains("-:^model\\.layers\\.0\\.mlp\\.down_proj$"));
    EXPECT_EQ(qc["modules_in_block_to_quantize"],
              json::array({json::array({"self_attn.k_proj", "self_attn.o_proj", "self_attn.q_proj",
                                        "self_attn.v_proj"})}));
    EXPECT_TRUE(fs::exists(root_ / "out-gptq" / "model.safetensors"));
    EXPECT_NE(SafetensorsReader::open(root_ / "out-gptq").find("model.layers.0.self_attn.q_proj.g_idx"), nullptr);
  }
  // fake: every selected layer (ragged MLP included) dequantized in the model's own dtype, same names.
  auto w = make(OutputFormat::Fake, root_ / "out-fake");
  EXPECT_TRUE(w->unstorable_layers().empty());
  EXPECT_TRUE(w->stores_quantized("model.layers.1.mlp.down_proj"));
  const FedModel run = feed(*w, *src_);
  w->finish();
  w.reset();
  json cfg = json::parse(std::ifstream(root_ / "out-fake" / "config.json"));
  EXPECT_FALSE(cfg.contains("quantization_config"));
  SafetensorsReader st = SafetensorsReader::open(root_ / "out-fake");
  const QuantizedWeight& q = run.quantized.at("model.layers.1.mlp.down_proj");
  const TensorInfo& t = st.require("model.layers.1.mlp.down_proj.weight");
  EXPECT_EQ(t.dtype, DType::BF16);
  std::vector<float> deq(size_t(q.out * q.in));
  q.dequantize(deq.data());
  std::vector<uint16_t> got(deq.size());
  st.read(t, got.data());
  for (size_t k = 0; k < deq.size(); ++k) ASSERT_EQ(got[k], f32_to_bf16(deq[k])) << k;
}

TEST_F(WriterTest, InjectedWriteFailureLeavesNothingThatLooksComplete) {
  const fs::path out = root_ / "out-fail";
  auto w = make(OutputFormat::AutoRound, out, 40'000);
  int n = 0;
  w->set_before_write_hook([&](const std::string& name) {
    if (++n == 12) throw Error("injected write failure at " + name);
  });
  EXPECT_THROW(feed(*w, *src_), Error);
  EXPECT_TRUE(fs::exists(w->temp_dir()));  // partial output only in the temporary folder
  const fs::path tmp = w->temp_dir();
  w.reset();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(tmp));
}

TEST_F(WriterTest, ExistingOutputNeedsOverwrite) {
  const fs::path out = root_ / "out-exists";
  fs::create_directories(out);
  std::ofstream(out / "old.txt") << "old";
  try {
    make(OutputFormat::AutoRound, out);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(root_ / ".out-exists.tmp"));
  auto w = make(OutputFormat::AutoRound, out, 1ull << 30, /*overwrite=*/true);
  feed(*w, *src_);
  w->finish();
  EXPECT_FALSE(fs::exists(out / "old.txt"));
  EXPECT_TRUE(fs::exists(out / "model.safetensors"));
  EXPECT_FALSE(fs::exists(root_ / ".out-exists.old"));
}

TEST_F(WriterTest, UnsupportedBitsFailBeforeAnyWork) {
  src_ = std::make_unique<SafetensorsReader>(SafetensorsReader::open(src_dir_));
  cfg_ = load_model_config(src_dir_);
  const fs::path out = root_ / "out-5bit";
  auto five = [](const std::string&) { return QuantScheme{5, 32, true}; };
  EXPECT_THROW(QuantizedModelWriter(OutputFormat::AutoGptq, src_dir_, out, *src_, cfg_, five, 1ull << 30, false,
                                    json::object()),
               Error);
  EXPECT_FALSE(fs::exists(root_ / ".out-5bit.tmp"));
  EXPECT_FALSE(fs::exists(out));
  // Nothing quantizable at all (all 16-bit) is refused too.
  auto none = [](const std::string&) { return QuantScheme{16, 32, true}; };
  EXPECT_THROW(QuantizedModelWriter(OutputFormat::AutoRound, src_dir_, out, *src_, cfg_, none, 1ull << 30, false,
                                    json::object()),
               Error);
}

TEST_F(WriterTest, OutOfOrderTensorsAreHeldUntilTheirTurn) {
  const fs::path out = root_ / "out-order";
  auto w = make(OutputFormat::AutoRound, out);
  std::vector<std::string> order = output_tensor_order(*src_);
  std::reverse(order.begin(), order.end());  // worst case: everything arrives late
  feed(*w, *src_, scheme_for, order);
  w->finish();
  SafetensorsReader st = SafetensorsReader::open(out);
  EXPECT_EQ(st.tensors().size(), w->specs().size());
}

// The real stories260K (F32): q/k/v/o packed, the ragged MLP kept in 16-bit (F16, as the packed
// formats store F32 tensors), read back exactly through load_block.
TEST(WriterFixture, Stories260KAutoRound) {
  AR_REQUIRE_FIXTURE(src_dir, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("writer_stories");
  SafetensorsReader src = SafetensorsReader::open(src_dir);
  const ModelConfig cfg = load_model_config(src_dir);
  auto scheme = [](const std::string&) { return QuantScheme{4, 32, true}; };
  std::map<std::string, QuantizedWeight> done;
  {
    QuantizedModelWriter w(OutputFormat::AutoRound, src_dir, root / "out", src, cfg, scheme, 1ull << 30, false,
                           json::object());
    std::set<std::string> kept;
    for (const auto& [name, why] : w.unstorable_layers()) kept.insert(name);
    EXPECT_EQ(kept.size(), size_t(3 * cfg.num_hidden_layers));  // gate, up (out 172), down (in 172)
    EXPECT_TRUE(kept.count("model.layers.0.mlp.down_proj"));
    done = feed(w, src, scheme).quantized;
    w.finish();
  }
  EXPECT_EQ(done.size(), size_t(4 * cfg.num_hidden_layers));
  EXPECT_TRUE(fs::exists(root / "out" / "tokenizer.model"));
  EXPECT_EQ(json::parse(std::ifstream(root / "out" / "config.json"))["torch_dtype"], "float16");
  Decoder dec(root / "out");
  EXPECT_EQ(dec.reader().require("model.layers.0.mlp.down_proj.weight").dtype, DType::F16);
  BlockWeights b = load_block(dec.reader(), dec.config(), 1);
  for (int i = 0; i < kDenseLinears; ++i) {
    const LinearWeights& lw = *block_linears(b, i);
    auto it = done.find(lw.name);
    if (it == done.end()) continue;
    std::vector<float> expect(size_t(lw.in * lw.out));
    it->second.dequantize(expect.data());
    EXPECT_EQ(std::memcmp(lw.w.data(), expect.data(), expect.size() * 4), 0) << lw.name;
  }
  fs::remove_all(root);
}

// Per-token NLL (what eval averages) of the written fake model == that of the source with the same fake quantization in memory
// (stories260K is F32 and fake keeps the dtype, so the two runs see identical weights).
TEST(WriterFixture, Stories260KFakeEvalMatchesInMemory) {
  AR_REQUIRE_FIXTURE(src_dir, "models/stories260K/hf");
  const fs::path root = test::make_temp_dir("writer_stories_fake");
  SafetensorsReader src = SafetensorsReader::open(src_dir);
  const ModelConfig cfg = load_model_config(src_dir);
  auto scheme = [](const std::string&) { return QuantScheme{4, 32, false}; };
  std::map<std::string, QuantizedWeight> done;
  {
    QuantizedModelWriter w(OutputFormat::Fake, src_dir, root / "out", src, cfg, scheme, 1ull << 30, false,
                           json::object());
    done = feed(w, src, scheme).quantized;
    w.finish();
  }
  EXPECT_EQ(done.size(), size_t(7 * cfg.num_hidden_layers));  // fake stores the ragged MLP too
  const int64_t T = 48, C = cfg.hidden_size;
  std::vector<int32_t> ids(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; ++i) ids[size_t(i)] = int32_t((i * 37 + 1) % cfg.vocab_size);
  std::vector<int32_t> targets(ids.begin() + 1, ids.end());
  auto nll = [&](const Decoder& d, const ForwardOptions& fo) {
    std::vector<float> h(size_t(T * C));
    d.embed(h.data(), ids);
    d.forward_hidden(h.data(), 1, T, fo);
    std::vector<double> v(size_t(T - 1));
    d.next_token_nll(v.data(), h.data(), targets.data(), T - 1, Precision::F32);
    return v;
  };
  Decoder out(root / "out");
  const std::vector<double> a = nll(out, {});
  Decoder ref(src_dir);
  ForwardOptions fo;
  fo.transform_block = [&](BlockWeights& b) {
    for (int i = 0; i < kDenseLinears; ++i) {
      LinearWeights& lw = *block_linears(b, i);
      done.at(lw.name).dequantize(lw.w.as<float>());
    }
  };
  const std::vector<double> r = nll(ref, fo);
  EXPECT_EQ(a, r);  // same weights, same kernels: identical per-token NLL, hence identical perplexity
  fs::remove_all(root);
}

TEST(OutputFormat, Names) {
  EXPECT_EQ(parse_output_format("auto_round"), OutputFormat::AutoRound);
  EXPECT_EQ(parse_output_format("auto_gptq"), OutputFormat::AutoGptq);
  EXPECT_EQ(parse_output_format("fake"), OutputFormat::Fake);
  EXPECT_THROW(parse_output_format("gguf:q4_0"), Error);
  EXPECT_EQ(tensor_block_index("model.layers.12.mlp.up_proj.weight"), 12);
  EXPECT_EQ(tensor_block_index("model.layers.x.mlp"), -1);
  EXPECT_EQ(tensor_block_index("lm_head.weight"), -1);
}

}  // namespace
}  // namespace ar
