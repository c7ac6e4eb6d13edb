// A checkpoint whose weights hold NaN or infinity is refused, through the real binary, with the
// file and tensor named, before any output exists; the input model is left as it was. A work dir
// survives the failure only when it holds a checkpoint to resume from.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "io/safetensors.h"
#include "support/fixtures.h"
#include "support/run.h"

namespace ar {
namespace {

namespace fs = std::filesystem;

std::string cli() { return AR_CLI_PATH; }

// Overwrites element `index` of a BF16 tensor in place.
void poke_bf16(const fs::path& model, const std::string& tensor, int64_t index, uint16_t bits) {
  uint64_t offset = 0;
  fs::path file;
  {
    SafetensorsReader st = SafetensorsReader::open(model);
    const TensorInfo& t = st.require(tensor);
    ASSERT_EQ(t.dtype, DType::BF16);
    ASSERT_LT(index, t.numel());
    offset = t.offset_bytes + uint64_t(index) * 2;
    file = st.file_path(t.file_index);
  }
  std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(std::streamoff(offset));
  f.write(reinterpret_cast<const char*>(&bits), 2);
  ASSERT_TRUE(f.good());
}

TEST(BadWeights, NonFiniteWeightIsRefusedNamingFileAndTensor) {
  const fs::path root = test::make_temp_dir("bad-weights");
  const fs::path model = root / "m";
  auto g = test::run_command(cli() + " generate --preset tiny-qwen3 --num_layers 2 --output_dir " + model.string() +
                             " --seed 5");
  ASSERT_EQ(g.exit_code, 0) << g.err;
  for (const auto& [tensor, bits, what] :
       std::vector<std::tuple<std::string, uint16_t, std::string>>{{"model.layers.1.mlp.up_proj.weight", 0x7fc0, "nan"},
                                                                   {"model.layers.0.self_attn.k_proj.weight", 0xff80, "-inf"}}) {
    poke_bf16(model, tensor, 37, bits);
    for (const std::string& cmd : {" quantize --iters 0 --disable_opt_rtn --output_dir " + (root / "out").string(),
                                  " quantize --iters 2 --dataset builtin --nsamples 2 --seqlen 16 --output_dir " +
                                      (root / "out").string(),
                                  std::string(" eval --dataset builtin --seqlen 16")}) {
      auto r = test::run_command(cli() + cmd + " --model " + model.string());
      EXPECT_NE(r.exit_code, 0) << cmd;
      EXPECT_NE(r.err.find("model.safetensors"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("'" + tensor + "'"), std::string::npos) << r.err;
      EXPECT_NE(r.err.find("non-finite value (" + what + ") at element 37"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("Segmentation"), std::string::npos) << r.err;
      EXPECT_FALSE(fs::exists(root / "out")) << cmd << " left an output behind";
      // A quantize run that finished block 0 keeps that block's checkpoint and says how to use
      // it; one that failed in block 0 has nothing to resume and leaves no work dir.
      const fs::path work = root / "out.autoround_work";
      if (cmd.find(" quantize ") == std::string::npos) continue;
      if (tensor.starts_with("model.layers.1.")) {
        EXPECT_TRUE(fs::exists(work / "checkpoint.json")) << cmd;
        EXPECT_NE(r.err.find("is kept (1 block(s) finished)"), std::string::npos) << r.err;
        EXPECT_NE(r.err.find("--resume"), std::string::npos) << r.err;
      } else {
        EXPECT_FALSE(fs::exists(work)) << cmd << " left a work dir with nothing to resume";
        EXPECT_EQ(r.err.find("is kept"), std::string::npos) << r.err;
      }
      fs::remove_all(work);
    }
    poke_bf16(model, tensor, 37, 0x3f80);  // 1.0: the model is usable again for the next case
  }
  auto ok = test::run_command(cli() + " quantize --iters 0 --disable_opt_rtn --model " + model.string() +
                              " --output_dir " + (root / "out").string());
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  if (!::testing::Test::HasFailure()) fs::remove_all(root);
}

}  // namespace
}  // namespace ar
