// fuzz_make_seeds FIXTURES OUT: writes small seed corpora OUT/<target>/ for the fuzz targets, made
// from the shared fixtures (shrunk: real names, dtypes, metadata and JSON, tiny tensors) plus a few
// hand-written cases. Run by bench/fuzz.sh; nothing it writes is kept in git.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/checksum.h"
#include "core/error.h"
#include "fuzz_util.h"
#include "io/file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/safetensors_writer.h"
#include "pipeline/checkpoint.h"
#include "quant/rtn.h"
#include "tools/synth_model.h"
#include "tools/synth_tokenizer.h"

using namespace ar;
namespace fs = std::filesystem;

namespace {

fs::path g_out;
int g_count = 0;

void seed(const std::string& target, const std::string& name, std::string_view bytes) {
  fs::create_directories(g_out / target);
  fuzz::write_bytes(g_out / target / name, bytes);
  ++g_count;
}

std::string slurp(const fs::path& p) { return read_text_file(p, kNoSizeLimit); }

std::string join(std::initializer_list<std::string_view> parts) {
  std::string s;
  bool first = true;
  for (auto p : parts) {
    if (!first) s += fuzz::kSplit;
    s += p;
    first = false;
  }
  return s;
}

// A safetensors file with the given specs (shapes already small) and patterned data.
std::string safetensors_bytes(const std::vector<TensorSpec>& specs, const std::map<std::string, std::string>& meta) {
  std::string s = safetensors_header_bytes(specs, meta);
  for (const auto& t : specs)
    for (uint64_t i = 0; i < t.size_bytes(); ++i) s.push_back(char(0x3c + i % 7));
  return s;
}

void safetensors_seeds(const fs::path& fix) {
  const fs::path model = fix / "models/stories260K/hf/model.safetensors";
  if (!fs::exists(model)) return;
  const SafetensorsReader r = SafetensorsReader::open(model);
  std::vector<TensorSpec> specs;
  for (const auto& t : r.tensors()) {
    TensorSpec s{t.name, t.dtype, t.shape};
    for (auto& d : s.shape) d = std::min<int64_t>(d, 3);
    specs.push_back(s);
  }
  seed("safetensors", "stories260K_shrunk", safetensors_bytes(specs, r.metadata()));
  std::vector<TensorSpec> few(specs.begin(), specs.begin() + std::min<size_t>(4, specs.size()));
  for (size_t i = 0; i < few.size(); ++i) few[i].dtype = i % 3 == 0 ? DType::BF16 : i % 3 == 1 ? DType::F16 : DType::F32;
  seed("safetensors", "mixed_dtypes", safetensors_bytes(few, {{"format", "pt"}}));
  // Sharded: index | shard 1 | shard 2.
  std::vector<TensorSpec> a(specs.begin(), specs.begin() + specs.size() / 2), b(specs.begin() + specs.size() / 2, specs.end());
  nlohmann::json idx;
  idx["metadata"] = {{"total_size", 0}};
  for (const auto& t : a) idx["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : b) idx["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  const std::string sa = safetensors_bytes(a, {}), sb = safetensors_bytes(b, {});
  seed("safetensors", "sharded", join({idx.dump(1), sa, sb}));
  seed("safetensors", "empty_header", safetensors_bytes({}, {}));
}

void gguf_seeds(const fs::path& fix) {
  const std::vector<fs::path> files = {fix / "models/stories260K/original/stories260K.gguf", fix / "gguf/model-Q4_K_M.gguf",
                                       fix / "gguf/model-Q2_K.gguf", fix / "gguf/model-Q5_1.gguf"};
  const fs::path tmp = fuzz::scratch_dir() / "seed.gguf";
  for (const auto& f : files) {
    if (!fs::exists(f)) continue;
    const GgufReader r = GgufReader::open(f);
    std::vector<GgufKV> kvs;
    for (const auto& kv : r.metadata()) {
      GgufKV k = kv;
      // Keep vocabularies short: the first 64 entries are enough for the parser.
      if (k.value.is_array() && k.value.size() > 64) {
        if (k.value.elem_type == GgufType::String) k.value.strings.resize(64);
        else k.value.bytes.resize(64 * gguf_scalar_bytes(k.value.elem_type));
      }
      kvs.push_back(std::move(k));
    }
    std::vector<GgufTensorDecl> decls;
    for (const auto& t : r.tensors()) {
      GgufTensorDecl d{t.name, t.type, t.dims};
      d.dims[0] = ggml_type_info(uint32_t(t.type))->block_elems;
      for (size_t i = 1; i < d.dims.size(); ++i) d.dims[i] = std::min<int64_t>(d.dims[i], 2);
      decls.push_back(d);
    }
    {
      GgufWriter w(tmp, kvs, decls);
      for (const auto& t : w.tensors()) {
        std::vector<uint8_t> bytes(t.size_bytes);
        for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 37 % 251);
        if (t.type == GgmlType::F32)  // plausible floats (1.0f pattern)
          for (size_t i = 0; i + 4 <= bytes.size(); i += 4) bytes[i + 2] = 0x80, bytes[i + 3] = 0x3f;
        w.write_tensor(t.name, bytes.data(), bytes.size());
      }
      w.finish();
    }
    seed("gguf", f.stem().string(), slurp(tmp));
  }
}

void config_seeds(const fs::path& fix) {
  for (const char* m : {"models/stories260K/hf/config.json", "models/qwen3-student/hf/config.json"})
    if (fs::exists(fix / m)) seed("config", fs::path(m).parent_path().parent_path().filename().string(), slurp(fix / m));
  for (const auto& name : synth_preset_names()) seed("config", "preset_" + name, synth_preset_config(name).dump(1));
  seed("config", "llama3_rope",
       R"({"architectures":["LlamaForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,)"
       R"("num_attention_heads":4,"num_key_value_heads":2,"vocab_size":300,"eos_token_id":[1,2],)"
       R"("rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,)"
       R"("original_max_position_embeddings":8192},"attention_bias":true,"mlp_bias":true,"head_dim":16})");
}

void tokenizer_seeds(const fs::path& fix) {
  const std::string text = "Once upon a time, a tiny robot said: \"héllo 😀 world\"\n\t 12345 <s></s>";
  const fs::path d = fix / "models/stories260K/hf";
  if (fs::exists(d / "tokenizer.json"))
    seed("tokenizer", "stories260K", join({slurp(d / "tokenizer.json"), slurp(d / "tokenizer_config.json"), text}));
  const SynthTokenizer s = build_synth_tokenizer("the quick brown fox jumps over the lazy dog, the end. 0123", 30, 512);
  seed("tokenizer", "synth_byte_level", join({s.tokenizer_json.dump(), s.tokenizer_config.dump(), text}));
  if (fs::exists(fix / "tokenizers/qwen3/tokenizer_config.json"))
    seed("tokenizer", "synth_with_qwen3_config",
         join({s.tokenizer_json.dump(), slurp(fix / "tokenizers/qwen3/tokenizer_config.json"), text}));
}

void dataset_seeds(const fs::path& fix) {
  auto with = [](int kind, int seqlen, std::string_view body) {
    std::string s{char(kind), char(seqlen)};
    return s + std::string(body);
  };
  seed("dataset", "text", with(0, 6, "Once upon a time there was a dog.\n\nThe end.\n"));
  seed("dataset", "jsonl", with(1, 4, "{\"text\": \"one dog\"}\n\n{\"text\": \"two cats\", \"id\": 3}\n"));
  seed("dataset", "ids_flat", with(2, 3, "[1, 2, 3, 4, 5, 6, 7, 8, 9]"));
  seed("dataset", "ids_nested", with(2, 2, "[[1, 2, 3], [4, 5], []]"));
  const fs::path ids = fix / "models/stories260K/derived-data/stories260K_samples_seed1234.ids.json";
  if (fs::exists(ids)) {
    nlohmann::json j = nlohmann::json::parse(slurp(ids));
    nlohmann::json small = nlohmann::json::array();
    for (size_t i = 0; i < 3 && i < j.size(); ++i) {
      nlohmann::json seq = nlohmann::json::array();
      for (size_t k = 0; k < 40 && k < j[i].size(); ++k) seq.push_back(j[i][k]);
      small.push_back(seq);
    }
    seed("dataset", "stories_ids", with(3, 16, small.dump()));
  }
  const fs::path txt = fix / "text/tinystories-sample.txt";
  if (fs::exists(txt)) seed("dataset", "tinystories", with(0, 20, slurp(txt).substr(0, 600)));
}

void checkpoint_seeds() {
  const fs::path dir = fuzz::scratch_dir();
  CheckpointManifest m;
  m.identity = {{"model", "/m"}, {"iters", 200}, {"bits", 4}, {"formats", {"auto_round", "gguf:q4_k_m"}}};
  m.next_block = 2;
  m.x_file = "x_2.bin";
  m.xq_file = "xq_2.bin";
  m.x_sums = {1, 2};
  m.xq_sums = {3, 0xffffffffffffffffull};
  m.block_files = {"block_0.bin", "block_1.bin"};
  m.block_sums = {0x1234, 0xabcdef};
  write_manifest(dir, m);
  seed("checkpoint", "manifest", "\0" + slurp(dir / kManifestName));

  BlockResult r;
  r.layer = 3;
  r.tuned = true;
  QuantizedWeight a = QuantizedWeight::allocate(QuantScheme{4, 8, true}, 2, 12);
  for (size_t i = 0; i < a.codes.size(); ++i) a.codes[i] = uint8_t(i % 16);
  for (auto& s : a.scales) s = 0x3c00;
  for (auto& z : a.zeros) z = 8;
  LinearResult la;
  la.q = a;
  la.importance = {1.f, 2.f, 3.f};
  r.linears.emplace("model.layers.3.mlp.up_proj", la);
  LinearResult lb;
  lb.gguf_type = GgmlType::Q8_0;
  lb.gguf.assign(34, 7);
  r.linears.emplace("model.layers.3.self_attn.q_proj", lb);
  save_block_result(dir / "block.bin", r);
  seed("checkpoint", "block", "\1" + slurp(dir / "block.bin"));

  // The floating-point formats' records (block file version 3): each kind of scale vector.
  BlockResult f;
  f.layer = 1;
  const float w[] = {0.5f, -1.f, 2.f, 0.25f, 3.f, -0.125f, 1.f, 0.f};
  for (DataType t : {DataType::MXFP4, DataType::NVFP4, DataType::FP8, DataType::FP8Block}) {
    LinearResult l;
    l.q = quantize_rtn(w, 2, 4, fp_scheme(t));
    f.linears.emplace(cat("model.layers.1.", data_type_name(t)), l);
  }
  save_block_result(dir / "block_fp.bin", f);
  seed("checkpoint", "block_fp", "\1" + slurp(dir / "block_fp.bin"));
}

void layer_config_seeds() {
  seed("layer_config", "names", R"({"mlp.down_proj": {"bits": 8}, "model.layers.0.self_attn.q_proj": {"bits": 16}})");
  seed("layer_config", "regex",
       R"({"re:layers\\.[0-9]+\\.mlp\\..*": {"bits": 2, "group_size": 64, "sym": false}, "q_proj|k_proj": {"group_size": -1}})");
  seed("layer_config", "python_keys", R"({"self_attn.v_proj": {"bits": 4, "data_type": "int", "act_bits": 16}})");
  seed("layer_config", "fp_types",
       R"({"q_proj": {"data_type": "mx_fp", "bits": 8}, "k_proj": {"data_type": "nv_fp4"}, "mlp.up_proj": "FP8_BLOCK",)"
       R"( "down_proj": {"data_type": "fp8", "group_size": [128, 128]}, "o_proj": {"data_type": "float", "bits": 16}})");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FIXTURES_DIR OUT_DIR\n", argv[0]);
    return 2;
  }
  const fs::path fix = argv[1];
  g_out = argv[2];
  try {
    safetensors_seeds(fix);
    gguf_seeds(fix);
    config_seeds(fix);
    tokenizer_seeds(fix);
    dataset_seeds(fix);
    checkpoint_seeds();
    layer_config_seeds();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
    return 1;
  }
  std::printf("fuzz_make_seeds: %d seeds in %s%s\n", g_count, g_out.c_str(),
              fs::exists(fix) ? "" : " (fixtures not found: hand-written seeds only)");
  return 0;
}
