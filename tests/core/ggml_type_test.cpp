#include "core/ggml_type.h"

#include <gtest/gtest.h>

namespace ar {
namespace {

// Block sizes as ggml's static_asserts state them (sizeof(block_q4_0) == 18, ...).
TEST(GgmlType, BlockGeometryMatchesGgml) {
  struct Row { GgmlType t; int64_t elems; size_t bytes; };
  const Row rows[] = {{GgmlType::F32, 1, 4},     {GgmlType::F16, 1, 2},     {GgmlType::BF16, 1, 2},
                      {GgmlType::Q4_0, 32, 18},  {GgmlType::Q4_1, 32, 20},  {GgmlType::Q5_0, 32, 22},
                      {GgmlType::Q5_1, 32, 24},  {GgmlType::Q8_0, 32, 34},  {GgmlType::Q2_K, 256, 84},
                      {GgmlType::Q3_K, 256, 110}, {GgmlType::Q4_K, 256, 144}, {GgmlType::Q5_K, 256, 176},
                      {GgmlType::Q6_K, 256, 210}};
  for (const Row& r : rows) {
    EXPECT_EQ(ggml_info(r.t).block_elems, r.elems) << ggml_info(r.t).name;
    EXPECT_EQ(ggml_info(r.t).block_bytes, r.bytes) << ggml_info(r.t).name;
  }
  EXPECT_EQ(ggml_row_bytes(GgmlType::Q4_K, 512), 288u);
}

TEST(GgmlType, IdsAndNames) {
  EXPECT_EQ(ggml_type_info(12)->type, GgmlType::Q4_K);
  EXPECT_EQ(ggml_type_info(30)->name, "BF16");
  EXPECT_FALSE(ggml_type_info(4).has_value());  // removed Q4_2
  EXPECT_FALSE(ggml_type_info(1000).has_value());
  EXPECT_EQ(parse_ggml_type("q5_k"), GgmlType::Q5_K);
  EXPECT_FALSE(parse_ggml_type("q4_k_m").has_value());  // a mix, not a type
}

}  // namespace
}  // namespace ar
