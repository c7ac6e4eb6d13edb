// Which linears share NVFP4's global scale (quant/nvfp4_global.h): q/k/v and gate/up (and a
// Mixtral expert's w1/w3) of the same parent module, NVFP4 members only, the group's largest amax.
#include "quant/nvfp4_global.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ar {
namespace {

TEST(Nvfp4Global, FusedGroupsTakeTheirLargestAmax) {
  const std::vector<std::string> names = {
      "model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj", "model.layers.0.self_attn.v_proj",
      "model.layers.0.self_attn.o_proj", "model.layers.0.mlp.gate_proj",    "model.layers.0.mlp.up_proj",
      "model.layers.0.mlp.down_proj",    "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.k_proj",
      "model.layers.1.block_sparse_moe.experts.3.w1", "model.layers.1.block_sparse_moe.experts.3.w3",
      "model.layers.1.block_sparse_moe.experts.4.w1"};
  const std::vector<float> amax = {1.f, 3.f, 2.f, 9.f, 0.5f, 0.25f, 7.f, 4.f, 0.f, 1.5f, 2.5f, 0.75f};
  const std::vector<bool> nv(names.size(), true);
  const std::vector<float> want = {3.f, 3.f, 3.f, 9.f, 0.5f, 0.5f, 7.f, 4.f, 4.f, 2.5f, 2.5f, 0.75f};
  EXPECT_EQ(nvfp4_global_amax(names, amax, nv, true), want);
  // An all-zero part (layer 1's k_proj) takes the group's amax: AutoRound's min over global scales
  // would take its 0 and zero the whole group.
  EXPECT_EQ(nvfp4_global_amax(names, amax, nv, false), amax);
}

TEST(Nvfp4Global, OnlyNvfp4MembersJoin) {
  const std::vector<std::string> names = {"a.q_proj", "a.k_proj", "a.v_proj", "b.gate_proj", "b.up_proj"};
  const std::vector<float> amax = {1.f, 5.f, 2.f, 3.f, 8.f};
  // k_proj is not NVFP4 (an integer or other FP scheme): it neither joins nor changes.
  const std::vector<bool> nv = {true, false, true, true, false};
  const std::vector<float> want = {2.f, 5.f, 2.f, 3.f, 8.f};
  EXPECT_EQ(nvfp4_global_amax(names, amax, nv, true), want);
}

TEST(Nvfp4Global, NamesWithoutAParentOrAGroupKeepTheirOwn) {
  const std::vector<std::string> names = {"q_proj", "k_proj", "x.q_projection", "x.k_proj_extra"};
  const std::vector<float> amax = {1.f, 2.f, 3.f, 4.f};
  const std::vector<bool> nv(4, true);
  const std::vector<float> want = {2.f, 2.f, 3.f, 4.f};  // top-level q/k share the empty parent
  EXPECT_EQ(nvfp4_global_amax(names, amax, nv, true), want);
}

}  // namespace
}  // namespace ar
