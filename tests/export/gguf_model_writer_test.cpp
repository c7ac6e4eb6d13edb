// GgufModelWriter: a written file read back with GgufReader has gguf_metadata's KVs and tensors
// equal to gguf_quantize_tensor of the source; the types per tensor and, for the deterministic
// formats, the bytes equal llama.cpp's own reference files; llama q/k rows come out in the layout
// of llama.cpp's stories260K.gguf (converted from the original llama2.c checkpoint, which is in
// the layout llama.cpp expects); bad destinations fail before anything is written.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>

#include "core/error.h"
#include "export/gguf_meta.h"
#include "export/gguf_model_writer.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/gguf_names.h"
#include "quant/gguf_blocks.h"
#include "support/fixtures.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> tensor_bytes(const GgufReader& r, const GgufTensorInfo& t) {
  std::vector<uint8_t> b(t.size_bytes);
  r.read(t, b.data());
  return b;
}

// Writes the whole model with add_copy, in `order` (HF names).
fs::path export_model(const fs::path& model, const fs::path& out, GgufMix mix, bool reverse = false) {
  const ModelConfig cfg = load_model_config(model);
  const SafetensorsReader st = SafetensorsReader::open(model);
  GgufModelWriter w(model, out, mix, st, cfg, /*overwrite=*/true);
  std::vector<std::string> order = w.hf_order();
  if (reverse) std::reverse(order.begin(), order.end());  // everything held until its turn
  for (const auto& n : order) w.add_copy(n);
  w.finish();
  return w.path();
}

TEST(GgufModelWriter, Qwen3StudentQ4KMReadsBackAsPlanned) {
  AR_REQUIRE_FIXTURE(model, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(ref_file, "gguf/model-Q4_K_M.gguf");
  const fs::path out = test::make_temp_dir("gguf-writer-q4km");
  const fs::path file = export_model(model, out, GgufMix::Q4_K_M, /*reverse=*/true);
  EXPECT_EQ(file.filename(), "hf-Q4_K_M.gguf");
  for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json"}) EXPECT_TRUE(fs::exists(out / f)) << f;
  EXPECT_FALSE(fs::exists(file.string() + ".tmp"));

  const GgufReader r = GgufReader::open(file);
  GgufMetaOptions mo;
  mo.file_type = GgufFileType::MOSTLY_Q4_K_M;
  const std::vector<GgufKV> meta = gguf_metadata(model, mo);
  ASSERT_EQ(r.metadata().size(), meta.size());
  for (size_t i = 0; i < meta.size(); ++i) {
    EXPECT_EQ(r.metadata()[i].key, meta[i].key);
    EXPECT_TRUE(r.metadata()[i].value == meta[i].value) << meta[i].key;
  }

  const GgufReader ref = GgufReader::open(ref_file);
  const SafetensorsReader st = SafetensorsReader::open(model);
  ASSERT_EQ(r.tensors().size(), ref.tensors().size());
  for (const TensorInfo& s : st.tensors()) {
    const std::string name = gguf_tensor_name(s.name, load_model_config(model));
    const GgufTensorInfo& t = r.require_tensor(name);
    const GgufTensorInfo& rt = ref.require_tensor(name);
    // Types: the mix as llama-quantize chose it; shapes: HF shape reversed.
    EXPECT_EQ(t.type, rt.type) << name;
    EXPECT_EQ(t.dims, std::vector<int64_t>(s.shape.rbegin(), s.shape.rend())) << name;
    // Data: the source quantized to that type (qwen3: no permutation).
    std::vector<float> x(size_t(s.numel()));
    st.read_f32(s, x.data());
    const int64_t cols = s.shape.back(), rows = s.numel() / cols;
    std::vector<uint8_t> expect(size_t(rows) * ggml_row_bytes(t.type, cols));
    gguf_quantize_tensor(t.type, x.data(), rows, cols, expect.data());
    EXPECT_TRUE(tensor_bytes(r, t) == expect) << name;
  }
}

// Simple formats are deterministic: every tensor's bytes equal llama-quantize's. Metadata equals
// the reference's except general.alignment, which we always write (llama.cpp relies on the default).
TEST(GgufModelWriter, Qwen3StudentQ4_0AndQ8_0EqualLlamaCppFiles) {
  AR_REQUIRE_FIXTURE(model, "models/qwen3-student/hf");
  AR_REQUIRE_FIXTURE(refs, "gguf");
  for (const auto& [mix, ref_name] : {std::pair{GgufMix::Q4_0, "model-Q4_0.gguf"}, {GgufMix::Q8_0, "model-Q8_0.gguf"}}) {
    const fs::path file = export_model(model, test::make_temp_dir("gguf-writer-simple"), mix);
    const GgufReader r = GgufReader::open(file), ref = GgufReader::open(refs / ref_name);
    ASSERT_EQ(r.tensors().size(), ref.tensors().size()) << ref_name;
    for (const GgufTensorInfo& rt : ref.tensors()) {
      const GgufTensorInfo* t = r.find_tensor(rt.name);
      ASSERT_NE(t, nullptr) << ref_name << ": " << rt.name;
      EXPECT_EQ(t->type, rt.type) << rt.name;
      EXPECT_EQ(t->dims, rt.dims) << rt.name;
      EXPECT_TRUE(tensor_bytes(r, *t) == tensor_bytes(ref, rt)) << ref_name << ": " << rt.name;
    }
    for (const GgufKV& kv : ref.metadata()) {
      const GgufValue* v = r.find_kv(kv.key);
      ASSERT_NE(v, nullptr) << kv.key;
      EXPECT_TRUE(*v == kv.value) << ref_name << ": " << kv.key << " = " << v->to_string() << ", llama.cpp "
                                  << kv.value.to_string();
    }
    for (const GgufKV& kv : r.metadata()) {
      if (kv.key != "general.alignment") {
        EXPECT_NE(ref.find_kv(kv.key), nullptr) << "extra key " << kv.key;
      }
    }
  }
}

// stories260K's HF weights came from the llama2.c checkpoint through HF's q/k permutation; the
// GGUF converted from the original checkpoint has q/k in llama.cpp's order. Our export of the HF
// folder must give the same rows.
TEST(GgufModelWriter, LlamaQkRowsInLlamaCppOrder) {
  AR_REQUIRE_FIXTURE(model, "models/stories260K/hf");
  AR_REQUIRE_FIXTURE(orig, "models/stories260K/original/stories260K.gguf");
  const fs::path file = export_model(model, test::make_temp_dir("gguf-writer-stories"), GgufMix::F32);
  const GgufReader r = GgufReader::open(file), o = GgufReader::open(orig);
  const ModelConfig cfg = load_model_config(model);
  const SafetensorsReader st = SafetensorsReader::open(model);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    for (const char* p : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_down"}) {
      const std::string name = cat("blk.", l, ".", p, ".weight");
      const GgufTensorInfo& t = r.require_tensor(name);
      EXPECT_EQ(t.dims, o.require_tensor(name).dims) << name;
      EXPECT_TRUE(tensor_bytes(r, t) == tensor_bytes(o, o.require_tensor(name))) << name;
    }
    // The same rule by index: within a head, HF row i*D/2 + j is GGUF row 2j + i.
    const std::string hf = cat("model.layers.", l, ".self_attn.k_proj.weight");
    const TensorInfo& s = st.require(hf);
    std::vector<float> x(size_t(s.numel())), g(size_t(s.numel()));
    st.read_f32(s, x.data());
    r.read(r.require_tensor(cat("blk.", l, ".attn_k.weight")), g.data());
    const int64_t D = cfg.head_dim, C = cfg.hidden_size;
    for (int64_t h = 0; h < cfg.num_key_value_heads; ++h)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < D / 2; ++j)
          for (int64_t c = 0; c < C; ++c)
            ASSERT_EQ(g[size_t((h * D + 2 * j + i) * C + c)], x[size_t((h * D + i * D / 2 + j) * C + c)]) << hf;
  }
}

TEST(GgufModelWriter, BadDestinationsAndUnfinishedWritesLeaveNoFile) {
  AR_REQUIRE_FIXTURE(model, "models/qwen3-student/hf");
  const ModelConfig cfg = load_model_config(model);
  const SafetensorsReader st = SafetensorsReader::open(model);
  EXPECT_THROW(GgufModelWriter(model, model, GgufMix::Q8_0, st, cfg, true), Error);
  const fs::path out = test::make_temp_dir("gguf-writer-bad");
  fs::path path;
  {
    GgufModelWriter w(model, out, GgufMix::Q8_0, st, cfg, false);
    path = w.path();
    w.add_copy(w.hf_order()[0]);
    // Wrong type or size for a planned tensor is a caller bug.
    const std::string n = w.hf_order()[1];
    std::vector<uint8_t> junk(16);
    EXPECT_THROW(w.add_bytes(n, GgmlType::Q4_0, junk.data(), junk.size()), InternalError);
  }  // dropped unfinished
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  export_model(model, out, GgufMix::Q8_0);
  ASSERT_TRUE(fs::exists(path));
  try {
    GgufModelWriter w(model, out, GgufMix::Q8_0, st, cfg, false);
    ADD_FAILURE() << "an existing file was not refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--overwrite"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.filename().string()), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ar
